"""Image loading that never crashes on user input: paths, bytes, PIL images and numpy arrays all
become ``uint8 [H, W, 3]`` RGB, or an :class:`ImageError` says why not.

Handled: EXIF orientation (applied), grayscale / LA / palette / RGBA (alpha composited on
white) / CMYK / 16-bit and 32-bit integer / float images (converted), truncated files (refused,
not half-decoded), decompression bombs (refused by Pillow's limit).
"""
from __future__ import annotations

import io
import stat
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ImageError

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        hi = 1.0 if np.nanmax(arr) <= 1.0 else 255.0
        return (np.clip(np.nan_to_num(arr), 0, hi) * (255.0 / hi) + 0.5).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        top = int(arr.max()) if arr.size else 0
        if top <= 255:  # 8-bit values in a wider type
            return np.clip(arr, 0, 255).astype(np.uint8)
        hi = 65535.0 if top <= 65535 else float(top)  # 16-bit images use the full 16-bit range
        return (np.clip(arr, 0, hi).astype(np.float64) * (255.0 / hi) + 0.5).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {arr.dtype}")


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """``[H,W]``, ``[H,W,1]``, ``[H,W,2]`` (gray+alpha), ``[H,W,3]`` or ``[H,W,4]`` of any numeric dtype -> uint8 RGB."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    if arr.ndim == 2:
        arr = np.repeat(_to_uint8(arr)[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = _to_uint8(arr)
        if rgb.shape[2] == 4:  # composite on white
            a = rgb[:, :, 3:4].astype(np.float32) / 255.0
            rgb = (rgb[:, :, :3] * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
        arr = rgb
    else:
        raise ImageError(f"expected an image array [H,W], [H,W,1..4], got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"empty image of shape {arr.shape}")
    return np.ascontiguousarray(arr)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGB",):
        return np.asarray(img, dtype=np.uint8).copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return array_to_rgb(np.asarray(img))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        return array_to_rgb(np.asarray(img.convert("RGBA")))
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(src: ImageInput) -> np.ndarray:
    """Decode ``src`` fully into ``uint8 [H, W, 3]`` RGB with EXIF orientation applied."""
    if isinstance(src, np.ndarray):
        return array_to_rgb(src)
    if isinstance(src, Image.Image):
        return pil_to_rgb(src)
    name = "<bytes>"
    if isinstance(src, (str, Path)):
        name = str(src)
        path = Path(src)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as e:
            raise ImageError(f"{name}: cannot read ({e.strerror or e})") from None
        if stat.S_ISDIR(mode):
            raise ImageError(f"{name}: is a directory, not an image file")
        if not stat.S_ISREG(mode):  # a FIFO would block the read forever
            raise ImageError(f"{name}: not a regular file")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except PermissionError:
            raise ImageError(f"{name}: permission denied (cannot read this file)") from None
        except OSError as e:  # a FIFO, a device, an I/O error
            raise ImageError(f"{name}: cannot read ({e.strerror or e})") from None
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        raise ImageError(f"cannot read an image from a {type(src).__name__}")
    if not data:
        raise ImageError(f"{name}: empty file")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return pil_to_rgb(img)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: refused, too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e)
        kind = "truncated or corrupt image" if "truncated" in msg or "broken" in msg else "cannot decode image"
        raise ImageError(f"{name}: {kind} ({msg})") from None

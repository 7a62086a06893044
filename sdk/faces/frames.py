"""Frames from a video file, a directory of images, an animated image or any iterable of images.

    for index, rgb in iter_frames("clip.mp4", every=2):   # uint8 [H, W, 3] RGB
        ...
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import ImageError, MissingDependencyError
from .images import ImageInput, load_image, pil_to_rgb

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
ANIMATED_SUFFIXES = {".gif", ".apng", ".webp", ".tif", ".tiff"}


def open_video(path: Path):
    """An opened ``cv2.VideoCapture`` of ``path``, or :class:`ImageError` (one line)."""
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - cv2 comes with mediapipe
        raise MissingDependencyError(f"{path}: reading video needs OpenCV (pip install opencv-python)") from e
    if Path(path).is_dir():
        raise ImageError(f"{path}: is a directory, not a video file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise ImageError(f"{path}: permission denied (cannot read this file)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ImageError(f"{path}: cannot open as a video (not a video, or a codec OpenCV lacks)")
    return cap


def _video(path: Path) -> Iterator[np.ndarray]:
    cap = open_video(path)
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield np.ascontiguousarray(bgr[:, :, ::-1])
    finally:
        cap.release()


def _animated(path: Path) -> Iterator[np.ndarray] | None:
    from PIL import Image, ImageSequence

    try:
        img = Image.open(path)
    except Exception:  # noqa: BLE001 - not an image: the caller tries video
        return None
    if getattr(img, "n_frames", 1) <= 1:
        img.close()
        return None

    def gen() -> Iterator[np.ndarray]:
        with img:
            for frame in ImageSequence.Iterator(img):
                yield pil_to_rgb(frame.convert("RGB"))

    return gen()


def _source(frames: Iterable[ImageInput] | str | Path) -> Iterator[ImageInput]:
    if not isinstance(frames, (str, Path)):
        return iter(frames)
    path = Path(frames)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this directory")
        return iter(files)
    if not path.is_file():
        raise ImageError(f"{path}: no such file or directory")
    if path.suffix.lower() in ANIMATED_SUFFIXES:
        gen = _animated(path)
        if gen is not None:
            return gen
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return iter([path])
    return _video(path)


def iter_frames(frames: Iterable[ImageInput] | str | Path, every: int = 1,
                limit: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame index, uint8 RGB)`` for every ``every``-th frame, at most ``limit`` frames."""
    if every < 1:
        raise ValueError("every must be at least 1")
    n = 0
    for i, f in enumerate(_source(frames)):
        if i % every:
            continue
        if limit is not None and n >= limit:
            break
        n += 1
        yield i, load_image(f)

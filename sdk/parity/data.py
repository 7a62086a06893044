"""Real preprocessed faces for ``udc-parity``: aligned crops, their 68 landmarks (crop units), noise.

* ``--data DIR``: every image under DIR (recursively; the first ``n`` usable faces in a seeded random order).
  Landmarks come from ``DIR/landmarks68.npz`` when it lists the image (the cache ``udc-data
  landmarks`` and ``udc-data synthetic`` write: arrays ``keys`` = paths relative to DIR, ``points`` =
  [N, 68, 2] image pixels), else from the face pipeline's detector (MediaPipe). Images without a
  face are skipped and counted.
* no ``--data``: refused with a one-line error (the SDK is the bottom layer and does not reach into
  ``udc.train`` for the synthetic generator; ``udc-data synthetic DIR`` writes a set to point at).

Faces then go through exactly what :class:`udc.sdk.runtime.recognizer.Recognizer` does: similarity
alignment to the manifest's crop, then the manifest's scale/mean/std.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ImageError, NoFaceError, UdcError
from ..faces.align import align_face
from ..faces.images import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
LANDMARKS_FILE = "landmarks68.npz"


class ParityDataError(UdcError, ValueError):
    """No usable faces for the parity run (the message says what to pass)."""


@dataclass
class Faces:
    crops: np.ndarray  # uint8 [N, S, S, 3] aligned crops
    landmarks: np.ndarray  # float32 [N, 68, 2] crop units
    names: list[str]
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


def _cached_landmarks(root: Path) -> dict[str, np.ndarray]:
    p = root / LANDMARKS_FILE
    if not p.is_file():
        return {}
    try:
        with np.load(p, allow_pickle=False) as d:
            return {str(k): np.asarray(v, np.float32) for k, v in zip(d["keys"], d["points"])}
    except (OSError, KeyError, ValueError) as e:
        raise ParityDataError(f"{p}: not a landmarks cache ({e}): delete it or re-run udc-data landmarks") from None


def folder_faces(root: str | Path, n: int, crop_size: int, seed: int = 0, detector_factory: Callable | None = None,
                 progress: bool = True) -> Faces:
    """Up to ``n`` aligned faces from the images under ``root`` (see the module docstring)."""
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise ParityDataError(f"--data {root}: no such directory (give a folder of face photos)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ParityDataError(f"--data {root}: no images ({', '.join(IMAGE_SUFFIXES)}) under this directory")
    cache = _cached_landmarks(root)
    detector = None
    crops, lms, names = [], [], []
    skipped = {"no_face": 0, "unreadable": 0}
    # a seeded order over all files: the first n usable faces are taken (a skipped one is replaced)
    order = [files[i] for i in np.random.default_rng(seed).permutation(len(files))]
    from ..console.quiet import show_progress

    bar = tqdm(total=n, desc="faces", unit="img", disable=not (progress and show_progress()), leave=False)
    for p in order:
        if len(names) >= n:
            break
        key = p.relative_to(root).as_posix()
        try:
            rgb = load_image(p)
        except ImageError:
            skipped["unreadable"] += 1
            continue
        lm = cache.get(key)
        if lm is None:
            if detector is None:
                if detector_factory is None:
                    from ..faces.detect import MediaPipeFaceMesh as detector_factory  # noqa: N813
                detector = detector_factory()
            found = detector.detect(rgb)
            if not found:
                skipped["no_face"] += 1
                continue
            lm = found[0].landmarks
        try:  # a cached record without a face is stored as NaN points: a typed LandmarksError, counted here
            crop, lm_crop, _ = align_face(rgb, lm, crop_size)
        except NoFaceError:
            skipped["no_face"] += 1
            continue
        crops.append(crop)
        lms.append((lm_crop / crop_size).astype(np.float32))
        names.append(key)
        bar.update(1)
    bar.close()
    if not names:
        raise ParityDataError(f"--data {root}: none of {len(files)} images has a usable face "
                              f"({skipped['no_face']} without a face, {skipped['unreadable']} unreadable)")
    return Faces(np.stack(crops), np.stack(lms), names,
                 {"kind": "folder", "root": str(root), "images": len(files), "landmarks_cached": bool(cache),
                  "skipped": skipped, "seed": seed})


def noise(n: int, dim: int, seed: int) -> np.ndarray:
    """``[n, dim]`` N(0, I) initial noise per face (torch's generator: the same as udc-export draws)."""
    import torch

    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).numpy()

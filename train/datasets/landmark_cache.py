"""Landmarks for every record, computed once and cached next to the data (``ROOT/landmarks68.npz``).

Records that carry landmarks from the dataset itself (AffectNet's csv, the synthetic set) are taken
as they are; the others are detected with the SDK's face pipeline (MediaPipe). A record with no
face found is cached as NaNs, so it is not retried on every run; callers skip or flag it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..landmark_store import LANDMARKS_FILE, load_landmarks, save_landmarks
from .base import DatasetIndex, FaceRecord

NO_FACE = np.full((68, 2), np.nan, np.float32)


def _detect(record: FaceRecord, detector) -> np.ndarray:
    from udc.sdk.errors import ImageError
    from udc.sdk.images import load_image

    try:
        rgb = load_image(record.pixels if record.pixels is not None else record.path)
    except ImageError:
        return NO_FACE
    faces = detector.detect(rgb)
    return faces[0].landmarks if faces else NO_FACE


def ensure_landmarks(index: DatasetIndex, detector=None, cache_path: str | Path | None = None,
                     progress: bool = True, save_every: int = 500) -> dict[str, np.ndarray]:
    """``key -> [68, 2]`` image-pixel landmarks for every record (NaN where no face was found)."""
    from tqdm import tqdm

    path = Path(cache_path) if cache_path is not None else index.root / LANDMARKS_FILE
    cache = load_landmarks(path)
    todo = []
    for r in index.records:
        if r.key in cache:
            continue
        if r.landmarks is not None:
            cache[r.key] = np.asarray(r.landmarks, np.float32)
        else:
            todo.append(r)
    if todo:
        if detector is None:
            from udc.sdk.face_detect import MediaPipeFaceMesh

            detector = MediaPipeFaceMesh()
        for i, r in enumerate(tqdm(todo, desc=f"landmarks {index.name}", unit="img", disable=not progress)):
            cache[r.key] = _detect(r, detector)
            if save_every and (i + 1) % save_every == 0:
                save_landmarks(path, cache)  # an interrupted run keeps what it computed
    if todo or not path.exists():
        save_landmarks(path, cache)
    return {r.key: cache[r.key] for r in index.records}

"""Landmarks for every record, computed once and cached next to the data (``ROOT/landmarks68.npz``).

Records that carry landmarks from the dataset itself (AffectNet's csv, the synthetic set) are taken
as they are; the others are detected with the SDK's face pipeline (MediaPipe). A record with no
face found is cached as NaNs, so it is not retried on every run; callers skip or flag it.

**Crop fallback** (``fallback=True`` or ``"auto"``; issue 13: every test face is scored). For datasets
that are already face crops (FER2013's 48x48, RAF-DB's aligned 100x100) a face MediaPipe misses takes
:func:`udc.sdk.faces.pipeline.crop_landmarks`'s paths: the detector again on the crop upscaled and padded
(``upscaled``), else the canonical 68 points over the whole crop (``canonical``: the crop is taken as
already aligned). ``"auto"`` applies it to small near-square images only
(:func:`udc.sdk.faces.pipeline.is_face_crop`); a photo keeps NaN when no face is found. The default
(``fallback=False``) is the behaviour before the fallback existed.

Every record's path is cached (the ``sources`` array of the npz) and returned: the result is a
:class:`LandmarkMap`, a ``dict`` (``key -> [68, 2]``, exactly as before) with ``.sources`` (key ->
path) and ``.counts()``, the number of faces per path::

    lm = ensure_landmarks(index, fallback=True)
    lm.counts()   # {"dataset": 0, "detected": 279, "upscaled": 9, "canonical": 12, "failed": 0}

Paths: ``dataset`` (shipped with the data), ``detected`` (MediaPipe on the image as it is), ``upscaled``,
``canonical``, ``failed`` (NaN points: no face and no fallback, or an unreadable image). A ``failed`` face
must be scored as wrong by an evaluation, never dropped from its denominator. With ``fallback=False``
records cached as ``canonical`` by an earlier fallback run come back as NaN (``failed``) again; a cache
written before sources existed is read as ``detected`` (finite points) / ``none`` (NaN), and NaN records
are retried with the fallback (only the fallback steps) when it is asked for.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..landmark_store import LANDMARKS_FILE, load_landmark_sources, load_landmarks, save_landmarks
from .base import DatasetIndex, FaceRecord

NO_FACE = np.full((68, 2), np.nan, np.float32)
#: What :meth:`LandmarkMap.counts` reports, in this order.
PATHS = ("dataset", "detected", "upscaled", "canonical", "failed")


class LandmarkMap(dict):
    """``key -> [68, 2]`` image-pixel landmarks (a plain dict), plus how each record got them."""

    def __init__(self, points: dict[str, np.ndarray], sources: dict[str, str]):
        super().__init__(points)
        self.sources = sources  # key -> one of PATHS

    def counts(self) -> dict[str, int]:
        c = Counter(self.sources.values())
        return {p: int(c.get(p, 0)) for p in PATHS}

    def summary(self) -> str:
        """``"300 faces: 279 detected, 9 upscaled, 12 canonical, 0 failed"`` (paths with 0 but ``failed`` left out)."""
        c = self.counts()
        parts = [f"{v} {k}" for k, v in c.items() if v or k == "failed"]
        return f"{len(self)} faces: " + ", ".join(parts)


def _load(record: FaceRecord) -> np.ndarray | None:
    from udc.sdk.errors import ImageError
    from udc.sdk.faces.images import load_image

    try:
        return load_image(record.pixels if record.pixels is not None else record.path)
    except (ImageError, OSError):
        return None


def _detect(record: FaceRecord, detector) -> np.ndarray:
    rgb = _load(record)
    if rgb is None:
        return NO_FACE
    faces = detector.detect(rgb)
    return faces[0].landmarks if faces else NO_FACE


def _wants_fallback(fallback, rgb: np.ndarray) -> bool:
    from udc.sdk.faces.pipeline import is_face_crop

    return bool(fallback) and (fallback != "auto" or is_face_crop(rgb.shape))


def _locate(record: FaceRecord, detector, fallback, detect: bool) -> tuple[np.ndarray, str]:
    """``(points, source)`` for one record; ``detect=False`` skips the plain detection (already failed)."""
    from udc.sdk.faces.pipeline import canonical_crop_landmarks, detect_upscaled

    rgb = _load(record)
    if rgb is None:
        return NO_FACE, "unreadable"
    if detect:
        faces = detector.detect(rgb)
        if faces:
            return np.asarray(faces[0].landmarks, np.float32), "detected"
    if not _wants_fallback(fallback, rgb):
        return NO_FACE, "photo" if fallback == "auto" else "none"  # "photo": auto judged it no crop
    lm = detect_upscaled(rgb, detector)
    if lm is not None:
        return lm, "upscaled"
    h, w = rgb.shape[:2]
    return canonical_crop_landmarks(w, h), "canonical"


def ensure_landmarks(index: DatasetIndex, detector=None, cache_path: str | Path | None = None,
                     progress: bool = True, save_every: int = 500, *, fallback: bool | str = False) -> LandmarkMap:
    """``key -> [68, 2]`` image-pixel landmarks for every record (NaN where no face was found), as a
    :class:`LandmarkMap` (a dict with ``.sources`` and ``.counts()``). ``fallback``: False (default),
    True or ``"auto"``, see the module docstring."""
    if fallback not in (False, True, "auto"):
        raise ValueError(f"fallback must be False, True or 'auto', got {fallback!r}")
    path = Path(cache_path) if cache_path is not None else index.root / LANDMARKS_FILE
    cache = load_landmarks(path)
    sources = load_landmark_sources(path)
    for k, v in cache.items():  # a cache written before sources existed
        sources.setdefault(k, "detected" if np.isfinite(v).all() else "none")
    todo: list[tuple[FaceRecord, bool]] = []
    for r in index.records:
        if r.key in cache:
            src = sources.get(r.key)
            if (fallback and src == "none") or (fallback is True and src == "photo"):
                todo.append((r, False))  # the plain detection failed before: only the fallback steps
            continue
        if r.landmarks is not None:
            cache[r.key] = np.asarray(r.landmarks, np.float32)
            sources[r.key] = "dataset"
        else:
            todo.append((r, True))
    if todo:
        if detector is None:
            from udc.sdk.faces.detect import MediaPipeFaceMesh

            detector = MediaPipeFaceMesh()
        from udc.sdk.console.quiet import progress as progress_iter

        for i, (r, detect) in enumerate(progress_iter(todo, desc=f"landmarks {index.name}", unit="img",
                                                      enabled=progress)):
            cache[r.key], sources[r.key] = _locate(r, detector, fallback, detect)
            if save_every and (i + 1) % save_every == 0:
                save_landmarks(path, cache, sources)  # an interrupted run keeps what it computed
    if todo or not path.exists():
        save_landmarks(path, cache, sources)
    points, paths = {}, {}
    for r in index.records:
        src = sources.get(r.key, "none")
        lm = cache[r.key]
        if src == "canonical" and not fallback:
            lm, src = NO_FACE, "failed"
        points[r.key] = lm
        paths[r.key] = src if src in PATHS else "failed"
    return LandmarkMap(points, paths)

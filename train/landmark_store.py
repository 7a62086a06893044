"""Landmarks cached next to a dataset: ``ROOT/landmarks68.npz`` with arrays ``keys`` [N] (record keys)
and ``points`` [N, 68, 2] (float32, image-pixel coordinates, iBUG order), and, since the crop fallback,
``sources`` [N] (how each record got its points: ``dataset``, ``detected``, ``upscaled``, ``canonical``,
``none`` = no face found (fallback not tried), ``photo`` = no face and ``auto`` judged it no crop,
``unreadable``; see :mod:`udc.train.datasets.landmark_cache`). Files written
before ``sources`` existed still load (:func:`load_landmark_sources` gives ``{}``). Written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

LANDMARKS_FILE = "landmarks68.npz"


def save_landmarks(path: str | Path, points: dict[str, np.ndarray], sources: dict[str, str] | None = None) -> Path:
    path = Path(path)
    keys = sorted(points)
    arr = np.stack([np.asarray(points[k], dtype=np.float32) for k in keys]) if keys else np.zeros((0, 68, 2), np.float32)
    extra = {}
    if sources is not None:
        extra["sources"] = np.array([sources.get(k, "") for k in keys], dtype=str)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, keys=np.array(keys, dtype=str), points=arr, **extra)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return {str(k): p for k, p in zip(data["keys"], data["points"])}


def load_landmark_sources(path: str | Path) -> dict[str, str]:
    """``key -> source`` where the file records it (empty for files written before sources existed)."""
    path = Path(path)
    if not path.exists():
        return {}
    with np.load(path, allow_pickle=False) as data:
        if "sources" not in data.files:
            return {}
        return {str(k): str(s) for k, s in zip(data["keys"], data["sources"]) if str(s)}

"""Landmarks cached next to a dataset: ``ROOT/landmarks68.npz`` with arrays ``keys`` [N] (record keys)
and ``points`` [N, 68, 2] (float32, image-pixel coordinates, iBUG order). Written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

LANDMARKS_FILE = "landmarks68.npz"


def save_landmarks(path: str | Path, points: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    keys = sorted(points)
    arr = np.stack([np.asarray(points[k], dtype=np.float32) for k in keys]) if keys else np.zeros((0, 68, 2), np.float32)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, keys=np.array(keys, dtype=str), points=arr)
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

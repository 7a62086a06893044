"""Write the synthetic expression dataset to disk, or generate it in memory.

Layout (``OUT`` is the dataset root)::

    OUT/{split}/{label_name}/{split}_{index:05d}.png
    OUT/landmarks68.npz   # udc.train.landmark_store format, keys = relative paths with '/'
    OUT/synthetic.json    # generator version, seed, size, counts per split and label

Image ``index`` of a split shows expression ``index % 7`` and is drawn from its own generator
seeded with ``(seed, crc32(split), index)``: regenerating gives identical bytes, a larger count
only appends images, and no identity is shared between splits (each image is its own person).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from udc.sdk.labels import LABELS
from udc.sdk.console.quiet import show_progress  # progress bars on a terminal only, never in a log file

from ..landmark_store import LANDMARKS_FILE, save_landmarks
from .expressions import DIFFICULTIES
from .render import render_face

__all__ = ["GENERATOR_VERSION", "MANIFEST_FILE", "DEFAULT_COUNTS", "generate_arrays", "generate_dataset",
           "image_path", "image_rng", "label_of"]

#: Bump when a change to the generator changes the pixels for a given seed.
GENERATOR_VERSION = "1.0"
MANIFEST_FILE = "synthetic.json"
DEFAULT_COUNTS: dict[str, int] = {"train": 500, "val": 100, "test": 100}  # per class


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split`` (identity, pose, expression, scene, noise)."""
    return np.random.default_rng([int(seed), zlib.crc32(split.encode("utf-8")), int(index)])


def label_of(index: int) -> int:
    """Images cycle through the 7 expressions, so every prefix of a split is balanced."""
    return index % len(LABELS)


def image_path(split: str, index: int) -> str:
    """Path of an image relative to the dataset root, with forward slashes."""
    return f"{split}/{LABELS[label_of(index)]}/{split}_{index:05d}.png"


def _render(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    seed, split, index, size, difficulty = job
    return render_face(image_rng(seed, split, index), label_of(index), size, DIFFICULTIES[difficulty])


def _render_all(jobs: list[tuple], workers: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render in order, in worker processes when ``workers > 1`` (same bytes either way)."""
    if workers <= 1 or len(jobs) < 64:
        yield from map(_render, jobs)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(_render, jobs, chunksize=32)
    finally:  # on an error downstream, drop the queued work instead of finishing it
        pool.shutdown(wait=True, cancel_futures=True)


def generate_arrays(n_per_class: int, size: int = 64, seed: int = 0, split: str = "train",
                    workers: int = 1, progress: bool = False, difficulty: str = "standard") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_per_class`` faces per expression in memory, identical to the files of :func:`generate_dataset`.

    Returns ``(images uint8 [N, size, size, 3], labels int64 [N], landmarks float32 [N, 68, 2])``,
    ``N = 7 * n_per_class``, in index order.
    """
    n = len(LABELS) * int(n_per_class)
    images = np.zeros((n, size, size, 3), np.uint8)
    points = np.zeros((n, 68, 2), np.float32)
    _check_difficulty(difficulty)
    jobs = [(seed, split, i, size, difficulty) for i in range(n)]
    for i, (img, lm) in enumerate(tqdm(_render_all(jobs, workers), total=n, disable=not (progress and show_progress()),
                                       desc=f"synthetic {split}", unit="img")):
        images[i], points[i] = img, lm
    labels = np.array([label_of(i) for i in range(n)], dtype=np.int64)
    return images, labels, points


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for split, n in counts.items():
        if not split or "/" in split or "\\" in split or split.startswith("."):
            raise ValueError(f"bad split name {split!r}")
        if int(n) != n or n < 0:
            raise ValueError(f"count for split {split!r} must be a non-negative integer, got {n!r}")
        out[split] = int(n)
    return out


def _check_difficulty(difficulty: str) -> None:
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}; choose from {sorted(DIFFICULTIES)}")


def _is_non_empty(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def generate_dataset(out_dir: str | Path, counts: Mapping[str, int] | None = None, size: int = 128, seed: int = 0,
                     progress: bool = True, overwrite: bool = False, workers: int = 1, difficulty: str = "standard") -> Path:
    """Write ``counts[split]`` images per expression for each split under ``out_dir``; returns the root.

    Everything is written into a temporary directory beside ``out_dir`` and renamed into place at
    the end, so an interrupted run leaves nothing half-written. An existing non-empty ``out_dir``
    is refused (:class:`FileExistsError`) unless ``overwrite=True``.
    """
    counts = _check_counts(DEFAULT_COUNTS if counts is None else counts)
    _check_difficulty(difficulty)
    out = Path(out_dir).absolute()
    if _is_non_empty(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        jobs = [(seed, split, i, size, difficulty) for split, n in counts.items() for i in range(n * len(LABELS))]
        for split in counts:
            for name in LABELS:
                (tmp / split / name).mkdir(parents=True)
        points: dict[str, np.ndarray] = {}
        results = _render_all(jobs, workers)
        try:
            for (_, split, index, _, _), (img, lm) in tqdm(zip(jobs, results), total=len(jobs), disable=not (progress and show_progress()),
                                                       desc="synthetic faces", unit="img"):
                rel = image_path(split, index)
                Image.fromarray(img).save(tmp / rel, format="PNG")
                points[rel] = lm
        finally:
            results.close()
        save_landmarks(tmp / LANDMARKS_FILE, points)
        manifest = {
            "generator": "udc.train.synthetic",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "size": size,
            "difficulty": difficulty,
            "labels": list(LABELS),
            "counts": {split: {name: n for name in LABELS} for split, n in counts.items()},
            "total": len(jobs),
            "layout": "{split}/{label}/{split}_{index:05d}.png; label = LABELS[index % 7]",
            "seeding": "numpy.random.default_rng([seed, zlib.crc32(split), index]); one identity per image",
            "landmarks": LANDMARKS_FILE,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _swap_in(tmp: Path, out: Path) -> None:
    """Move the finished tree to ``out``, replacing what is there (already checked to be allowed)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)

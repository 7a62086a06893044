"""A generic folder-per-class image tree (also the layout of the project's synthetic dataset).

Two layouts are recognised:

* ``ROOT/<class>/<image>``: every image is "train".
* ``ROOT/<split>/<class>/<image>`` when any top-level folder is a split name: ``train``/``training``
  -> "train", ``val``/``valid``/``validation`` -> "val", ``test``/``testing`` -> "test" (case-insensitive).
  Other top-level folders are then ignored.

Images are files with extension .jpg/.jpeg/.png/.bmp/.webp (any case), found recursively inside each
class folder; other files are ignored, and images that are not inside a class folder are counted as
``"no class folder"``. Class folder names map to canonical labels case-insensitively after stripping a
leading number and separator (``"1_happy"``, ``"0-neutral"``, ``"07 Neutral"``):

====================  ==========================================
canonical label       folder names
====================  ==========================================
neutral               neutral
happiness             happy, happiness, joy
sadness               sad, sadness
surprise              surprise, surprised
fear                  fear, fearful, afraid, scared
disgust               disgust, disgusted
anger                 anger, angry, mad
====================  ==========================================

An augmented copy of another image is dropped and counted as ``"augmented copy"``: a file named after an
image of the same folder plus a number and an image extension (``Training_10371709.jpg3.jpg`` beside
``Training_10371709.jpg``; the public FER2013 class-folder mirror ships 4,376 such disgust copies, which
would otherwise turn 436 Training disgust faces into 3,924 and leak copies into the validation and test
splits).

Other class folders (e.g. ``contempt``) are dropped: their images are counted as ``"unknown class"``
and the folder name maps to ``"(dropped)"`` in ``label_map`` (whose keys are the folder names as
found). Record keys are paths relative to ROOT with forward slashes, e.g.
``train/happiness/train_00001.png``.

Landmarks: when ``ROOT/landmarks68.npz`` exists (:mod:`udc.train.landmark_store` format, keyed by
those record keys), records whose key is in it carry its [68, 2] float32 points; others have None.
The synthetic generator writes exactly this layout: ``OUT/{train,val,test}/{label}/{name}.png`` plus
``OUT/landmarks68.npz``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..landmark_store import LANDMARKS_FILE, load_landmarks
from .base import DatasetError, DatasetIndex, FaceRecord
from ._common import DROPPED, LABEL_INDEX, finish, is_image, require_dir

SPLIT_ALIASES: dict[str, str] = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}

CLASS_SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "happy": "happiness", "happiness": "happiness", "joy": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "anger": "anger", "angry": "anger", "mad": "anger",
}

_LEADING_NUMBER = re.compile(r"^\d+[\s_.\-]*")


def canonical_class(folder_name: str) -> str | None:
    """``"1_Happy"`` -> ``"happiness"``; None for a name with no canonical counterpart."""
    name = _LEADING_NUMBER.sub("", folder_name.strip().lower()).strip()
    return CLASS_SYNONYMS.get(name)


def _subdirs(path: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _images(path: Path) -> list[Path]:
    """Image files under ``path``, recursively (hidden folders skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out.extend(Path(dirpath) / f for f in filenames if is_image(f))
    return out


_COPY = re.compile(r"^(?P<original>.+\.(?:jpe?g|png|bmp|webp))\d+\.(?:jpe?g|png|bmp|webp)$", re.IGNORECASE)


def augmented_copy(path: Path) -> bool:
    """True for ``NAME.jpgN.jpg`` when ``NAME.jpg`` is a file in the same folder (an augmented copy of it)."""
    m = _COPY.match(path.name)
    return m is not None and (path.parent / m.group("original")).is_file()


def _loose_images(path: Path) -> int:
    return sum(1 for e in os.scandir(path) if e.is_file() and is_image(e.name))


def split_folders(root: Path) -> dict[Path, str]:
    """Top-level folders of ``root`` that name a split -> that split ({} for the flat layout)."""
    return {d: SPLIT_ALIASES[d.name.lower()] for d in _subdirs(root) if d.name.lower() in SPLIT_ALIASES}


def load_folder(root: str | Path) -> DatasetIndex:
    """Index a folder-per-class tree (see the module docstring for the layouts and folder names)."""
    root = require_dir(root, "folder")
    splits = split_folders(root)
    groups = splits.items() if splits else [(root, "train")]

    dropped: Counter[str] = Counter()
    if not splits:
        dropped["no class folder"] += _loose_images(root)
    label_map: dict[str, str] = {}
    class_dirs: list[tuple[Path, str]] = []
    for split_dir, split in groups:
        if splits:
            dropped["no class folder"] += _loose_images(split_dir)
        class_dirs.extend((d, split) for d in _subdirs(split_dir))
    if not class_dirs:
        raise DatasetError(f"folder: expected class folders (ROOT/<class>/ or ROOT/<split>/<class>/) "
                           f"under {str(root)!r}")

    landmarks = load_landmarks(root / LANDMARKS_FILE)
    records: list[FaceRecord] = []
    for class_dir, split in class_dirs:
        canonical = canonical_class(class_dir.name)
        label_map[class_dir.name] = canonical or DROPPED
        images = _images(class_dir)
        if canonical is None:
            dropped["unknown class"] += len(images)
            continue
        for path in images:
            if augmented_copy(path):
                dropped["augmented copy"] += 1
                continue
            key = path.relative_to(root).as_posix()
            points = landmarks.get(key)
            if points is not None and np.shape(points) == (68, 2):
                points = np.asarray(points, dtype=np.float32)
            else:
                points = None
            records.append(FaceRecord(key=key, label=LABEL_INDEX[canonical], split=split, path=path,
                                      landmarks=points))
    return finish("folder", root, records, label_map, dropped)

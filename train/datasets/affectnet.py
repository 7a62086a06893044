"""AffectNet (manually annotated part), reduced to AffectNet-7.

Layout::

    ROOT/training.csv
    ROOT/validation.csv
    ROOT/Manually_Annotated_Images/<subDirectory_filePath>     # e.g. 689/737db2...a.jpg

Images directly under ROOT (``ROOT/<subDirectory_filePath>``) are accepted too. At least one of
the two csv files must exist. Columns: ``subDirectory_filePath, face_x, face_y, face_width,
face_height, facial_landmarks, expression, valence, arousal``; the header row is optional (some
releases ship ``validation.csv`` without one: then this column order is assumed). The files are
streamed with the csv module, and images are only checked for existence.

``expression``: 0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger are kept;
7 Contempt, 8 None, 9 Uncertain, 10 Non-Face are dropped (counted as ``"contempt"``, ``"none"``,
``"uncertain"``, ``"non-face"``), as are ``"missing image"`` and ``"bad expression"`` rows.

Splits: ``training.csv`` -> "train", except rows whose ``zlib.crc32(subDirectory_filePath) % 20 == 0``
(about 5%, deterministic) -> "val"; ``validation.csv`` -> "test" (AffectNet's validation set is the
customary test set, its real test set is not public).

``facial_landmarks`` holds 68 points as ``"x1;y1;x2;y2;..."`` in image pixels; when it has exactly 136
finite numbers it becomes the record's ``landmarks`` ([68, 2] float32), otherwise ``landmarks`` is None.
Record keys are image paths relative to ROOT with forward slashes, e.g.
``Manually_Annotated_Images/689/737db2...a.jpg``.
"""
from __future__ import annotations

import csv
import math
import os
from collections import Counter
from itertools import chain
from pathlib import Path

import numpy as np

from .base import DatasetError, DatasetIndex, FaceRecord
from ._common import DROPPED, LABEL_INDEX, finish, require_dir, stable_hash

CSV_SPLITS = (("training.csv", "train"), ("validation.csv", "test"))
IMAGES_DIR = "Manually_Annotated_Images"
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
VAL_MODULUS = 20  # training rows with crc32(path) % VAL_MODULUS == 0 form the val split

#: AffectNet expression code -> canonical label name (or "(dropped)").
AFFECTNET_LABELS: dict[str, str] = {
    "0": "neutral", "1": "happiness", "2": "sadness", "3": "surprise", "4": "fear", "5": "disgust", "6": "anger",
    "7": DROPPED, "8": DROPPED, "9": DROPPED, "10": DROPPED,
}
DROP_REASONS = {"7": "contempt", "8": "none", "9": "uncertain", "10": "non-face"}


def parse_landmarks(text: str | None) -> np.ndarray | None:
    """``"x1;y1;...;x68;y68"`` -> [68, 2] float32, or None when empty or malformed."""
    if not text:
        return None
    parts = [p for p in text.strip().split(";") if p.strip()]
    if len(parts) != 136:
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=np.float32).reshape(68, 2)


class _Listing:
    """Directory listings cached per folder, so existence checks cost one scandir per folder."""

    def __init__(self) -> None:
        self._cache: dict[Path, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._cache:
            try:
                self._cache[folder] = frozenset(e.name for e in os.scandir(folder) if e.is_file())
            except OSError:
                self._cache[folder] = frozenset()
        return path.name in self._cache[folder]


def load_affectnet(root: str | Path) -> DatasetIndex:
    """Index AffectNet-7 (see the module docstring for files, labels, splits and landmarks)."""
    root = require_dir(root, "affectnet")
    present = [(root / name, split) for name, split in CSV_SPLITS if (root / name).is_file()]
    if not present:
        raise DatasetError(f"affectnet: expected training.csv and/or validation.csv in {str(root)!r}")

    listing = _Listing()
    dropped: Counter[str] = Counter()
    records: list[FaceRecord] = []
    for csv_path, split in present:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            first = next(reader, None)
            if first is None:
                continue
            has_header = first[0].strip().lower() == COLUMNS[0].lower()
            header = [h.strip() for h in first] if has_header else list(COLUMNS)
            col = {name: i for i, name in enumerate(header)}
            if COLUMNS[0] not in col or "expression" not in col:
                raise DatasetError(f"affectnet: {csv_path.name} needs columns {COLUMNS[0]} and expression")
            rows = reader if has_header else chain([first], reader)
            for row in rows:
                if not row or not any(cell.strip() for cell in row):
                    continue
                rel = _cell(row, col, COLUMNS[0]).replace("\\", "/").strip("/")
                code = _cell(row, col, "expression")
                try:
                    code = str(int(float(code)))
                except ValueError:
                    dropped["bad expression"] += 1
                    continue
                canonical = AFFECTNET_LABELS.get(code)
                if canonical is None:
                    dropped["bad expression"] += 1
                    continue
                if canonical == DROPPED:
                    dropped[DROP_REASONS[code]] += 1
                    continue
                if not rel:
                    dropped["missing image"] += 1
                    continue
                path = next((p for p in (root / IMAGES_DIR / rel, root / rel) if listing.exists(p)), None)
                if path is None:
                    dropped["missing image"] += 1
                    continue
                row_split = "val" if split == "train" and stable_hash(rel) % VAL_MODULUS == 0 else split
                records.append(FaceRecord(
                    key=path.relative_to(root).as_posix(), label=LABEL_INDEX[canonical], split=row_split,
                    path=path, landmarks=parse_landmarks(_cell(row, col, "facial_landmarks"))))
    return finish("affectnet", root, records, AFFECTNET_LABELS, dropped)


def _cell(row: list[str], col: dict[str, int], name: str) -> str:
    i = col.get(name)
    return row[i].strip() if i is not None and i < len(row) else ""

"""FER+ (FERPlus): the FER2013 pixels with the FER+ crowd-sourced labels.

Layout::

    ROOT/fer2013.csv      # columns: emotion, pixels, Usage
    ROOT/fer2013new.csv   # columns: Usage, Image name, neutral, happiness, surprise, sadness, anger,
                          #          disgust, fear, contempt, unknown, NF

The two files are aligned row by row (row *i* of ``fer2013new.csv`` labels row *i* of
``fer2013.csv``); a different number of rows is a :class:`DatasetError`. ``pixels`` holds 2304
space-separated integers, a 48x48 grayscale face, which each record carries inline as a
``[48, 48] uint8`` array (``path`` is None). The original FER2013 ``emotion`` column is ignored.

Labels follow FERPlus's "majority" mode (``microsoft/FERPlus``, ``src/ferplus.py``): the vote counts
of all ten columns are taken, emotions with a single vote are zeroed first (FERPlus's outlier
removal; turn off with ``drop_single_votes=False``), and the class with the most remaining votes
wins if it has strictly more than half of them; otherwise the row is dropped (``"no majority"``).
A winning ``unknown``, ``NF`` or ``contempt`` (not one of the 7 canonical labels) is dropped too, as
is a row with an empty ``Image name`` (FERPlus's own tooling skips those).

Splits follow ``Usage``: Training -> "train", PublicTest -> "val", PrivateTest -> "test"
(``fer2013new.csv``'s value, falling back to ``fer2013.csv``'s when empty). Record keys are the
zero-padded row index, e.g. ``ferplus/00012`` (that row's image is ``fer0000012.png`` in FERPlus).

Dropped reasons: ``"empty image name"``, ``"no majority"``, ``"winner unknown"``,
``"winner NF"``, ``"winner contempt"``, ``"unknown usage"``, ``"bad pixels"``, ``"bad votes"``.
"""
from __future__ import annotations

import csv
import warnings
from collections import Counter
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path

import numpy as np

from .base import DatasetError, DatasetIndex, FaceRecord
from ._common import DROPPED, LABEL_INDEX, finish, require_dir

PIXELS_CSV = "fer2013.csv"
LABELS_CSV = "fer2013new.csv"

#: The vote columns of fer2013new.csv, in file order.
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")

#: FER+ vote column -> canonical label name (or "(dropped)").
FERPLUS_LABELS: dict[str, str] = {
    "neutral": "neutral", "happiness": "happiness", "surprise": "surprise", "sadness": "sadness",
    "anger": "anger", "disgust": "disgust", "fear": "fear",
    "contempt": DROPPED, "unknown": DROPPED, "NF": DROPPED,
}

USAGE_SPLITS = {"training": "train", "publictest": "val", "privatetest": "test"}


def majority_vote(votes: list[float], drop_single_votes: bool = True) -> int | None:
    """Index of the winning column under FERPlus's majority rule, or None when nothing has > 50%."""
    if drop_single_votes:
        votes = [0.0 if v <= 1.0 else v for v in votes]
    total = sum(votes)
    best = max(range(len(votes)), key=votes.__getitem__)
    return best if total > 0 and votes[best] > 0.5 * total else None


def _parse_pixels(text: str) -> np.ndarray | None:
    """2304 space-separated ints in 0..255 -> int array, or None when malformed."""
    with warnings.catch_warnings():  # numpy warns (DeprecationWarning) on trailing junk: treat as malformed
        warnings.simplefilter("error", DeprecationWarning)
        try:
            pixels = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
        return None
    return pixels


def _check_columns(px_row: dict[str, str], lab_row: dict[str, str]) -> None:
    missing = [f"{PIXELS_CSV}:{c}" for c in ("pixels", "Usage") if c not in px_row]
    missing += [f"{LABELS_CSV}:{c}" for c in ("Usage", "Image name", *VOTE_COLUMNS) if c not in lab_row]
    if missing:
        raise DatasetError(f"ferplus: missing columns {', '.join(missing)}")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        yield from csv.DictReader(fh)


def load_ferplus(root: str | Path, drop_single_votes: bool = True) -> DatasetIndex:
    """Index FER+ (see the module docstring for the files, the label rule and the splits)."""
    root = require_dir(root, "ferplus")
    for name in (PIXELS_CSV, LABELS_CSV):
        if not (root / name).is_file():
            raise DatasetError(f"ferplus: expected {PIXELS_CSV} and {LABELS_CSV} in {str(root)!r}; {name} is missing")

    dropped: Counter[str] = Counter()
    records: list[FaceRecord] = []
    for i, (px_row, lab_row) in enumerate(zip_longest(_rows(root / PIXELS_CSV), _rows(root / LABELS_CSV))):
        if px_row is None or lab_row is None:
            raise DatasetError(f"ferplus: {PIXELS_CSV} and {LABELS_CSV} have different numbers of rows "
                               f"(they must be aligned 1:1)")
        if i == 0:
            _check_columns(px_row, lab_row)
        if not (lab_row.get("Image name") or "").strip():
            dropped["empty image name"] += 1
            continue
        try:
            votes = [float(lab_row[c] or 0) for c in VOTE_COLUMNS]
        except (KeyError, TypeError, ValueError):
            dropped["bad votes"] += 1
            continue
        winner = majority_vote(votes, drop_single_votes)
        if winner is None:
            dropped["no majority"] += 1
            continue
        canonical = FERPLUS_LABELS[VOTE_COLUMNS[winner]]
        if canonical == DROPPED:
            dropped[f"winner {VOTE_COLUMNS[winner]}"] += 1
            continue
        usage = (lab_row.get("Usage") or px_row.get("Usage") or "").strip().lower()
        split = USAGE_SPLITS.get(usage)
        if split is None:
            dropped["unknown usage"] += 1
            continue
        pixels = _parse_pixels(px_row.get("pixels") or "")
        if pixels is None:
            dropped["bad pixels"] += 1
            continue
        records.append(FaceRecord(key=f"ferplus/{i:05d}", label=LABEL_INDEX[canonical], split=split,
                                  path=None, pixels=pixels.astype(np.uint8).reshape(48, 48)))
    return finish("ferplus", root, records, FERPLUS_LABELS, dropped)

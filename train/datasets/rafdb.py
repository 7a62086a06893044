"""RAF-DB ("basic" subset) with its aligned 100x100 faces.

Layout (as distributed)::

    ROOT/EmoLabel/list_patition_label.txt      # sic: "patition"
    ROOT/Image/aligned/train_00001_aligned.jpg
    ROOT/Image/aligned/test_0001_aligned.jpg

Also accepted: the label file directly at ``ROOT/list_patition_label.txt`` and the images at
``ROOT/aligned/``. When both locations exist the ``EmoLabel/`` / ``Image/aligned/`` ones win.

Each non-empty line of the label file is ``<image name> <code>``, e.g. ``train_00001.jpg 5``, with
codes 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral. The image for
``train_00001.jpg`` is ``train_00001_aligned.jpg`` in the aligned folder. The split comes from the
file-name prefix: ``train_*`` -> "train", ``test_*`` -> "test" (RAF-DB has no validation split;
none is carved here). Record keys are the image paths relative to ROOT, e.g.
``Image/aligned/train_00001_aligned.jpg``.

Dropped (counted in ``DatasetIndex.dropped``): ``"missing image"`` (listed but not on disk),
``"unknown label"`` (a code outside 1-7), ``"unknown split"`` (a name not starting with
``train``/``test``), ``"malformed line"``.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .base import DatasetError, DatasetIndex, FaceRecord
from ._common import DROPPED, LABEL_INDEX, finish, require_dir

LABEL_FILE = "list_patition_label.txt"

#: RAF-DB basic emotion code -> canonical label name.
RAFDB_LABELS: dict[str, str] = {
    "1": "surprise", "2": "fear", "3": "disgust", "4": "happiness", "5": "sadness", "6": "anger", "7": "neutral",
}


def find_label_file(root: Path) -> Path | None:
    for cand in (root / "EmoLabel" / LABEL_FILE, root / LABEL_FILE):
        if cand.is_file():
            return cand
    return None


def _image_dir(root: Path) -> Path:
    for cand in (root / "Image" / "aligned", root / "aligned"):
        if cand.is_dir():
            return cand
    return root / "Image" / "aligned"


def load_rafdb(root: str | Path) -> DatasetIndex:
    """Index a RAF-DB basic tree (see the module docstring for the exact layout)."""
    root = require_dir(root, "rafdb")
    label_file = find_label_file(root)
    if label_file is None:
        raise DatasetError(f"rafdb: expected {LABEL_FILE} in {str(root / 'EmoLabel')!r} or {str(root)!r}")
    image_dir = _image_dir(root)
    on_disk = {e.name for e in os.scandir(image_dir) if e.is_file()} if image_dir.is_dir() else set()

    label_map = dict(RAFDB_LABELS)
    dropped: Counter[str] = Counter()
    records: list[FaceRecord] = []
    with open(label_file, encoding="utf-8-sig") as fh:
        for line in fh:
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                dropped["malformed line"] += 1
                continue
            name, code = parts
            canonical = RAFDB_LABELS.get(code)
            if canonical is None:
                label_map.setdefault(code, DROPPED)
                dropped["unknown label"] += 1
                continue
            prefix = name.split("_", 1)[0].lower()
            if prefix not in ("train", "test"):
                dropped["unknown split"] += 1
                continue
            stem, ext = os.path.splitext(name)
            aligned = f"{stem}_aligned{ext}"
            if aligned not in on_disk:
                dropped["missing image"] += 1
                continue
            path = image_dir / aligned
            records.append(FaceRecord(key=path.relative_to(root).as_posix(), label=LABEL_INDEX[canonical],
                                      split=prefix, path=path))
    return finish("rafdb", root, records, label_map, dropped)

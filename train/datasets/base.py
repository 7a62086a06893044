"""What every dataset loader returns: an index of face records with canonical labels.

A loader never decodes images while indexing: it parses the dataset's own label files and
returns :class:`FaceRecord` s. Labels are indices into :data:`udc.sdk.labels.LABELS`
(neutral, happiness, sadness, surprise, fear, disgust, anger); ``label_map`` records how the
dataset's own label names/codes map onto them, and ``dropped`` counts what was left out and why.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from udc.sdk.labels import LABELS

SPLITS = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset tree that cannot be read: missing label file, unknown format, no usable samples."""


@dataclass(frozen=True, eq=False)
class FaceRecord:
    key: str  # unique, stable id within the dataset (usually the image path relative to the root)
    label: int  # index into LABELS
    split: str  # "train" | "val" | "test"
    path: Path | None = None  # the image file; None when the pixels are stored inline (FERPlus)
    pixels: np.ndarray | None = None  # HxW or HxWx3 uint8, for inline datasets
    landmarks: np.ndarray | None = None  # [68, 2] float32 image-pixel coordinates when the dataset ships them

    @property
    def label_name(self) -> str:
        return LABELS[self.label]


@dataclass
class DatasetIndex:
    name: str  # "rafdb" | "ferplus" | "kdef" | "affectnet" | "folder" | ...
    root: Path
    records: list[FaceRecord]
    label_map: dict[str, str]  # the dataset's own label (name or code) -> canonical label name, or "(dropped)"
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def split(self, name: str) -> list[FaceRecord]:
        return [r for r in self.records if r.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> canonical label -> count."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            c = Counter(r.label for r in self.records if r.split == split)
            if c:
                out[split] = {LABELS[i]: c.get(i, 0) for i in range(len(LABELS))}
        return out

    def write_label_mapping(self, path: str | Path) -> Path:
        """Write the mapping, the counts and what was dropped as JSON (the record of what was trained on)."""
        path = Path(path)
        path.write_text(json.dumps({
            "dataset": self.name, "root": str(self.root), "canonical_labels": list(LABELS),
            "label_map": self.label_map, "dropped": self.dropped, "counts": self.counts(),
        }, indent=2))
        return path

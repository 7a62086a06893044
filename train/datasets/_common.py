"""Small helpers shared by the dataset loaders (private: not part of the public API)."""
from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from udc.sdk.labels import LABELS

from .base import DatasetError, DatasetIndex, FaceRecord

#: The marker a ``label_map`` uses for a dataset label that has no canonical counterpart.
DROPPED = "(dropped)"

#: Image file extensions the file-based loaders index (compared case-insensitively).
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}


def is_image(name: str | Path) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTS` (any case) and is not hidden."""
    name = Path(name).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTS


def rel_key(path: Path, root: Path) -> str:
    """The record key for a file: its path relative to ``root`` with forward slashes."""
    return path.relative_to(root).as_posix()


def stable_hash(text: str) -> int:
    """A hash that is the same on every machine and Python run (``zlib.crc32`` of the UTF-8 bytes)."""
    return zlib.crc32(text.encode("utf-8"))


def require_dir(root: str | Path, name: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset root {str(root)!r} is not a directory")
    return root


def finish(name: str, root: Path, records: Iterable[FaceRecord], label_map: dict[str, str],
           dropped: Counter[str]) -> DatasetIndex:
    """Drop duplicate keys (first one wins, counted as ``"duplicate key"``), sort by key, and refuse an
    index with zero usable samples."""
    seen: dict[str, FaceRecord] = {}
    for rec in records:
        if rec.key in seen:
            dropped["duplicate key"] += 1
        else:
            seen[rec.key] = rec
    if not seen:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())) or "nothing found"
        raise DatasetError(f"{name}: no usable samples under {str(root)!r} ({why})")
    return DatasetIndex(name=name, root=root, records=[seen[k] for k in sorted(seen)],
                        label_map=dict(label_map), dropped={k: v for k, v in sorted(dropped.items()) if v})

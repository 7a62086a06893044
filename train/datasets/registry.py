"""Pick the loader for a dataset tree: by name, or by looking at what the tree contains.

``detect_format(root)`` checks, in order:

1. ``rafdb``: ``EmoLabel/list_patition_label.txt`` or ``list_patition_label.txt``
2. ``ferplus``: ``fer2013new.csv`` (``fer2013.csv`` alone is FER2013 without the FER+ labels: an error)
3. ``affectnet``: ``training.csv`` or ``validation.csv``
4. ``folder``: a top-level folder named like a split (train/val/test...) or a known class (happy, ...)
5. ``kdef``: image files named like KDEF (``AF01ANS.JPG``), searched recursively
6. ``folder`` as the fallback: top-level folders with images in them (or one level further down)

and raises :class:`DatasetError` when none applies.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .affectnet import CSV_SPLITS, load_affectnet
from .base import DatasetError, DatasetIndex
from .ferplus import LABELS_CSV, PIXELS_CSV, load_ferplus
from .folder import SPLIT_ALIASES, canonical_class, load_folder
from .kdef import load_kdef, parse_kdef_name
from .rafdb import find_label_file, load_rafdb
from ._common import is_image

FORMATS: dict[str, Callable[..., DatasetIndex]] = {
    "rafdb": load_rafdb,
    "ferplus": load_ferplus,
    "kdef": load_kdef,
    "affectnet": load_affectnet,
    "folder": load_folder,
}

EXPECTED = ("EmoLabel/list_patition_label.txt (rafdb), fer2013.csv + fer2013new.csv (ferplus), "
            "training.csv/validation.csv (affectnet), KDEF-named images like AF01ANS.JPG (kdef), "
            "or class folders ROOT/<class>/ or ROOT/<split>/<class>/ (folder)")

_SCAN_IMAGES = 200  # image files looked at when sniffing for KDEF names
_SCAN_DIRS = 2000  # folders walked at most while sniffing


def _subdirs(root: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _looks_like_kdef(root: Path) -> bool:
    hits = total = dirs = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        dirs += 1
        for fname in filenames:
            if is_image(fname):
                total += 1
                hits += parse_kdef_name(fname) is not None
        if total >= _SCAN_IMAGES or dirs >= _SCAN_DIRS:
            break
    return hits > 0 and 2 * hits >= total


def _has_images_in_subdirs(root: Path) -> bool:
    for d in _subdirs(root):
        if any(e.is_file() and is_image(e.name) for e in os.scandir(d)):
            return True
        for sub in _subdirs(d):
            if any(e.is_file() and is_image(e.name) for e in os.scandir(sub)):
                return True
    return False


def detect_format(root: str | Path) -> str:
    """The name of the format (a key of :data:`FORMATS`) the tree at ``root`` is in."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {str(root)!r} is not a directory")
    if find_label_file(root) is not None:
        return "rafdb"
    if (root / LABELS_CSV).is_file():
        return "ferplus"
    if (root / PIXELS_CSV).is_file():
        raise DatasetError(f"{str(root)!r} has {PIXELS_CSV} but not {LABELS_CSV}: plain FER2013 is not supported, "
                           f"add the FER+ labels file {LABELS_CSV} next to it")
    if any((root / name).is_file() for name, _ in CSV_SPLITS):
        return "affectnet"
    top = [d.name for d in _subdirs(root)]
    if any(n.lower() in SPLIT_ALIASES or canonical_class(n) is not None for n in top):
        return "folder"
    if _looks_like_kdef(root):
        return "kdef"
    if _has_images_in_subdirs(root):
        return "folder"
    raise DatasetError(f"no dataset recognised under {str(root)!r}: expected {EXPECTED}")


def open_dataset(root: str | Path, format: str = "auto", **kw: Any) -> DatasetIndex:
    """Index the dataset at ``root``: ``format`` is a key of :data:`FORMATS` or ``"auto"``
    (:func:`detect_format`); ``kw`` go to the loader (e.g. ``angles={"S"}`` for kdef)."""
    name = detect_format(root) if format == "auto" else format.lower()
    loader = FORMATS.get(name)
    if loader is None:
        raise DatasetError(f"unknown dataset format {format!r}: expected auto or one of {', '.join(FORMATS)}")
    sig = inspect.signature(loader)
    try:
        sig.bind(root, **kw)
    except TypeError:
        accepted = ", ".join(list(sig.parameters)[1:]) or "none"
        raise DatasetError(f"{name}: unsupported option(s) {', '.join(sorted(kw))} (accepted: {accepted})") from None
    return loader(root, **kw)

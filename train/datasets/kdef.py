"""KDEF (Karolinska Directed Emotional Faces).

Files are found recursively under ROOT (the distribution nests them per sequence, e.g.
``KDEF/AF01/AF01ANS.JPG``); extensions .jpg/.jpeg/.png/.bmp/.webp in any case. Names (case-insensitive)
follow ``<session><gender><id><expression><angle>``:

* char 0: session ``A`` or ``B``; char 1: gender ``F`` or ``M``; chars 2-3: subject number (``01``..)
* chars 4-5: expression ``AF`` afraid, ``AN`` angry, ``DI`` disgusted, ``HA`` happy, ``NE`` neutral,
  ``SA`` sad, ``SU`` surprised
* the rest: angle ``FL`` full left, ``HL`` half left, ``S`` straight, ``HR`` half right, ``FR`` full right

e.g. ``AF01ANS.JPG`` (session A, female 01, angry, straight) or ``BM23HAFL.JPG``. ``angles`` keeps only
the given angles (e.g. ``{"S"}`` for frontal faces); the others are counted as ``"angle not selected"``.
Image files whose names do not parse are counted as ``"unparseable name"``; other files are ignored.

Splits: KDEF has no official split, so one is made subject-wise and deterministically. A subject is
gender + number (``"F01"``; sessions A and B of one person are the same subject). The subjects found
(all parseable files, before the angle filter) are ordered by ``zlib.crc32`` of that string (ties by
the string); the first ``round(0.1 * n)`` go to "test", the next ``round(0.1 * n)`` to "val" and the
rest to "train" (at least one each for val and test once there are 3 or more subjects; fewer -> all
"train"). So no person is in two splits, and the full 70-subject KDEF gives 56/7/7 subjects. The split
depends only on which subjects are present, not on file order, machine or angle filter.

Record keys are paths relative to ROOT with forward slashes, e.g. ``KDEF/AF01/AF01ANS.JPG``.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .base import DatasetError, DatasetIndex, FaceRecord
from ._common import LABEL_INDEX, finish, is_image, require_dir, stable_hash

#: KDEF expression code -> canonical label name.
KDEF_LABELS: dict[str, str] = {
    "AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happiness", "NE": "neutral", "SA": "sadness",
    "SU": "surprise",
}
ANGLES = ("FL", "HL", "S", "HR", "FR")
NAME_RE = re.compile(r"^([AB])([FM])(\d{2})(AF|AN|DI|HA|NE|SA|SU)(FL|HL|S|HR|FR)$")

VAL_FRACTION = 0.1
TEST_FRACTION = 0.1


def parse_kdef_name(name: str) -> tuple[str, str, str, str] | None:
    """``"AF01ANS.JPG"`` -> (session "A", subject "F01", expression "AN", angle "S"); None if not KDEF."""
    m = NAME_RE.match(Path(name).stem.upper())
    if m is None:
        return None
    session, gender, num, expr, angle = m.groups()
    return session, gender + num, expr, angle


def subject_splits(subjects: Iterable[str]) -> dict[str, str]:
    """Subject -> split, by the deterministic crc32 ordering described in the module docstring."""
    order = sorted(set(subjects), key=lambda s: (stable_hash(s), s))
    n = len(order)
    n_test = max(1, round(TEST_FRACTION * n)) if n >= 3 else 0
    n_val = max(1, round(VAL_FRACTION * n)) if n >= 3 else 0
    out = {}
    for i, subject in enumerate(order):
        out[subject] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def load_kdef(root: str | Path, angles: Iterable[str] | None = None) -> DatasetIndex:
    """Index a KDEF tree, optionally only some camera ``angles`` (see the module docstring)."""
    root = require_dir(root, "kdef")
    keep = None
    if angles is not None:
        keep = {a.upper() for a in ([angles] if isinstance(angles, str) else angles)}
        if not keep or not keep <= set(ANGLES):
            raise DatasetError(f"kdef: angles must be a non-empty subset of {', '.join(ANGLES)}; got {sorted(keep)}")

    dropped: Counter[str] = Counter()
    found: list[tuple[Path, str, str, str]] = []  # path, subject, expression, angle
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for fname in filenames:
            if not is_image(fname):
                continue
            parsed = parse_kdef_name(fname)
            if parsed is None:
                dropped["unparseable name"] += 1
                continue
            _, subject, expr, angle = parsed
            found.append((Path(dirpath) / fname, subject, expr, angle))

    splits = subject_splits(s for _, s, _, _ in found)
    records: list[FaceRecord] = []
    for path, subject, expr, angle in found:
        if keep is not None and angle not in keep:
            dropped["angle not selected"] += 1
            continue
        records.append(FaceRecord(key=path.relative_to(root).as_posix(), label=LABEL_INDEX[KDEF_LABELS[expr]],
                                  split=splits[subject], path=path))
    return finish("kdef", root, records, KDEF_LABELS, dropped)

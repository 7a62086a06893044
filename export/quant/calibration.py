"""Real preprocessed faces for calibration (int8) and for the parity report.

Faces go through exactly what an app does: the face pipeline's similarity alignment to the
model's crop (:func:`udc.sdk.faces.align.align_face` via :class:`udc.sdk.faces.pipeline.FacePipeline`)
and :func:`udc.sdk.faces.pipeline.to_model_input` (RGB, /255, the config's mean/std (CLIP for LRDif, ImageNet
for DDAMFN), NCHW), with the 68
landmarks in crop units. Two disjoint sets are drawn: ``calibration`` (observers, recipe choice)
and ``held_out`` (the parity report).

Sources:

* ``--calib DIR``: any dataset :func:`udc.train.datasets.open_dataset` reads. Records carry landmarks
  (AffectNet, the synthetic set) or get them from :func:`udc.train.datasets.landmark_cache.ensure_landmarks`
  (MediaPipe, cached as ``DIR/landmarks68.npz``); records with no face are skipped. Calibration comes
  from the train split, the held-out set from val/test (or from the remaining train records).
* default: the procedural synthetic faces of :mod:`udc.train.synthetic` (train split for
  calibration, test split for held-out: no identity shared), imported only when used.

Every choice is seeded: the same arguments give the same tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udc.sdk.models.config import LRDifConfig
from udc.sdk.faces.pipeline import FacePipeline, to_model_input
from udc.sdk.labels import LABELS


class CalibrationError(ValueError):
    """Calibration data missing, unreadable or empty (the message says what to do)."""


@dataclass
class FaceSet:
    images: torch.Tensor  # [N, 3, S, S] float32, CLIP-normalised
    landmarks: torch.Tensor  # [N, 68, 2] float32, crop units
    noise: torch.Tensor  # [N, C] float32 ~ N(0, I): the denoiser's initial noise per sample
    labels: np.ndarray  # [N] int64 (-1 where unknown)
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def describe(self) -> dict[str, Any]:
        return {**self.source, "n": len(self)}


def _aligned(rgbs: list[np.ndarray], points: list[np.ndarray], cfg: LRDifConfig) -> tuple[torch.Tensor, torch.Tensor]:
    pipe = FacePipeline(crop_size=cfg.image_size, detector=object())  # landmarks given: no detector used
    crops, lms = [], []
    for rgb, lm in zip(rgbs, points):
        face = pipe(rgb, landmarks=lm)
        crops.append(face.image)
        lms.append(face.landmarks)
    images = to_model_input(crops, cfg.mean, cfg.std).contiguous()
    return images, torch.from_numpy(np.stack(lms).astype(np.float32))


def _noise(n: int, c: int, seed: int) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def _faceset(rgbs, points, labels, cfg: LRDifConfig, seed: int, source: dict[str, Any]) -> FaceSet:
    images, lms = _aligned(rgbs, points, cfg)
    dim = cfg.fpen.epr_dim if hasattr(cfg, "fpen") else 0  # DDAMFN takes no noise: an empty [N, 0] tensor
    return FaceSet(images, lms, _noise(len(rgbs), dim, seed), np.asarray(labels, np.int64), source)


def synthetic_faces(cfg: LRDifConfig, n: int, seed: int = 0, split: str = "train") -> FaceSet:
    """``n`` synthetic faces (balanced over the 7 expressions), rendered at the crop size and aligned."""
    try:
        from udc.train.synthetic.dataset import generate_arrays
    except ImportError as e:  # pragma: no cover - depends on the train package being present
        raise CalibrationError(f"the synthetic face generator (udc.train.synthetic) is not available ({e}): "
                               "pass --calib DIR with a face dataset") from e
    per_class = -(-n // len(LABELS))
    images, labels, points = generate_arrays(per_class, size=cfg.image_size, seed=seed, split=split)
    images, labels, points = images[:n], labels[:n], points[:n]
    return _faceset(list(images), list(points), labels, cfg, seed * 1000 + (0 if split == "train" else 1),
                    {"kind": "synthetic", "generator": "udc.train.synthetic", "split": split, "seed": seed})


def _pick(records: list, n: int, seed: int) -> list:
    """Up to ``n`` records, round-robin over labels after a seeded shuffle (class-balanced, deterministic)."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list] = {}
    for r in sorted(records, key=lambda r: r.key):
        by_label.setdefault(r.label, []).append(r)
    for lst in by_label.values():
        rng.shuffle(lst)
    out, i = [], 0
    pools = [by_label[k] for k in sorted(by_label)]
    while len(out) < n and any(i < len(p) for p in pools):
        out += [p[i] for p in pools if i < len(p)]
        i += 1
    return out[:n]


def _load_records(records: list, index, cfg: LRDifConfig, progress: bool) -> tuple[list, list, list, int]:
    from udc.sdk.errors import ImageError
    from udc.sdk.faces.images import load_image
    from udc.train.datasets.base import DatasetIndex
    from udc.train.datasets.landmark_cache import ensure_landmarks

    need = [r for r in records if r.landmarks is None]
    cached: dict[str, np.ndarray] = {}
    if need:
        sub = DatasetIndex(index.name, index.root, need, index.label_map)
        cached = ensure_landmarks(sub, progress=progress)
    rgbs, points, labels, skipped = [], [], [], 0
    for r in records:
        raw = r.landmarks if r.landmarks is not None else cached.get(r.key)
        lm = None if raw is None else np.asarray(raw, np.float32)
        if lm is None or lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
            skipped += 1
            continue
        try:
            rgb = load_image(r.pixels if r.pixels is not None else r.path)
        except ImageError:
            skipped += 1
            continue
        rgbs.append(rgb)
        points.append(lm)
        labels.append(r.label)
    return rgbs, points, labels, skipped


def dataset_faces(root: str | Path, cfg: LRDifConfig, calib_n: int, eval_n: int, seed: int = 0,
                  progress: bool = False) -> tuple[FaceSet, FaceSet]:
    from udc.train.datasets import DatasetError, open_dataset

    root = Path(root)
    if not root.exists():
        raise CalibrationError(f"calibration data {root} does not exist: pass --calib DIR with a face dataset "
                               "(RAF-DB, FERPlus, KDEF, AffectNet or class folders), or omit --calib for synthetic faces")
    try:
        index = open_dataset(root)
    except DatasetError as e:
        raise CalibrationError(f"calibration data {root}: {e}") from e
    if not index.records:
        raise CalibrationError(f"calibration data {root} has no usable face images: point --calib at a dataset "
                               "with images, or omit --calib for synthetic faces")
    train = [r for r in index.records if r.split == "train"] or list(index.records)
    held = [r for r in index.records if r.split in ("val", "test")]
    calib_recs = _pick(train, calib_n + (0 if held else eval_n), seed)
    if not held:  # one split only: the held-out set is the tail of a disjoint draw
        calib_recs, held_recs = calib_recs[:calib_n], calib_recs[calib_n:]
    else:
        held_recs = _pick(held, eval_n, seed + 1)
    out = []
    for role, recs, s in (("calibration", calib_recs, seed), ("held_out", held_recs, seed + 1)):
        rgbs, points, labels, skipped = _load_records(recs, index, cfg, progress)
        out.append((rgbs, points, labels, skipped, role, s))
    if not out[0][0]:
        raise CalibrationError(f"calibration data {root}: none of the {len(calib_recs)} images picked has a usable "
                               "face (no landmarks found): use a dataset of face photos, or omit --calib")
    sets = []
    for rgbs, points, labels, skipped, role, s in out:
        if not rgbs:  # tiny dataset: evaluate on the calibration faces and say so
            rgbs, points, labels = out[0][0], out[0][1], out[0][2]
            role = "held_out (= calibration faces: the dataset has too few images for a disjoint set)"
        sets.append(_faceset(rgbs, points, labels, cfg, s, {
            "kind": "dataset", "format": index.name, "root": str(root), "role": role, "skipped_no_face": skipped,
        }))
    return sets[0], sets[1]


def calibration_sets(cfg: LRDifConfig, calib: str | Path | None, calib_n: int, eval_n: int, seed: int = 0,
                     progress: bool = False) -> tuple[FaceSet, FaceSet]:
    """``(calibration, held_out)`` faces for ``cfg`` from ``calib`` (a dataset root) or the synthetic set."""
    if calib_n < 1 or eval_n < 1:
        raise CalibrationError("--calib-n and --eval-n must be at least 1")
    if calib is None:
        return synthetic_faces(cfg, calib_n, seed, "train"), synthetic_faces(cfg, eval_n, seed, "test")
    return dataset_faces(calib, cfg, calib_n, eval_n, seed, progress)

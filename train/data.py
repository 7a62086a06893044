"""From a dataset index to training batches: aligned crops, augmentation, the CLIP view.

Every usable record (one with landmarks) is aligned once to the model's crop with the SDK's
face alignment and kept in memory as uint8 (``N x S x S x 3`` bytes: 7 MB for 2,000 tiny crops,
2.3 GB for RAF-DB's 15k at 224). Each sample then yields two views:

* ``clip``: the aligned crop, mirrored when the sample is flipped, nothing else. The frozen CLIP
  tower sees only this view, so its features can be cached on disk (``feature_cache.py``) and a
  cached run computes exactly what an uncached one does.
* ``image``: the same crop with the full augmentation (flip, small rotation, zoom and shift, applied
  with probability ``affine_prob``; the landmarks follow) for UDCformer.

The random UDC degradation (``udc_prob``) is applied later, per batch, by the trainer (batched FFTs), to
*both* views of a drawn sample with the same draw (device profile and noise seed): on a phone both
branches see the one UDC image. The cache holds clean views only and steps aside for degraded ones.
Random erasing (:func:`random_erase`, DDAMFN's recipe) acts on the normalised model input, last.

Augmentation draws come from ``default_rng([seed, epoch, index])``: a sample's augmentation does not
depend on batch order, worker or rank, which is what makes resume and DDP reproducible.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from udc.sdk.faces.align import align_face
from udc.sdk.faces.images import load_image
from udc.sdk.faces.landmarks import FLIP_68
from udc.sdk.console.quiet import show_progress  # progress bars on a terminal only, never in a log file

from .datasets.base import FaceRecord


@dataclass
class Crops:
    images: np.ndarray  # uint8 [N, S, S, 3]
    landmarks: np.ndarray  # float32 [N, 68, 2], crop pixels
    labels: np.ndarray  # int64 [N]
    keys: list[str]
    hashes: list[str]  # sha256 of the crop bytes: the feature-cache key (with the flip flag)
    skipped: int = 0  # records without a face / unreadable
    skipped_labels: np.ndarray | None = None  # int64 [skipped]: their labels (evaluation counts them as wrong)

    def __len__(self) -> int:
        return len(self.labels)


def prepare_crops(records: list[FaceRecord], landmarks: dict[str, np.ndarray], crop_size: int,
                  progress: bool = False) -> Crops:
    from tqdm import tqdm

    imgs, lms, labels, keys, hashes, skipped = [], [], [], [], [], []
    for r in tqdm(records, desc="aligning faces", unit="img", disable=not (progress and show_progress())):
        lm = landmarks.get(r.key)
        if lm is None or not np.isfinite(lm).all():
            skipped.append(r.label)
            continue
        try:
            rgb = load_image(r.pixels if r.pixels is not None else r.path)
        except Exception:  # noqa: BLE001 - unreadable files are counted, not fatal
            skipped.append(r.label)
            continue
        crop, lm_crop, _ = align_face(rgb, lm, crop_size)
        imgs.append(crop)
        lms.append(lm_crop)
        labels.append(r.label)
        keys.append(r.key)
        hashes.append(hashlib.sha256(crop.tobytes()).hexdigest()[:32])
    s = crop_size
    return Crops(np.stack(imgs) if imgs else np.zeros((0, s, s, 3), np.uint8),
                 np.stack(lms).astype(np.float32) if lms else np.zeros((0, 68, 2), np.float32),
                 np.array(labels, dtype=np.int64), keys, hashes, len(skipped), np.array(skipped, dtype=np.int64))


def flip_sample(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: the image, the x coordinates, and the point order (iBUG's flip table)."""
    s = img.shape[1]
    out = lm[list(FLIP_68)].copy()
    out[:, 0] = s - out[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), out


def random_affine(img: np.ndarray, lm: np.ndarray, rng: np.random.Generator, rotate_deg: float,
                  scale_jitter: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate/zoom/shift about the crop centre; landmarks follow exactly."""
    s = img.shape[0]
    a = math.radians(rng.uniform(-rotate_deg, rotate_deg))
    k = rng.uniform(1 - scale_jitter, 1 + scale_jitter)
    t = rng.uniform(-shift, shift, size=2) * s
    c = s / 2.0
    r = k * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    m = np.hstack([r, (np.array([c, c]) + t - r @ np.array([c, c]))[:, None]])  # crop -> augmented crop
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    out = Image.fromarray(img).transform((s, s), Image.AFFINE, data=tuple(inv.ravel()), resample=Image.BILINEAR)
    return np.asarray(out), (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)


class CropDataset(torch.utils.data.Dataset):
    """Items: ``clip`` (uint8 HWC), ``image`` (uint8 HWC), ``landmarks`` ([68,2] crop units),
    ``label``, ``index``, ``flipped``."""

    def __init__(self, crops: Crops, train: bool, seed: int = 0, flip: bool = True, rotate_deg: float = 0.0,
                 scale_jitter: float = 0.0, shift: float = 0.0, affine_prob: float = 1.0):
        self.crops, self.train, self.seed = crops, train, seed
        self.flip, self.rotate_deg, self.scale_jitter, self.shift = flip, rotate_deg, scale_jitter, shift
        self.affine_prob = affine_prob  # probability that a sample gets the rotate/zoom/shift (DDAMFN: 0.2)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        img, lm = self.crops.images[i], self.crops.landmarks[i]
        flipped = False
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            flipped = self.flip and bool(rng.random() < 0.5)
            if flipped:
                img, lm = flip_sample(img, lm)
            clip_view = img
            apply = self.affine_prob >= 1.0 or rng.random() < self.affine_prob
            if apply and (self.rotate_deg or self.scale_jitter or self.shift):
                img, lm = random_affine(img, lm, rng, self.rotate_deg, self.scale_jitter, self.shift)
        else:
            clip_view = img
        s = img.shape[0]
        return {"clip": clip_view, "image": img, "landmarks": lm / s, "label": int(self.crops.labels[i]),
                "index": i, "flipped": flipped}


def random_erase(x: torch.Tensor, indices, seed: int, epoch: int, p: float,
                 scale: tuple[float, float] = (0.02, 0.25), ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020; torchvision's ``RandomErasing`` as DDAMFN's training code uses it, last
    in its transform): with probability ``p`` a rectangle of ``scale`` of the area and aspect ``ratio`` is set to 0
    in the *normalised* input ``x`` [B, 3, S, S] (= the dataset mean colour). Draws keyed by (seed, epoch, index)."""
    if p <= 0:
        return x
    x = x.clone()
    s = x.shape[-1]
    for k, i in enumerate(indices):
        rng = np.random.default_rng([seed, epoch, int(i), 6])
        if rng.random() >= p:
            continue
        for _ in range(10):  # torchvision's 10 tries at a rectangle that fits
            area = s * s * rng.uniform(*scale)
            aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < h < s and 0 < w < s:
                top, left = int(rng.integers(0, s - h + 1)), int(rng.integers(0, s - w + 1))
                x[k, :, top:top + h, left:left + w] = 0
                break
    return x


def collate(items: list[dict]) -> dict:
    return {
        "clip": np.stack([it["clip"] for it in items]),
        "image": np.stack([it["image"] for it in items]),
        "landmarks": torch.from_numpy(np.stack([it["landmarks"] for it in items]).astype(np.float32)),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "flipped": torch.tensor([it["flipped"] for it in items], dtype=torch.bool),
    }


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool, drop_last: bool) -> list[list[int]]:
    """The global batch order of one epoch, the same on every rank and after a resume."""
    order = np.random.default_rng([seed, epoch, 7]).permutation(n) if shuffle else np.arange(n)
    batches = [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches

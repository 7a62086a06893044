"""Frozen CLIP image features cached on disk, so epochs do not re-run the tower.

Key: the aligned crop's sha256 (+ whether it is mirrored) under a directory named by the hash of
the CLIP image tower's weights: a different checkpoint never reads stale features. Stored as one
``features.npz`` (``keys`` [N], ``feats`` [N, D] float32), written atomically.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from udc.sdk.faces.pipeline import to_model_input


def module_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class FeatureCache:
    def __init__(self, root: str | Path, clip_hash: str):
        self.dir = Path(root) / f"clip_{clip_hash}"
        self.file = self.dir / "features.npz"
        self.table: dict[str, np.ndarray] = {}
        if self.file.exists():
            with np.load(self.file) as d:
                self.table = {str(k): f for k, f in zip(d["keys"], d["feats"])}
        self.hits = self.misses = 0

    @staticmethod
    def key(crop_hash: str, flipped: bool) -> str:
        return f"{crop_hash}{'f' if flipped else ''}"

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        keys = sorted(self.table)
        fd, tmp = tempfile.mkstemp(prefix=".features.", suffix=".npz", dir=self.dir)
        os.close(fd)
        try:
            np.savez(tmp, keys=np.array(keys), feats=np.stack([self.table[k] for k in keys]).astype(np.float32))
            os.replace(tmp, self.file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @torch.no_grad()
    def fill(self, tower: nn.Module, images: np.ndarray, hashes: list[str], flipped: bool, mean, std,
             device, batch: int = 64) -> int:
        """Compute and store the features of every crop not cached yet; returns how many were computed."""
        todo = [i for i, h in enumerate(hashes) if self.key(h, flipped) not in self.table]
        for s in range(0, len(todo), batch):
            idx = todo[s:s + batch]
            views = images[idx][:, :, ::-1] if flipped else images[idx]
            feats = tower(to_model_input(views, mean, std).to(device)).float().cpu().numpy()
            for i, f in zip(idx, feats):
                self.table[self.key(hashes[i], flipped)] = f
        self.misses += len(todo)
        return len(todo)

    def get(self, hashes: list[str], flipped: list[bool]) -> torch.Tensor:
        self.hits += len(hashes)
        return torch.from_numpy(np.stack([self.table[self.key(h, f)] for h, f in zip(hashes, flipped)]))

"""The four on-device components of LRDif (and the fused pipeline), each with named, static-shape
example inputs: what ``udc-export`` lowers and what every runtime is checked against.

    clip_image : image [B,3,S,S]                          -> image_features [B,D]
    fpen_s2    : image_features [B,D]                     -> condition [B,C]
    denoiser   : condition [B,C], noise [B,C]             -> epr [B,C]       (all T steps unrolled)
    udcformer  : image [B,3,S,S], landmarks [B,68,2], epr -> logits [B,K]
    pipeline   : image, landmarks, noise                  -> logits          (the four in one graph)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .landmarks import canonical_landmarks
from .models.lrdif import LRDif

COMPONENTS = ("clip_image", "fpen_s2", "denoiser", "udcformer")


@dataclass
class Component:
    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]  # name -> example tensor (fixes every shape)
    outputs: tuple[str, ...]


class Pipeline(nn.Module):
    """All four components in one call (fewer dispatches on a phone)."""

    def __init__(self, model: LRDif):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model(image, landmarks, noise)


def example_inputs(model: LRDif, batch: int = 1, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Deterministic model inputs: a CLIP-normalised random image, the canonical face, unit noise."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    s, c = cfg.image_size, cfg.fpen.epr_dim
    image = torch.rand(batch, 3, s, s, generator=g)
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    return {
        "image": ((image - mean) / std).to(device),
        "landmarks": canonical_landmarks().expand(batch, -1, -1).contiguous().to(device),
        "noise": torch.randn(batch, c, generator=g).to(device),
    }


def on_device_components(model: LRDif, batch: int = 1, seed: int = 0, fuse: bool = False) -> list[Component]:
    """The components with example inputs computed from one deterministic sample."""
    device = next(model.parameters()).device
    ex = example_inputs(model, batch, seed, device)
    with torch.no_grad():
        f_img = model.clip_image(ex["image"])
        cond = model.fpen_s2(f_img)
        epr = model.diffusion(cond, ex["noise"])
    comps = [
        Component("clip_image", model.clip_image, {"image": ex["image"]}, ("image_features",)),
        Component("fpen_s2", model.fpen_s2, {"image_features": f_img}, ("condition",)),
        Component("denoiser", model.diffusion, {"condition": cond, "noise": ex["noise"]}, ("epr",)),
        Component("udcformer", model.udcformer,
                  {"image": ex["image"], "landmarks": ex["landmarks"], "epr": epr}, ("logits",)),
    ]
    if fuse:
        comps.append(Component("pipeline", Pipeline(model), ex, ("logits",)))
    return comps

"""Parameter and MAC counts per component, computed on the meta device (no memory, no weights).

MACs are multiply-accumulates of the matmuls and convolutions (``torch.utils.flop_counter`` counts
2 FLOPs per MAC); element-wise ops, softmax and normalisation are not included, as is customary.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import LRDifConfig
from .lrdif.model import LRDif


@dataclass
class ComponentProfile:
    component: str
    params: int
    macs: int
    on_device: bool
    note: str = ""


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def profile_config(cfg: LRDifConfig, batch: int = 1) -> list[ComponentProfile]:
    """Every component of the model for ``cfg``, built on the meta device."""
    with torch.device("meta"):
        m = LRDif(cfg, label_encoder="clip")
        s, c = cfg.image_size, cfg.fpen.epr_dim
        image = torch.empty(batch, 3, s, s)
        landmarks = torch.empty(batch, cfg.num_landmarks, 2)
        noise = torch.empty(batch, c)
        labels = torch.zeros(batch, dtype=torch.long)
        tokens = torch.zeros(1, cfg.text.context_length, dtype=torch.long)
        eot = torch.zeros(1, dtype=torch.long)
        f_img = torch.empty(batch, cfg.vision.embed_dim)
        u = m.udcformer
        feats = tuple(torch.empty(batch, d, z, z) for d, z in zip(cfg.udcformer.dims, cfg.level_sizes()))
        rows = [
            ComponentProfile("clip_image", count_params(m.clip_image), count_macs(m.clip_image, image), True,
                             f"ViT {cfg.vision.width}w/{cfg.vision.layers}L/p{cfg.vision.patch_size}"),
            ComponentProfile("clip_text", count_params(m.clip_text), count_macs(m.clip_text, tokens, eot), False,
                             "training only; MACs per prompt"),
            ComponentProfile("fpen_s1", count_params(m.fpen_s1),
                             count_macs(m.epr_stage1, f_img, labels), False, "training only"),
            ComponentProfile("fpen_s2", count_params(m.fpen_s2), count_macs(m.fpen_s2, f_img), True),
            ComponentProfile("denoiser", count_params(m.diffusion), count_macs(m.diffusion, noise, noise), True,
                             f"T={cfg.diffusion.steps} steps unrolled"),
            ComponentProfile("udcformer", count_params(u), count_macs(u, image, landmarks, noise), True),
            ComponentProfile("  dt_network", count_params(u.dt), count_macs(u.dt, image, noise), False, "part of udcformer"),
            ComponentProfile("  dil_network", count_params(u.dil),
                             count_macs(u.dil, landmarks, image) if u.dil.form == "paper" else
                             count_macs(u.dil, landmarks, None, feats), False,
                             f"part of udcformer ({u.dil.form} form)"),
        ]
    on_device = [r for r in rows if r.on_device]
    rows.append(ComponentProfile("on-device total", sum(r.params for r in on_device), sum(r.macs for r in on_device),
                                 True, "clip_image + fpen_s2 + denoiser + udcformer"))
    return rows

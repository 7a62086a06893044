"""UDCformer: DT-network and DIL-network in parallel (``dil_form="paper"``; ``"post"``: DIL after DT),
fused at 3 scales, then a vanilla transformer and the 7-class head (paper eqs. 10-12)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LRDifConfig
from .dil_network import DILNetwork
from .dt_network import DTNetwork
from .layers import BatchNormNeck, TransformerBlock


class ScaleFusion(nn.Module):
    """Eq. 10: ``x_i = concat(F_i, O_i)``, ``X = [x1, x2, x3]``; before joining, each x_i goes through a 1x1
    projection to ``fusion_dim`` and an average pool to ``grid x grid`` tokens (the paper gives no token sizes)."""

    def __init__(self, dims: tuple[int, int, int], sizes: tuple[int, int, int], fusion_dim: int, grid: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(2 * d, fusion_dim, 1) for d in dims)
        self.pool = [s // grid for s in sizes]  # static kernel per scale

    def forward(self, feats, outs) -> torch.Tensor:
        tokens = []
        for proj, k, f, o in zip(self.proj, self.pool, feats, outs):
            x = F.avg_pool2d(proj(torch.cat([f, o], dim=1)), kernel_size=k)  # [B, Df, g, g]
            tokens.append(x.flatten(2).transpose(1, 2))  # [B, g*g, Df]
        return torch.cat(tokens, dim=1)  # X = [x1, x2, x3]: [B, 3*g*g, Df]


class UDCformer(nn.Module):
    """``image [B,3,S,S]``, ``landmarks [B,68,2]``, ``Z [B,C]`` -> ``logits [B, num_classes]``."""

    def __init__(self, cfg: LRDifConfig):
        super().__init__()
        u = cfg.udcformer
        self.dt = DTNetwork(u, cfg.fpen.epr_dim)
        self.dil = DILNetwork(u, cfg.image_size)
        self.fusion = ScaleFusion(u.dims, cfg.level_sizes(), u.fusion_dim, u.fusion_grid)
        n_tokens = 3 * u.fusion_grid**2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, u.fusion_dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens + 1, u.fusion_dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(u.fusion_dim, u.fusion_heads, u.mlp_ratio, "gelu", u.dropout) for _ in range(u.fusion_depth)
        )
        # read-out norm: "batch" (BN-neck, default) or "layer" (LayerNorm, as before); see UDCformerConfig.head_norm
        self.norm = BatchNormNeck(u.fusion_dim) if u.head_norm == "batch" else nn.LayerNorm(u.fusion_dim)
        self.head = nn.Linear(u.fusion_dim, cfg.num_classes)
        self.global_pool = u.global_pool

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        feats = self.dt(image, z)  # F1, F2, F3: [B, d_i, S_i, S_i]
        if self.dil.form == "paper":  # beside the DT-network: the image's own patch features
            outs = self.dil(landmarks, image=image)  # O1, O2, O3: [B, d_i, S_i, S_i]
        else:  # "post": after the DT-network, on F_i
            outs = self.dil(landmarks, feats=feats)
        x = self.fusion(feats, outs)  # [B, N, Df]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)  # eqs. 11-12
        pooled = x.mean(dim=1) if self.global_pool == "avg" else x[:, 0]  # [B, Df]
        return self.head(self.norm(pooled))  # [B, num_classes]

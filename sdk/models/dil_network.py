"""DIL-network: landmark heatmaps -> small CNN -> window cross-attention with the image features
(paper eqs. 5-9, after POSTER V2). Q comes from landmark features, K and V from the UDC image
features of the same window; a learned relative position bias is added to the logits (eq. 6).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import UDCformerConfig
from ..landmarks import REGIONS, LandmarkHeatmaps
from .layers import Mlp, window_partition, window_reverse


def relative_position_index(window: int) -> torch.Tensor:
    """``[w*w, w*w]`` index into a ``(2w-1)^2`` bias table (Swin's construction)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [M, M, 2]
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


class WindowCrossAttention(nn.Module):
    """Eqs. 5-7 inside one window: ``softmax(Q K^T / sqrt(d) + b) V``, Q from landmarks."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim**-0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)  # W_O
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", relative_position_index(window).reshape(-1), persistent=False)
        self.m = window * window

    def forward(self, lm: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        # lm, img: [Bw, M, C] (Bw = batch * windows, M = window^2)
        bw, m, c = img.shape
        q = self.q(lm).reshape(bw, m, self.heads, self.head_dim).transpose(1, 2)  # [Bw, h, M, d]
        kv = self.kv(img).reshape(bw, m, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [2, Bw, h, M, d]
        bias = self.bias_table[self.bias_index].reshape(self.m, self.m, self.heads).permute(2, 0, 1)  # [h, M, M]
        attn = (torch.matmul(q * self.scale, kv[0].transpose(-2, -1)) + bias).softmax(dim=-1)
        out = torch.matmul(attn, kv[1]).transpose(1, 2).reshape(bw, m, c)
        return self.proj(out)


class DILBlock(nn.Module):
    """Eqs. 8-9: ``X' = MHCA(X) + X``, ``X'' = MLP(LN(X')) + X'`` over non-overlapping windows."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.window = window
        self.norm_img, self.norm_lm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), "gelu", dropout)

    def forward(self, img: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        b, _, h, w = img.shape  # img, lm: [B, C, H, W]
        xi, xl = window_partition(img, self.window), window_partition(lm, self.window)  # [Bw, M, C]
        x = xi + self.attn(self.norm_lm(xl), self.norm_img(xi))
        x = x + self.mlp(self.norm2(x))
        return window_reverse(x, self.window, b, h, w)  # [B, C, H, W]


class LandmarkCNN(nn.Module):
    """Region heatmaps ``[B,R,S1,S1]`` -> landmark features X_flm at the 3 scales."""

    def __init__(self, regions: int, dims: tuple[int, int, int]):
        super().__init__()
        chans = (regions, *dims)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1),
                nn.GELU(),
                nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1),
            )
            for i in range(3)
        )

    def forward(self, heat: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], heat
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class DILNetwork(nn.Module):
    def __init__(self, cfg: UDCformerConfig, image_size: int):
        super().__init__()
        self.heatmaps = LandmarkHeatmaps(image_size // cfg.stem_stride, cfg.heatmap_sigma)
        self.cnn = LandmarkCNN(len(REGIONS), cfg.dims)
        self.blocks = nn.ModuleList(
            DILBlock(cfg.dims[i], cfg.dil_heads[i], cfg.window, cfg.mlp_ratio, cfg.dropout) for i in range(3)
        )

    def forward(self, landmarks: torch.Tensor, feats: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        # landmarks: [B, 68, 2]; feats: image features F1..F3 -> O1..O3 of the same shapes
        x_flm = self.cnn(self.heatmaps(landmarks))
        return [block(f, lm) for block, f, lm in zip(self.blocks, feats, x_flm)]

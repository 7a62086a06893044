"""DDAN, DDAMFN's dual-direction attention network (seed 003).

Each DDA head is a coordinate attention whose directional pooling is a *linear depthwise
convolution* (GDConv) rather than an average: a ``(1, W)`` depthwise kernel collapses each row
and an ``(H, 1)`` kernel each column, followed by BN and no nonlinearity, so every position along
the pooled direction gets its own learned weight. The two direction-aware descriptors go through a
shared 1x1 conv + BN + h-swish, then one 1x1 conv + sigmoid per direction; the head's attention map
is their (broadcast) product ``a = a_h * a_w`` with shape ``[B, C, H, W]``.

Heads are combined as in the public DDAMFN code: the element-wise maximum over heads, which then
rescales the feature map, ``y = x * max_i a_i``. The attention loss (``train/losses/fer.py``) pushes
the heads' maps apart so that each head attends to a different facial region.
"""
from __future__ import annotations

import torch
from torch import nn

from .mfn import ConvBN, CoordAtt


class DDAHead(CoordAtt):
    """``[B, C, H, W] -> attention map [B, C, H, W]`` in (0, 1): MFN's coordinate attention with linear
    depthwise convolutions in place of its average pooling."""

    def __init__(self, channels: int, size: int, groups: int = 32):
        super().__init__(channels, groups)
        self.linear_h = ConvBN(channels, channels, (1, size), groups=channels)  # [B,C,H,W] -> [B,C,H,1]
        self.linear_w = ConvBN(channels, channels, (size, 1), groups=channels)  # [B,C,H,W] -> [B,C,1,W]

    def pool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear_h(x), self.linear_w(x).transpose(2, 3)  # [B, C, H, 1], [B, C, W, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.maps(x)
        return a_w * a_h  # [B, C, H, W]


class DDAN(nn.Module):
    """``[B, C, H, W] -> (x * max_i a_i, [a_1..a_n])``; with 0 heads the map passes unchanged."""

    def __init__(self, channels: int, size: int, num_heads: int = 2, groups: int = 32):
        super().__init__()
        self.heads = nn.ModuleList(DDAHead(channels, size, groups) for _ in range(num_heads))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = [head(x) for head in self.heads]
        if not maps:
            return x, maps
        a = maps[0]
        for m in maps[1:]:
            a = torch.maximum(a, m)
        return x * a, maps

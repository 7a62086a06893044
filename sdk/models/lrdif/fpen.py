"""FPEN: the condensed preliminary extraction network (a few linear layers -> EPR Z in R^C).

FPEN-S1 reads ``concat(E_L(y), E_I(x))`` (eq. 1); FPEN-S2 reads ``E_I(x)`` alone (eq. 15): the two
differ only in the first layer's input size, as the paper says.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import FPENConfig


class FPEN(nn.Module):
    """Its inputs are unit CLIP vectors (components ~ 1/sqrt(D)): they are scaled by sqrt(D) and the
    layers initialised to preserve variance, so Z starts with O(1) components and its modulation of
    UDCformer (eq. 2) is felt from the first step (with PyTorch's default init Z had std 0.07 and
    stage 1 sat at chance for epochs on UDC-degraded data)."""

    def __init__(self, in_dim: int, cfg: FPENConfig, unit_dim: int | None = None):
        super().__init__()
        self.input_scale = float((unit_dim or in_dim) ** 0.5)
        dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [cfg.epr_dim]
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            lin = nn.Linear(dims[i], dims[i + 1])
            nn.init.kaiming_normal_(lin.weight, a=0.1, nonlinearity="leaky_relu")
            nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.input_scale)  # [B, in_dim] -> [B, C]


class LabelEmbedding(nn.Module):
    """Stand-in for E_L(y) when no CLIP tokenizer is available: one learned unit vector per label."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * dim**-0.5)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        w = self.weight[labels]
        return w * torch.rsqrt((w * w).sum(-1, keepdim=True) + 1e-12)  # [B, D]

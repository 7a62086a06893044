"""Small building blocks shared by the towers and UDCformer, written to export cleanly.

Rules kept here for every model file: no ``.item()``, no ``randn``, no ``F.normalize``/``.norm()``
(an L2 norm is ``x * rsqrt(sum(x^2) + eps)``), tensor rank <= 5 (Core ML and QNN reject rank 6),
shapes fixed by the config.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` without the norm op: ``x / sqrt(sum(x^2) + eps)``."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True) + eps)


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation: ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_act(name: str) -> nn.Module:
    return QuickGELU() if name == "quick_gelu" else nn.GELU()


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, C, H, W]`` map (Restormer's per-pixel LN), no permutes."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(dim=1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(dim=1, keepdim=True)
        return xc * torch.rsqrt(var + self.eps) * self.weight + self.bias


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with OpenAI CLIP parameter names (``in_proj_weight``, ``out_proj``)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim**-0.5
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, N, C]
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [3, B, h, N, d]
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.matmul(q * self.scale, k.transpose(-2, -1))  # [B, h, N, N]
        if mask is not None:
            attn = attn + mask
        out = torch.matmul(attn.softmax(dim=-1), v)  # [B, h, N, d]
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``c_fc -> act -> c_proj`` (CLIP's names)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden)
        self.act = make_act(act)
        self.c_proj = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()  # no dropout op in exported graphs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(self.drop(self.act(self.c_fc(x)))))


class TransformerBlock(nn.Module):
    """Pre-LN transformer block, CLIP's ``ResidualAttentionBlock`` layout; UDCformer's fusion transformer
    (eqs. 11-12, with a LayerNorm before MSA that eq. 11 does not write)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, act: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: [B, N, C]. Eq. 11 writes X' = MSA(X) + X; this is pre-LN, X' = MSA(LN(X)) + X (CLIP's and ViT's block)
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))  # eq. 12: y' = MLP(LN(X')) + X'; [B, N, C]


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B * nH * nW, window*window, C]`` with no tensor above rank 5."""
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1)  # [B, H, W, C]
    x = x.reshape(b * (h // window), window, w // window, window, c)  # [B*nH, w, nW, w, C]
    x = x.permute(0, 2, 1, 3, 4)  # [B*nH, nW, w, w, C]
    return x.reshape(b * (h // window) * (w // window), window * window, c)


def window_reverse(windows: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B*nW, window*window, C] -> [B, C, H, W]``."""
    c = windows.shape[-1]
    x = windows.reshape(b * (h // window), w // window, window, window, c)  # [B*nH, nW, w, w, C]
    x = x.permute(0, 2, 1, 3, 4)  # [B*nH, w, nW, w, C]
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


class BatchNormNeck(nn.Module):
    """BatchNorm over ``[B, D]`` features before a classifier ("BN-neck"), written with plain ops.

    Training: normalises with the statistics of the *global* batch (summed over DDP ranks with a
    differentiable all-reduce, so N processes compute what one process computes) and updates running
    statistics. Eval: ``(x - running_mean) * rsqrt(running_var + eps) * weight + bias``, i.e. sub/mul/add
    that every backend delegates and quantizes (no ``batch_norm`` op in the exported graph).
    Buffer names follow ``nn.BatchNorm1d``.
    """

    def __init__(self, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = torch.full((1,), float(x.shape[0]), dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(0), (x * x).sum(0), n])  # [2D + 1]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            from torch.distributed.nn.functional import all_reduce

            stats = all_reduce(stats)
        d = x.shape[1]
        count = stats[-1]
        mean = stats[:d] / count
        var = (stats[d:2 * d] / count - mean * mean).clamp_min(0.0)
        return mean, var, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: [B, D]
        if self.training:
            mean, var, count = self._batch_stats(x)
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

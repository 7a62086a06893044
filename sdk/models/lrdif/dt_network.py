"""DT-network: a U-Net of Z-modulated Restormer blocks (paper eqs. 2-4, after DiffIR/Restormer).

Every block reads the EPR Z: ``F' = W1 Z * LN(F) + W2 Z`` (eq. 2) before both DMNet (transposed
channel attention, eq. 3) and DGNet (gated depthwise FFN, eq. 4). Where each differs from the
paper's equation (biases and init in eq. 2, Q/K normalisation in eq. 3, an output projection in
eq. 4) is said in its class. Down-sampling is a strided conv
and up-sampling a transposed conv (Restormer's pixel-(un)shuffle would need rank-6 reshapes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UDCformerConfig
from .layers import ChannelLayerNorm, l2_normalize


class ZModulation(nn.Module):
    """Eq. 2, ``F' = (W1 Z) * LN(F) + W2 Z``, per-channel scale and shift from Z; differs from the paper's in two
    ways: W1 and W2 (one ``nn.Linear``) have biases, and start at zero weight with bias 1 (scale) / 0 (shift), so
    that a new block is ``F' = LN(F)`` and reads Z only as training makes it (the paper states no init)."""

    def __init__(self, dim: int, epr_dim: int):
        super().__init__()
        self.norm = ChannelLayerNorm(dim)
        self.kernel = nn.Linear(epr_dim, 2 * dim)
        with torch.no_grad():  # start as the identity modulation (scale 1, shift 0), as LayerNorm's affine does
            self.kernel.weight.zero_()  # and ignoring Z until the loss says which directions of Z matter
            self.kernel.bias[:dim].fill_(1.0)
            self.kernel.bias[dim:].zero_()
    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # x: [B, C, H, W], z: [B, Cz]
        scale, shift = self.kernel(z).reshape(z.shape[0], -1, 1, 1).chunk(2, dim=1)  # [B, C, 1, 1] each
        return self.norm(x) * scale + shift


class DMNet(nn.Module):
    """Eq. 3, ``F'' = W_c V softmax(K Q / alpha) + F``: multi-head transposed attention, a C'xC' map per head with a
    learnable temperature (1/alpha). Differs from the paper's as Restormer's MDTA does: Q and K are L2-normalised
    over the pixels before their product (eq. 3 has no normalisation), Q/K/V come from a 1x1 then a 3x3 depthwise
    conv, and the heads' output goes through a 1x1 projection (W_c) before the residual."""

    def __init__(self, dim: int, heads: int, epr_dim: int):
        super().__init__()
        self.heads = heads
        self.mod = ZModulation(dim, epr_dim)
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.project_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape  # x: [B, C, H, W], z: [B, Cz] -> [B, C, H, W]
        q, k, v = self.qkv_dw(self.qkv(self.mod(x, z))).chunk(3, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))  # [B, h, C', HW]
        q, k = l2_normalize(q), l2_normalize(k)
        attn = (torch.matmul(q, k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)  # [B, h, C', C']
        out = torch.matmul(attn, v).reshape(b, c, h, w)
        return x + self.project_out(out)


class DGNet(nn.Module):
    """Eq. 4, ``F'' = GELU(W_d^1 W_c^1 F') * W_d^2 W_c^2 F' + F``: gated FFN, 1x1 conv then 3x3 depthwise conv,
    GELU gate. Differs from the paper's as Restormer's GDFN does: the gated product (``hidden`` channels) goes
    through an output 1x1 projection back to ``dim`` channels before the residual (eq. 4 has none)."""

    def __init__(self, dim: int, expansion: float, epr_dim: int):
        super().__init__()
        hidden = int(dim * expansion)
        self.mod = ZModulation(dim, epr_dim)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # x: [B, C, H, W] -> a, g: [B, hidden, H, W] -> [B, C, H, W]
        a, g = self.dwconv(self.project_in(self.mod(x, z))).chunk(2, dim=1)
        return x + self.project_out(F.gelu(a) * g)


class DTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, epr_dim: int):
        super().__init__()
        self.attn = DMNet(dim, heads, epr_dim)
        self.ffn = DGNet(dim, expansion, epr_dim)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(x, z), z)


class DTStage(nn.Module):
    def __init__(self, depth: int, dim: int, heads: int, expansion: float, epr_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(DTBlock(dim, heads, expansion, epr_dim) for _ in range(depth))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, z)
        return x


class DTNetwork(nn.Module):
    """Image ``[B,3,S,S]`` + Z -> features at 3 scales ``F1 [B,d1,S1,S1]``, ``F2``, ``F3`` (S_{i+1} = S_i / 2)."""

    def __init__(self, cfg: UDCformerConfig, epr_dim: int):
        super().__init__()
        d1, d2, d3 = cfg.dims
        e = cfg.ffn_expansion

        def stage(depth: int, level: int) -> DTStage:
            return DTStage(depth, cfg.dims[level], cfg.heads[level], e, epr_dim)

        if cfg.stem_layers == 2:  # [B,3,S,S] -> [B,d1/2,S/2,S/2] -> [B,d1,S1,S1]
            self.stem = nn.Sequential(nn.Conv2d(3, d1 // 2, 3, stride=2, padding=1), nn.GELU(),
                                      nn.Conv2d(d1 // 2, d1, 3, stride=cfg.stem_stride // 2, padding=1))
        else:
            self.stem = nn.Conv2d(3, d1, 3, stride=cfg.stem_stride, padding=1)
        self.enc1, self.down12 = stage(cfg.enc_blocks[0], 0), nn.Conv2d(d1, d2, 3, stride=2, padding=1)
        self.enc2, self.down23 = stage(cfg.enc_blocks[1], 1), nn.Conv2d(d2, d3, 3, stride=2, padding=1)
        self.enc3 = stage(cfg.enc_blocks[2], 2)
        self.up32, self.reduce2 = nn.ConvTranspose2d(d3, d2, 2, stride=2), nn.Conv2d(2 * d2, d2, 1)
        self.dec2 = stage(cfg.dec_blocks[0], 1)
        self.up21, self.reduce1 = nn.ConvTranspose2d(d2, d1, 2, stride=2), nn.Conv2d(2 * d1, d1, 1)
        self.dec1 = stage(cfg.dec_blocks[1], 0)

    def forward(self, image: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e1 = self.enc1(self.stem(image), z)  # [B, d1, S1, S1]
        e2 = self.enc2(self.down12(e1), z)  # [B, d2, S1/2, S1/2]
        f3 = self.enc3(self.down23(e2), z)  # [B, d3, S1/4, S1/4]
        f2 = self.dec2(self.reduce2(torch.cat([self.up32(f3), e2], dim=1)), z)  # [B, d2, S1/2, S1/2]
        f1 = self.dec1(self.reduce1(torch.cat([self.up21(f2), e1], dim=1)), z)  # [B, d1, S1, S1]
        return f1, f2, f3

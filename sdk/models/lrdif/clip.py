"""CLIP image and text towers with the OpenAI/open_clip state-dict layout.

Parameter names match OpenAI's ``model.pt`` (``visual.*`` for the image tower, unprefixed for the
text tower), so a user's checkpoint loads with :mod:`udc.sdk.models.lrdif.clip_checkpoint`. Both towers
return L2-normalised embeddings ``[B, embed_dim]``.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import TextTowerConfig, VisionTowerConfig
from .layers import TransformerBlock, l2_normalize


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, act: str):
        super().__init__()
        self.resblocks = nn.ModuleList(TransformerBlock(width, heads, mlp_ratio, act) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class CLIPVisionTower(nn.Module):
    """E_I: ViT image encoder. ``[B, 3, S, S]`` (CLIP-normalised) -> ``[B, D]`` unit vectors."""

    def __init__(self, cfg: VisionTowerConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(cfg.grid**2 + 1, w) * w**-0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, cfg.embed_dim) * w**-0.5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b = image.shape[0]
        x = self.conv1(image)  # [B, W, g, g]
        x = x.reshape(b, x.shape[1], -1).transpose(1, 2)  # [B, g*g, W]
        cls = self.class_embedding.reshape(1, 1, -1).expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding  # [B, 1+g*g, W]
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(x[:, 0]) @ self.proj  # [B, D]
        return l2_normalize(x)


class CLIPTextTower(nn.Module):
    """E_L: causal text transformer. tokens ``[B, L]`` + EOT positions ``[B]`` -> ``[B, D]``."""

    def __init__(self, cfg: TextTowerConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.token_embedding = nn.Embedding(cfg.vocab_size, w)
        self.positional_embedding = nn.Parameter(torch.randn(cfg.context_length, w) * 0.01)
        self.transformer = Transformer(w, cfg.layers, cfg.heads, cfg.mlp_ratio, cfg.act)
        self.ln_final = nn.LayerNorm(w)
        self.text_projection = nn.Parameter(torch.randn(w, cfg.embed_dim) * w**-0.5)
        mask = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        # tokens: [B, L] int64; EOT defaults to the largest id (OpenAI's vocabulary puts it last)
        if eot_index is None:
            eot_index = tokens.argmax(dim=-1)
        x = self.token_embedding(tokens) + self.positional_embedding  # [B, L, W]
        x = self.ln_final(self.transformer(x, self.attn_mask))
        x = x[torch.arange(x.shape[0], device=x.device), eot_index] @ self.text_projection  # [B, D]
        return l2_normalize(x)

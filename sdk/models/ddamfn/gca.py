"""GCA: global convolution attention (seed 002, "IAL for dynamic facial expression recognition").

A channel-attention block like SE, with the two changes the seed argues for:

1. **Global convolution instead of global pooling.** Each channel is summarised by a depthwise
   convolution whose kernel covers the whole ``H x W`` map (``groups = C``, no padding), so every
   spatial position gets its own learned weight: where a wrinkle sits (brow, mouth) still matters,
   which average pooling throws away.
2. **Weights in (0, 2), not (0, 1).** ``w = 2 * sigmoid(FC2(ReLU(FC1(g))))``: a channel can be
   *enhanced* (w > 1), e.g. the target-related channels of a low-intensity expression, as well as
   suppressed (w < 1). At initialisation w is about 1, so a freshly inserted block is near identity.

For clips (``clip_len = T > 1``, the batch laid out as ``[B*T]`` frames of B clips) the seed's code
mixes in global temporal information: ``w_t <- sqrt(w_t * mean_t(w_t) + eps)``, the geometric mean
of a frame's weights and its clip's mean weights. ``clip_len = 1`` is the image (per-frame) form.

Auxiliary classifier (``num_classes > 0``): as the seed does for every attention block, a linear
classifier reads the descriptor (``[B, C]``) so that the loss (``0.05 * CE``, the mean over the GCA
blocks: ``udc.train.losses.fer.gca_aux_loss``) pushes the weights toward the target. It runs only while
``collect_aux`` is set (training); inference and exported graphs never compute it.

Where it goes: on the residual branch of a residual block, before the identity is added
(``y = x + GCA(F(x))``), as the seed's ResNet-18 blocks do. The kernel size equals the feature map
size, so it is fixed by the model config (static shapes, exports cleanly: one depthwise conv, two
1x1 convs, sigmoid, multiply; rank <= 5 in the clip form).
"""
from __future__ import annotations

import torch
from torch import nn


class GCA(nn.Module):
    def __init__(self, channels: int, size: int | tuple[int, int], reduction: int = 16, clip_len: int = 1,
                 eps: float = 1e-5, num_classes: int = 0):
        super().__init__()
        self.aux = nn.Linear(channels, num_classes) if num_classes else None  # the seed's auxiliary classifier
        self.collect_aux = False  # set by the owner for a training forward: then aux_logits holds [B, K]
        self.aux_logits: torch.Tensor | None = None
        hidden = max(1, channels // reduction)
        self.clip_len = clip_len
        self.eps = eps
        self.gc = nn.Conv2d(channels, channels, size, groups=channels, bias=False)  # global depthwise conv
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.act = nn.ReLU()

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, 1, 1]``: the global-convolution channel summary (the seed's auxiliary
        classifier reads this)."""
        return self.gc(x)

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, 1, 1]`` weights in (0, 2)."""
        g = self.gc(x)  # [B, C, 1, 1]
        if self.collect_aux and self.aux is not None:
            self.aux_logits = self.aux(g.flatten(1))  # [B, K]
        w = 2.0 * torch.sigmoid(self.fc2(self.act(self.fc1(g))))  # [B, C, 1, 1]
        if self.clip_len > 1:
            b, c = w.shape[0], w.shape[1]
            wc = w.reshape(b // self.clip_len, self.clip_len, c, 1, 1)  # [clips, T, C, 1, 1]
            w = torch.sqrt(wc * wc.mean(dim=1, keepdim=True) + self.eps).reshape(b, c, 1, 1)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.channel_weights(x)

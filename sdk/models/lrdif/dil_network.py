"""DIL-network: landmark heatmaps -> small CNN -> window cross-attention with the image features
(paper eqs. 5-9, after POSTER V2); a learned relative position bias is added to the logits (eq. 6).

Two forms (``UDCformerConfig.dil_form``):

* ``"paper"`` (default): the DIL-network runs *beside* the DT-network. K and V come from the UDC
  image's own patch features x_udc (:class:`ImagePatches`: a patch-embedding conv at the stem stride,
  then 2x2 stride-2 patch merging, at the 3 scales), Q from the landmark features X_flm scaled down
  to one window (``h*w = M``): one query map, shared by every window of the image (POSTER V2's
  window cross-attention). Its outputs O_i do not contain the DT features, so ``concat(F_i, O_i)``
  (eq. 10) joins two different things.
* ``"post"`` (checkpoints saved before the field existed): the DIL-network runs *after* the
  DT-network: K, V from the Z-modulated DT features F_i, each window its own landmark query taken
  from the full-resolution X_flm, and ``O_i = F_i + MHCA + MLP`` (so ``concat(F_i, O_i)`` holds F_i twice).

The paper's landmark features come from a landmark detector's backbone (POSTER V2: MobileFaceNet),
which is not available here: X_flm is a small CNN over Gaussian region heatmaps of the 68 points
(:class:`LandmarkCNN`), rasterised inside the graph from the ``[B, 68, 2]`` coordinates.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import UDCformerConfig
from ...faces.landmarks import REGIONS, LandmarkHeatmaps
from .layers import Mlp, window_partition, window_reverse


def relative_position_index(window: int) -> torch.Tensor:
    """``[w*w, w*w]`` index into a ``(2w-1)^2`` bias table (Swin's construction)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [M, M, 2]
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


class WindowCrossAttention(nn.Module):
    """Eqs. 5-7 inside one window: ``O = [softmax(Q_i K_i^T / sqrt(d) + b) V_i]_i W_O``, Q from landmarks.

    ``shared_query=True`` (the paper's form): ``lm`` is one window ``[B, M, C]`` whose query serves all the
    ``nW`` windows of ``img [B*nW, M, C]``; it is repeated over the windows by a broadcast multiply with a
    constant ones tensor (static shapes; XNNPACK has no ``expand``). Biases on Q/K/V/O are nn.Linear's (the
    paper's w_Q, w_K, w_V, w_O are written without biases)."""

    def __init__(self, dim: int, heads: int, window: int, windows: int = 1, shared_query: bool = False):
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
        self.shared_query, self.windows = shared_query, windows
        if shared_query:  # [1, nW, 1, 1]: q [B, 1, M, C] * ones -> [B, nW, M, C]
            self.register_buffer("window_ones", torch.ones(1, windows, 1, 1), persistent=False)

    def forward(self, lm: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        # img: [Bw, M, C] (Bw = batch * windows, M = window^2); lm: [Bw, M, C], or [B, M, C] with shared_query
        bw, m, c = img.shape
        q = self.q(lm)
        if self.shared_query:  # one landmark window's query for every image window of its sample
            # [B, M, C] -> [B, 1, M, C] (a view: XNNPACK has no unsqueeze) * [1, nW, 1, 1] -> [B*nW, M, C]
            q = (q.reshape(bw // self.windows, 1, m, c) * self.window_ones).reshape(bw, m, c)
        q = q.reshape(bw, m, self.heads, self.head_dim).transpose(1, 2)  # [Bw, h, M, d]
        kv = self.kv(img).reshape(bw, m, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [2, Bw, h, M, d]
        bias = self.bias_table[self.bias_index].reshape(self.m, self.m, self.heads).permute(2, 0, 1)  # [h, M, M]
        attn = (torch.matmul(q * self.scale, kv[0].transpose(-2, -1)) + bias).softmax(dim=-1)
        out = torch.matmul(attn, kv[1]).transpose(1, 2).reshape(bw, m, c)
        return self.proj(out)


class DILBlock(nn.Module):
    """Eqs. 8-9 over non-overlapping windows, the ``"post"`` form (each window its own landmark query):
    ``X' = MHCA(LN(X), LN(X_flm)) + X``, ``X'' = MLP(LN(X')) + X'``. Eq. 8 writes ``MHCA(X_udc)`` without a
    LayerNorm; the inputs are normalised here first (pre-LN, as POSTER V2's and Swin's blocks)."""

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


class SharedQueryDILBlock(nn.Module):
    """Eqs. 5-9, the paper's form: image ``[B, C, H, W]`` in windows of ``M = window^2`` tokens, landmark
    features already pooled to one window ``[B, C, window, window]``, one query map for every window.
    ``X'_udc = MHCA(LN(x_udc), LN(x_flm)) + x_udc`` (eq. 8, pre-LN: the paper writes no LayerNorm there),
    ``X''_udc = MLP(LN(X'_udc)) + X'_udc`` (eq. 9)."""

    def __init__(self, dim: int, heads: int, window: int, size: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.window = window
        self.norm_img, self.norm_lm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, heads, window, (size // window) ** 2, shared_query=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), "gelu", dropout)

    def forward(self, img: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
        b, c, h, w = img.shape  # img: [B, C, H, W]; lm: [B, C, window, window]
        xi = window_partition(img, self.window)  # [B*nW, M, C]
        xl = lm.flatten(2).transpose(1, 2)  # [B, M, C] (row-major, as a window's tokens)
        x = xi + self.attn(self.norm_lm(xl), self.norm_img(xi))  # eq. 8
        x = x + self.mlp(self.norm2(x))  # eq. 9
        return window_reverse(x, self.window, b, h, w)  # O_i: [B, C, H, W]


class ImagePatches(nn.Module):
    """The UDC image's own patch features x_udc at the 3 scales (the paper's form): ``[B,3,S,S]`` ->
    ``[B,d1,S1,S1]`` (patch embedding: a ``stem_stride`` x ``stem_stride`` conv at that stride), then 2x2
    stride-2 patch merging with a GELU before it -> ``[B,d2,S1/2,S1/2]``, ``[B,d3,S1/4,S1/4]``."""

    def __init__(self, dims: tuple[int, int, int], stride: int):
        super().__init__()
        self.embed = nn.Conv2d(3, dims[0], stride, stride=stride)
        self.merge = nn.ModuleList(
            nn.Sequential(nn.GELU(), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2)) for i in range(2))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.embed(image)  # [B, d1, S1, S1]
        feats = [x]
        for merge in self.merge:
            x = merge(x)
            feats.append(x)
        return feats


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
    """``landmarks [B,68,2]`` + the image (``"paper"``) or the DT features F1..F3 (``"post"``) -> O1..O3,
    ``O_i [B, d_i, S_i, S_i]`` at the 3 scales."""

    def __init__(self, cfg: UDCformerConfig, image_size: int):
        super().__init__()
        self.form = cfg.dil_form
        s1 = image_size // cfg.stem_stride
        sizes = (s1, s1 // 2, s1 // 4)
        self.heatmaps = LandmarkHeatmaps(s1, cfg.heatmap_sigma)
        self.cnn = LandmarkCNN(len(REGIONS), cfg.dims)
        if self.form == "paper":
            self.image = ImagePatches(cfg.dims, cfg.stem_stride)
            self.pool = [s // cfg.window for s in sizes]  # static kernel: X_flm [S_i, S_i] -> x_flm [window, window]
            self.blocks = nn.ModuleList(
                SharedQueryDILBlock(cfg.dims[i], cfg.dil_heads[i], cfg.window, sizes[i], cfg.mlp_ratio, cfg.dropout)
                for i in range(3))
        else:
            self.blocks = nn.ModuleList(
                DILBlock(cfg.dims[i], cfg.dil_heads[i], cfg.window, cfg.mlp_ratio, cfg.dropout) for i in range(3))

    def forward(self, landmarks: torch.Tensor, image: torch.Tensor | None = None,
                feats: tuple[torch.Tensor, ...] | None = None) -> list[torch.Tensor]:
        # landmarks: [B, 68, 2]; image: [B, 3, S, S] ("paper"); feats: DT features F1..F3 ("post")
        x_flm = self.cnn(self.heatmaps(landmarks))  # X_flm: [B, d_i, S_i, S_i] at the 3 scales
        if self.form == "post":
            return [block(f, lm) for block, f, lm in zip(self.blocks, feats, x_flm)]
        x_udc = self.image(image)  # [B, d_i, S_i, S_i]
        x_flm = [lm if k == 1 else F.avg_pool2d(lm, kernel_size=k) for lm, k in zip(x_flm, self.pool)]  # [B, d_i, w, w]
        return [block(x, lm) for block, x, lm in zip(self.blocks, x_udc, x_flm)]

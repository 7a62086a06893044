"""MFN, DDAMFN's mixed feature network: a MobileFaceNet-style backbone with mixed depthwise kernels.

Two block kinds (seed 003): *residual bottlenecks* (stride 1, identity shortcut) and *non-residual*
blocks (stride 2, change of width). Both are ``1x1 expand -> mixed depthwise conv (MixConv: the
expanded channels split into groups, one kernel size per group) -> coordinate attention -> 1x1
linear projection``. With the paper config a 112x112 face becomes a 512x7x7 map.

Written to export cleanly: static channel splits (as slices), no data-dependent control flow, rank 4
throughout; pooling as avg_pool2d and splits as slices so that XNNPACK takes the whole graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ddamfn_config import DDAMFNConfig, MixStageConfig
from .gca import GCA


def split_channels(x: torch.Tensor, sizes, dim: int) -> list[torch.Tensor]:
    """``torch.split`` as plain slices: ``split_with_sizes`` stays outside XNNPACK, slices are delegated."""
    out, start = [], 0
    for size in sizes:
        out.append(x.narrow(dim, start, int(size)))
        start += int(size)
    return out


class ConvBNPReLU(nn.Module):
    """``conv (no bias) -> BN -> PReLU``."""

    def __init__(self, cin: int, cout: int, kernel=1, stride=1, padding=0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class ConvBN(nn.Module):
    """``conv (no bias) -> BN``, no nonlinearity (a *linear* block: projections, GDConv)."""

    def __init__(self, cin: int, cout: int, kernel=1, stride=1, padding=0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MixDepthwise(nn.Module):
    """MixConv: depthwise convs with kernel ``kernels[g]`` on channel group ``g`` (sizes ``splits``)."""

    def __init__(self, channels: int, kernels: tuple[int, ...], splits: tuple[int, ...], stride: int,
                 bn_act: bool = False):
        super().__init__()
        self.splits = [int(s) for s in splits]
        self.convs = nn.ModuleList(nn.Conv2d(s, s, k, stride, k // 2, groups=s, bias=False)
                                   for k, s in zip(kernels, splits))
        self.bn = nn.BatchNorm2d(channels) if bn_act else None
        self.prelu = nn.PReLU(channels) if bn_act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            y = self.convs[0](x)
        else:
            y = torch.cat([conv(t) for conv, t in zip(self.convs, split_channels(x, self.splits, dim=1))], dim=1)
        if self.bn is not None:
            y = self.prelu(self.bn(y))
        return y


class CoordAtt(nn.Module):
    """Coordinate attention (Hou et al. 2021) with average pooling along each direction, inside MFN blocks.

    :meth:`pool` makes the two direction-aware descriptors; DDAN's heads (``ddan.DDAHead``) replace only it."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        mip = max(8, channels // groups)
        self.conv1 = nn.Conv2d(channels, mip, 1)
        self.bn1 = nn.BatchNorm2d(mip)
        self.conv2 = nn.Conv2d(mip, channels, 1)
        self.conv3 = nn.Conv2d(mip, channels, 1)

    def pool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, C, H, W] -> [B, C, H, 1], [B, C, W, 1]
        h, w = x.shape[2], x.shape[3]
        x_h = F.avg_pool2d(x, (1, w))  # (= mean over W; avg_pool lowers to XNNPACK, mean(dim=3) not)
        return x_h, F.avg_pool2d(x, (h, 1)).transpose(2, 3)

    def maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two directional attention maps ``a_h [B, C, H, 1]`` and ``a_w [B, C, 1, W]``."""
        h, w = x.shape[2], x.shape[3]
        x_h, x_w = self.pool(x)
        y = F.hardswish(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))  # [B, mip, H+W, 1]
        y_h, y_w = split_channels(y, [h, w], dim=2)
        return torch.sigmoid(self.conv2(y_h)), torch.sigmoid(self.conv3(y_w.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.maps(x)
        return x * a_w * a_h  # the public code's order of products


class MixBlock(nn.Module):
    """Residual bottleneck (``residual=True``, stride 1) or non-residual block (stride 2 / width change).

    ``gca``: optional GCA block (seed 002) applied to the residual branch before the shortcut is added.
    """

    def __init__(self, cin: int, cout: int, hidden: int, kernels: tuple[int, ...], splits: tuple[int, ...],
                 stride: int, residual: bool, ca_groups: int = 32, bn_act: bool = False, gca: GCA | None = None):
        super().__init__()
        if residual and (cin != cout or stride != 1):
            raise ValueError("a residual MixBlock keeps width and resolution")
        self.residual = residual
        self.conv = ConvBNPReLU(cin, hidden)  # 1x1 expand
        self.conv_dw = MixDepthwise(hidden, kernels, splits, stride, bn_act)
        self.ca = CoordAtt(hidden, ca_groups)
        self.project = ConvBN(hidden, cout)  # 1x1 linear projection
        self.gca = gca

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.ca(self.conv_dw(self.conv(x))))
        if self.gca is not None:
            y = self.gca(y)
        return x + y if self.residual else y


class MixStage(nn.Module):
    """One stride-2 non-residual block followed by ``blocks`` residual bottlenecks."""

    def __init__(self, cin: int, st: MixStageConfig, size: int, cfg: DDAMFNConfig, gca: bool):
        super().__init__()
        self.down = MixBlock(cin, st.out_channels, st.down_expansion, st.down_kernels, st.down_splits, 2, False,
                             cfg.ca_groups, cfg.mixconv_bn_act)
        self.blocks = nn.Sequential(*(
            MixBlock(st.out_channels, st.out_channels, st.expansion, st.kernels, st.splits, 1, True, cfg.ca_groups,
                     cfg.mixconv_bn_act,
                     GCA(st.out_channels, size, cfg.gca_reduction, cfg.gca_clip_len,
                         num_classes=cfg.num_classes if cfg.gca_aux else 0) if gca else None)
            for _ in range(st.blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


class MFN(nn.Module):
    """``[B, 3, S, S] -> [B, feature_channels, S/16, S/16]`` (512x7x7 for the paper's 112 input)."""

    def __init__(self, cfg: DDAMFNConfig):
        super().__init__()
        c0 = cfg.stem_channels
        self.conv1 = ConvBNPReLU(3, c0, 3, 2, 1)  # S -> S/2
        self.conv2_dw = ConvBNPReLU(c0, c0, 3, 1, 1, groups=c0)
        stages, cin = [], c0
        for i, (st, size) in enumerate(zip(cfg.stages, cfg.stage_sizes())):
            stages.append(MixStage(cin, st, size, cfg, gca=i in cfg.gca_stages))
            cin = st.out_channels
        self.stages = nn.ModuleList(stages)
        self.conv_sep = ConvBNPReLU(cin, cfg.feature_channels)  # 1x1 to the DDAN width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2_dw(self.conv1(x))  # [B, c0, S/2, S/2]
        for stage in self.stages:
            x = stage(x)  # each halves the resolution
        return self.conv_sep(x)  # [B, C, S/16, S/16]

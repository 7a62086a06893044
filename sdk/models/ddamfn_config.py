"""DDAMFN configurations (dataclasses): ``tiny`` (tests, milliseconds on CPU) and ``paper`` (seed 003's model).

DDAMFN (dual-direction attention mixed feature network) is the lightweight image baseline a phone
team would pick instead of LRDif: an MFN backbone (MobileFaceNet-style bottlenecks with mixed
depthwise kernels, 112x112 input) followed by DDAN, n dual-direction (coordinate) attention heads
whose directional pooling is a *linear depthwise convolution* instead of average pooling.

The ``paper`` preset follows the public DDAMFN code's MixedFeatureNet widths and block counts
(stem 64, stages of 9/16/6 residual blocks at 64/128/256 channels, 512-channel head). Every shape
is fixed by the config: the 112 input gives 7x7 head features and 7-wide directional kernels.
Optional GCA blocks (seed 002, ``sdk/models/ddamfn/gca.py``) can be put on the residual branches of any
stage; the paper model has none.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..labels import LABELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the DDAMFN training scripts normalise with ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class MixStageConfig:
    """One MFN stage: a stride-2 non-residual MixConv block, then ``blocks`` residual MixConv blocks.

    Each block is ``1x1 expand -> mixed depthwise (one kernel size per channel split) -> coordinate
    attention -> 1x1 linear projection``. ``*_splits`` give the channels of the expanded width that
    each kernel size gets; they must sum to the expanded width.
    """

    out_channels: int
    blocks: int
    down_expansion: int  # expanded width of the stride-2 block
    down_kernels: tuple[int, ...]
    down_splits: tuple[int, ...]
    expansion: int  # expanded width of the residual blocks
    kernels: tuple[int, ...]
    splits: tuple[int, ...]


def _paper_stages() -> tuple[MixStageConfig, ...]:
    return (
        MixStageConfig(64, 9, 128, (3, 5, 7), (64, 32, 32), 128, (3, 5), (96, 32)),  # 56 -> 28
        MixStageConfig(128, 16, 256, (3, 5, 7), (128, 64, 64), 256, (3, 5), (192, 64)),  # 28 -> 14
        MixStageConfig(256, 6, 1024, (3, 5, 7, 9), (256, 256, 256, 256), 512, (3, 5, 7), (172, 170, 170)),  # 14 -> 7
    )


@dataclass(frozen=True)
class DDAMFNConfig:
    name: str = "paper"
    image_size: int = 112
    stem_channels: int = 64
    stages: tuple[MixStageConfig, ...] = field(default_factory=_paper_stages)
    feature_channels: int = 512  # 1x1 conv after the last stage: the map DDAN attends over
    ca_groups: int = 32  # coordinate attention bottleneck: max(8, channels // ca_groups)
    # BN + PReLU after the mixed depthwise conv (the MixNet/MobileFaceNet block). The public DDAMFN code
    # declares them but never applies them; its checkpoints and the seed's 4.106 M parameters are without.
    mixconv_bn_act: bool = False
    num_heads: int = 2  # DDA heads (seed 003: 2 is best; 0 gives the plain MFN + GDConv head)
    att_weight: float = 0.1  # lambda_a in L = L_cls + lambda_a * L_att
    # GCA (seed 002) on the residual branch of every residual block of these stages (0-based); () = none
    gca_stages: tuple[int, ...] = ()
    gca_reduction: int = 16  # r in GCA's bottleneck
    gca_clip_len: int = 1  # >1: the batch holds clips of this many frames; GCA mixes weights over a clip
    # seed 002's auxiliary classifier on each GCA block's descriptor (a linear layer on the global-conv summary),
    # trained with gca_aux_weight * CE (the mean over the GCA blocks) beside the main loss; training only, never
    # exported. Configs saved before the field existed load with False (no auxiliary classifier)
    gca_aux: bool = True
    gca_aux_weight: float = 0.05
    labels: tuple[str, ...] = LABELS
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def stage_sizes(self) -> tuple[int, ...]:
        """Spatial size of each stage's output (the stem halves the input, each stage halves again)."""
        s = self.image_size // 2
        out = []
        for _ in self.stages:
            s //= 2
            out.append(s)
        return tuple(out)

    @property
    def feature_size(self) -> int:
        """Side of the map the DDA heads see (7 for the paper's 112 input)."""
        return self.stage_sizes()[-1]

    def validate(self) -> "DDAMFNConfig":
        problems = []
        div = 2 ** (len(self.stages) + 1)
        if self.image_size % div:
            problems.append(f"image_size {self.image_size} must be a multiple of {div}")
        for i, st in enumerate(self.stages):
            if len(st.down_kernels) != len(st.down_splits) or sum(st.down_splits) != st.down_expansion:
                problems.append(f"stage {i}: down_splits {st.down_splits} must match down_kernels and sum to "
                                f"down_expansion {st.down_expansion}")
            if len(st.kernels) != len(st.splits) or sum(st.splits) != st.expansion:
                problems.append(f"stage {i}: splits {st.splits} must match kernels and sum to expansion {st.expansion}")
            if any(k % 2 == 0 for k in st.kernels + st.down_kernels):
                problems.append(f"stage {i}: depthwise kernels must be odd")
        for s in self.gca_stages:
            if not 0 <= s < len(self.stages):
                problems.append(f"gca_stages has {s}, but there are {len(self.stages)} stages")
            elif self.stages[s].out_channels < self.gca_reduction:
                problems.append(f"gca stage {s}: {self.stages[s].out_channels} channels < gca_reduction")
        if self.num_heads < 0:
            problems.append("num_heads must be >= 0")
        if self.gca_aux_weight < 0:
            problems.append("gca_aux_weight must be >= 0")
        if self.gca_clip_len < 1:
            problems.append("gca_clip_len must be >= 1")
        if problems:
            raise ValueError(f"invalid DDAMFN config {self.name!r}: " + "; ".join(problems))
        return self

    def replace(self, **changes: Any) -> "DDAMFNConfig":
        """Copy with top-level changes, e.g. ``replace(num_heads=4, gca_stages=(1, 2))``."""
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ddamfn_config_from_dict(data: dict[str, Any]) -> DDAMFNConfig:
    names = {f.name for f in dataclasses.fields(DDAMFNConfig)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown DDAMFNConfig fields: {sorted(unknown)}")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
    kwargs.setdefault("gca_aux", False)  # saved before the field existed: no auxiliary classifier on GCA
    if "stages" in kwargs:
        kwargs["stages"] = tuple(s if isinstance(s, MixStageConfig) else
                                 MixStageConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items()})
                                 for s in kwargs["stages"])
    return DDAMFNConfig(**kwargs).validate()


def tiny() -> DDAMFNConfig:
    """Milliseconds on a CPU: every block type, 2 heads, 32x32 input (2x2 head features)."""
    return DDAMFNConfig(
        name="tiny",
        image_size=32,
        stem_channels=8,
        stages=(
            MixStageConfig(8, 1, 16, (3, 5, 7), (8, 4, 4), 16, (3, 5), (12, 4)),
            MixStageConfig(16, 1, 32, (3, 5, 7), (16, 8, 8), 32, (3, 5), (24, 8)),
            MixStageConfig(16, 1, 32, (3, 5, 7, 9), (8, 8, 8, 8), 32, (3, 5, 7), (12, 10, 10)),
        ),
        feature_channels=32,
        ca_groups=4,
    ).validate()


def paper() -> DDAMFNConfig:
    """DDAMFN as in seed 003 / the public code: 112x112, MFN 9/16/6 blocks, 2 DDA heads."""
    return DDAMFNConfig(name="paper").validate()


DDAMFN_CONFIGS = {"tiny": tiny, "paper": paper}


def get_ddamfn_config(name: str) -> DDAMFNConfig:
    try:
        return DDAMFN_CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown DDAMFN config {name!r}; choose one of {', '.join(DDAMFN_CONFIGS)}") from None

"""Model configurations as dataclasses: ``tiny`` (tests), ``mobile`` (on-device), ``paper`` (LRDif paper),
``fer`` (real 48x48 faces such as FER2013, trainable on a CPU).

Every shape in the exported graphs follows from one of these configs, so they are static for a
given config. ``LRDifConfig.validate()`` checks the divisibility constraints once, up front, so a
bad config fails with a message instead of a reshape error deep inside a forward pass.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..labels import LABELS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VisionTowerConfig:
    """CLIP image tower (ViT), OpenAI/open_clip layout."""

    image_size: int = 224
    patch_size: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    embed_dim: int = 512  # output feature size D (after `proj`)
    act: str = "quick_gelu"  # OpenAI weights use QuickGELU; most open_clip LAION weights use "gelu"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class TextTowerConfig:
    """CLIP text tower (causal transformer), OpenAI/open_clip layout."""

    vocab_size: int = 49408
    context_length: int = 77
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp_ratio: float = 4.0
    embed_dim: int = 512
    act: str = "quick_gelu"


@dataclass(frozen=True)
class FPENConfig:
    """Condensed preliminary extraction network: a few linear layers -> EPR Z in R^C."""

    hidden: int = 512
    layers: int = 3  # linear layers in total (first + hidden + last)
    epr_dim: int = 256  # C


@dataclass(frozen=True)
class DiffusionConfig:
    """EPR diffusion (DiffIR-style): betas = linspace(sqrt(beta_start), sqrt(beta_end), T)**2."""

    steps: int = 4  # T
    beta_start: float = 0.1
    beta_end: float = 0.99
    # "x0" (the net predicts Z_0; posterior-mean step) or "eps" (paper eq. 16). x0 is the default because with
    # beta_T = 0.99 the eps step divides by sqrt(alpha_T) = 0.1: at init Z' has std 19.6 with eps vs 0.10 with x0
    # (tiny config, T = 4, measured), a Z' that UDCformer's modulation then has to unlearn; DiffIR predicts the
    # clean prior for the same reason. eps stays available, and `udc-train ablations` runs it as one row
    parameterization: str = "x0"
    hidden: int = 1024  # denoiser MLP width
    layers: int = 5  # denoiser MLP linear layers


@dataclass(frozen=True)
class UDCformerConfig:
    """UDCformer: DT-network (U-Net of Z-modulated Restormer blocks) + DIL-network + fusion."""

    stem_stride: int = 2  # image crop -> level-1 features
    # 1: one 3x3 conv at stride stem_stride (the default; at stride 4 a 3x3 kernel never reads every 4th row and
    # column). 2: two 3x3 convs, stride 2 then stem_stride / 2, a GELU between (every pixel is read)
    stem_layers: int = 1
    dims: tuple[int, int, int] = (48, 96, 192)  # channels at the 3 scales
    enc_blocks: tuple[int, int, int] = (2, 2, 4)
    dec_blocks: tuple[int, int] = (1, 1)  # decoder blocks at levels 2 and 1 (U-Net top-down path)
    heads: tuple[int, int, int] = (1, 2, 4)  # DMNet heads per level
    ffn_expansion: float = 2.66
    # DIL-network
    heatmap_sigma: float = 0.025  # Gaussian splat std, in units of the crop side
    window: int = 7
    dil_heads: tuple[int, int, int] = (1, 2, 4)
    # "paper" (eqs. 5-9): the DIL-network runs beside the DT-network; K, V from the image's own patch features
    # x_udc, Q from the landmark features x_flm pooled to one window (h*w = M), one query map shared by every window
    # (POSTER V2's window cross-attention); O_i is fused with F_i. "post": the form checkpoints without this field
    # have: DIL after the DT-network, K, V from the Z-modulated features F_i, each window its own landmark query
    # (at full resolution), and O_i = F_i + MHCA + MLP (so concat(F_i, O_i) holds F_i twice). The default is
    # "paper" (every config: tiny, mobile, paper, fer); config_from_dict loads a saved config without this field
    # as "post", the form it was trained with
    dil_form: str = "paper"
    # fusion transformer
    fusion_dim: int = 192
    fusion_grid: int = 4  # each scale pooled to grid x grid tokens
    fusion_depth: int = 2
    fusion_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    # read-out of the fusion transformer: "token" (the class token, as the paper's ViT-style head) or "avg" (mean
    # over all tokens). One-seed measurement, tiny, pure-image training on the easy synthetic UDC set, 300 steps:
    # val 41 % (token) vs 59 % (avg); not enough to change the paper's default
    global_pool: str = "token"
    # norm before the head: "batch" (a BN-neck: batch statistics in training, a fixed affine at inference) or
    # "layer" (LayerNorm, what checkpoints without this field used). Measured, tiny, pure-image training on the
    # easy synthetic UDC set, 1 thread, lr 1e-3, same seed: LayerNorm still at chance (12.9 % val) after 4 epochs,
    # BN-neck 96.7 %. The pooled token varies little between samples next to its position-dependent part;
    # LayerNorm keeps that part, batch statistics remove it and give the head unit-scale differences to learn from
    head_norm: str = "batch"


@dataclass(frozen=True)
class LRDifConfig:
    name: str = "paper"
    vision: VisionTowerConfig = field(default_factory=VisionTowerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    fpen: FPENConfig = field(default_factory=FPENConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    udcformer: UDCformerConfig = field(default_factory=UDCformerConfig)
    labels: tuple[str, ...] = LABELS
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    num_landmarks: int = 68

    @property
    def image_size(self) -> int:
        return self.vision.image_size

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def level_sizes(self) -> tuple[int, int, int]:
        s1 = self.image_size // self.udcformer.stem_stride
        return (s1, s1 // 2, s1 // 4)

    def validate(self) -> "LRDifConfig":
        v, u = self.vision, self.udcformer
        problems = []
        if v.image_size % v.patch_size:
            problems.append(f"image_size {v.image_size} is not a multiple of patch_size {v.patch_size}")
        if v.width % v.heads or self.text.width % self.text.heads:
            problems.append("tower width must be a multiple of its heads")
        if self.image_size % (u.stem_stride * 4):
            problems.append(f"image_size {self.image_size} must be divisible by 4*stem_stride={4 * u.stem_stride}")
        if u.stem_layers not in (1, 2) or (u.stem_layers == 2 and u.stem_stride % 2):
            problems.append("stem_layers must be 1, or 2 with an even stem_stride")
        for i, s in enumerate(self.level_sizes()):
            if s % u.window:
                problems.append(f"level {i + 1} size {s} is not a multiple of window {u.window}")
            if s % u.fusion_grid:
                problems.append(f"level {i + 1} size {s} is not a multiple of fusion_grid {u.fusion_grid}")
            if u.dims[i] % u.heads[i] or u.dims[i] % u.dil_heads[i]:
                problems.append(f"dims[{i}]={u.dims[i]} must be a multiple of heads and dil_heads")
        if u.fusion_dim % u.fusion_heads:
            problems.append("fusion_dim must be a multiple of fusion_heads")
        if u.head_norm not in ("batch", "layer"):
            problems.append(f"udcformer.head_norm must be 'batch' or 'layer', got {u.head_norm!r}")
        if u.dil_form not in ("paper", "post"):
            problems.append(f"udcformer.dil_form must be 'paper' or 'post', got {u.dil_form!r}")
        if u.global_pool not in ("avg", "token"):
            problems.append(f"udcformer.global_pool must be 'avg' or 'token', got {u.global_pool!r}")
        if self.diffusion.parameterization not in ("eps", "x0"):
            problems.append(f"diffusion.parameterization must be 'eps' or 'x0', got {self.diffusion.parameterization!r}")
        if self.diffusion.steps < 1:
            problems.append("diffusion.steps must be >= 1")
        for act in (v.act, self.text.act):
            if act not in ("gelu", "quick_gelu"):
                problems.append(f"unknown activation {act!r}")
        if problems:
            raise ValueError(f"invalid config {self.name!r}: " + "; ".join(problems))
        return self

    def replace(self, **changes: Any) -> "LRDifConfig":
        """Copy with changes; nested fields by dotted name, e.g. ``replace(**{"diffusion.steps": 8})``."""
        return config_from_dict(_apply_overrides(self.to_dict(), changes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _apply_overrides(d: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        node = d
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        if last not in node:
            raise KeyError(f"unknown config field {key!r}")
        node[last] = value
    return d


def _build(cls, data: dict[str, Any]):
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for name, value in data.items():
        f = names[name]
        sub = _NESTED.get((cls, name))
        if sub is not None:
            value = _build(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


_NESTED = {
    (LRDifConfig, "vision"): VisionTowerConfig,
    (LRDifConfig, "text"): TextTowerConfig,
    (LRDifConfig, "fpen"): FPENConfig,
    (LRDifConfig, "diffusion"): DiffusionConfig,
    (LRDifConfig, "udcformer"): UDCformerConfig,
}


def config_from_dict(data: dict[str, Any]) -> LRDifConfig:
    if "head_norm" not in data.get("udcformer", {"head_norm": None}):  # saved before the field existed: LayerNorm
        data = {**data, "udcformer": {**data["udcformer"], "head_norm": "layer"}}
    if "dil_form" not in data.get("udcformer", {"dil_form": None}):  # saved before the field existed: DIL after DT
        data = {**data, "udcformer": {**data["udcformer"], "dil_form": "post"}}
    return _build(LRDifConfig, data).validate()


def tiny() -> LRDifConfig:
    """Seconds on a CPU: for tests and the demo."""
    return LRDifConfig(
        name="tiny",
        vision=VisionTowerConfig(image_size=64, patch_size=16, width=32, layers=2, heads=2, embed_dim=32),
        text=TextTowerConfig(vocab_size=512, context_length=16, width=32, layers=1, heads=2, embed_dim=32),
        fpen=FPENConfig(hidden=64, layers=3, epr_dim=16),
        diffusion=DiffusionConfig(steps=4, hidden=64, layers=3),
        udcformer=UDCformerConfig(
            stem_stride=2, dims=(8, 16, 32), enc_blocks=(1, 1, 1), dec_blocks=(1, 1), heads=(1, 1, 2),
            window=4, dil_heads=(1, 1, 2), fusion_dim=32, fusion_grid=2, fusion_depth=1, fusion_heads=2,
        ),
    ).validate()


def mobile() -> LRDifConfig:
    """On-device target: ViT-S/32-class CLIP image tower, UDCformer at 1/4 resolution."""
    return LRDifConfig(
        name="mobile",
        vision=VisionTowerConfig(image_size=224, patch_size=32, width=384, layers=12, heads=6, embed_dim=384),
        text=TextTowerConfig(width=384, layers=12, heads=6, embed_dim=384),
        fpen=FPENConfig(hidden=256, layers=3, epr_dim=128),
        diffusion=DiffusionConfig(steps=4, hidden=512, layers=4),
        udcformer=UDCformerConfig(
            stem_stride=4, dims=(32, 64, 128), enc_blocks=(1, 2, 2), dec_blocks=(1, 1), heads=(1, 2, 4),
            window=7, dil_heads=(1, 2, 4), fusion_dim=128, fusion_grid=7, fusion_depth=1, fusion_heads=4,
        ),
    ).validate()


def fer() -> LRDifConfig:
    """Real 48x48 faces (FER2013's native size) trained on a CPU: stage 1 + stage 2 on FER2013's 28,709 training
    faces within 90 minutes on a 2-core CPU. 48 px crops; a small ViT/8 image tower (36 tokens, width 64);
    UDCformer with a two-conv stride-4 stem (levels 12, 6, 3 px), widths (24, 48, 96), 3 px windows, 3x3 fusion
    tokens. Sized by measurement (stage-1 fwd + bwd, batch 64, 2 threads, idle 2-core AMD EPYC): a stride-2 stem
    costs 2.7x a stride-4 one; at stride 4, widths (16, 32, 64) 4.2 ms/img, (24, 48, 96) 4.5, (32, 64, 128) 6.6
    (time is not proportional to MACs at this size: depthwise/landmark convolutions' backward and elementwise ops
    dominate). The two-conv stem (every pixel read; one 3x3 conv at stride 4 skips a row and a column in four)
    gave +1.6 points of FER2013 PublicTest accuracy after 1 + 2 epochs (50.0 vs 48.4 %) for +3 % time."""
    return LRDifConfig(
        name="fer",
        vision=VisionTowerConfig(image_size=48, patch_size=8, width=64, layers=2, heads=4, embed_dim=64),
        text=TextTowerConfig(vocab_size=512, context_length=16, width=64, layers=1, heads=2, embed_dim=64),
        fpen=FPENConfig(hidden=128, layers=3, epr_dim=64),
        diffusion=DiffusionConfig(steps=4, hidden=256, layers=4),
        udcformer=UDCformerConfig(
            stem_stride=4, stem_layers=2, dims=(24, 48, 96), enc_blocks=(1, 2, 2), dec_blocks=(1, 1),
            heads=(1, 2, 4), window=3, dil_heads=(1, 2, 4), fusion_dim=64, fusion_grid=3, fusion_depth=1,
            fusion_heads=4,
        ),
    ).validate()


def paper() -> LRDifConfig:
    """LRDif as in the paper: CLIP ViT-B/32 towers, paper-sized UDCformer (defaults above)."""
    return LRDifConfig(name="paper").validate()


CONFIGS = {"tiny": tiny, "mobile": mobile, "paper": paper, "fer": fer}

NO_CLIP_LABEL = "LRDif without pretrained CLIP"


def lrdif_label(clip_source: str | None) -> str:
    """How an LRDif model's numbers must be labelled wherever they appear (eval tables, checkpoints, manifests):
    without a pretrained CLIP checkpoint (``clip_source`` None) it is not the paper's model."""
    return "LRDif (pretrained CLIP)" if clip_source else NO_CLIP_LABEL


def get_config(name: str) -> LRDifConfig:
    try:
        return CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(CONFIGS)}") from None

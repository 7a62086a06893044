"""Training configuration: one dataclass, read from a JSON/TOML file and overridden on the CLI.

Defaults are the paper's: Adam, lr 3.5e-4, weight decay 1e-4, batch 64, 100 epochs.
"""
from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS = ("V1", "V2", "V3", "V4")  # paper Table 5: V1 no diffusion, V2 L_ce only, V3 noisy reverse, V4 full


@dataclass
class TrainConfig:
    # what
    family: str = "lrdif"  # lrdif | ddamfn (udc.sdk.model_registry)
    stage: int = 1
    model: str = "tiny"  # lrdif: tiny | mobile | paper (udc.sdk.config); ddamfn: tiny | paper (udc.sdk.ddamfn_config)
    data: str = ""  # dataset root (any format udc.train.datasets reads)
    data_format: str = "auto"
    out: str = "runs/lrdif"
    clip: str | None = None  # CLIP checkpoint (HF dir or OpenAI state dict); None = random init towers
    stage1: str | None = None  # stage-1 checkpoint, required for stage 2
    # optimisation (paper defaults)
    optimizer: str = "adam"  # adam (paper) | sgd (momentum 0.9)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3.5e-4
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step | constant
    step_size: int = 30  # epochs per x0.1 for the step schedule
    warmup_steps: int = 0
    # stage 2 and ablations
    variant: str = "V4"
    steps: int | None = None  # diffusion T override (iteration study); None = the model config's
    kl_weight: float = 1.0
    # stage 1: probability of hiding the label from FPEN-S1 for a sample (0 = the paper). None = auto: 0.5 when the
    # CLIP towers have no pretrained weights, else 0. With a *random* CLIP tower stage 1 otherwise learns to read the
    # label alone, and stage 2 (which has no label and no informative CLIP feature) starts from a UDCformer that
    # never had to work without one. Measured, tiny, easy synthetic UDC set, lr 1e-3, batch 32, stage 1 6 epochs +
    # stage 2 8 epochs: stage-2 val 17.1 % with 0, 88.6 % with 0.5
    label_dropout: float | None = None
    # "auto": train the CLIP image tower in stage 2 when it has no pretrained weights (a random frozen
    # tower carries no expression information for FPEN-S2 to read); "no": always frozen (the paper,
    # with real CLIP weights); "yes": always trained in stage 2
    train_clip: str = "auto"
    # intensity-aware loss (seed 002), either family: L = L_CE + ial_weight * L_IA (0 = off; --ial: 0.1)
    ial_weight: float = 0.0
    # DDAMFN (family ddamfn): L = L_cls + att_weight * L_att (+ ial_weight * L_IA)
    heads: int = 2  # DDA attention heads
    att_weight: float = 0.1
    att_form: str = "paper"  # paper | official (udc.sdk.losses_fer.attention_loss)
    gca_stages: tuple[int, ...] = ()  # GCA blocks on these MFN stages (0-based), e.g. (1, 2)
    gca_reduction: int = 16
    # augmentation
    flip: bool = True
    rotate_deg: float = 10.0
    scale_jitter: float = 0.08  # random zoom in [1-s, 1+s]
    shift: float = 0.04  # random translation, fraction of the crop
    udc_prob: float = 0.0  # probability of degrading a sample with a random UDC profile on the fly
    # machinery
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    feature_cache: bool = True  # cache frozen CLIP image features on disk
    cache_dir: str | None = None  # default: OUT/../clip_cache
    save_every: int = 0  # also checkpoint every N steps inside an epoch (0: at epoch ends only)
    max_steps_per_epoch: int = 0  # 0 = full epochs (a cap for quick runs)
    val_split: str = "val"  # falls back to "test" when the dataset has no val split
    num_threads: int = 0  # torch CPU threads (0: torch's default)

    def validate(self) -> "TrainConfig":
        problems = []
        if self.family not in ("lrdif", "ddamfn"):
            problems.append("family must be lrdif or ddamfn")
        if self.family == "ddamfn":
            from udc.sdk.ddamfn_config import DDAMFN_CONFIGS

            if self.model not in DDAMFN_CONFIGS:
                problems.append(f"ddamfn model must be one of {', '.join(DDAMFN_CONFIGS)} (got {self.model!r})")
            if self.stage != 1:
                problems.append("ddamfn trains in one stage (stage must be 1)")
            if self.heads < 0 or self.att_weight < 0:
                problems.append("heads and att_weight must be >= 0")
            if self.att_form not in ("paper", "official"):
                problems.append("att_form must be paper or official")
        elif self.gca_stages:
            problems.append("gca_stages is a ddamfn option")
        if self.ial_weight < 0:
            problems.append("ial_weight must be >= 0")
        if self.stage not in (1, 2):
            problems.append("stage must be 1 or 2")
        if self.variant not in VARIANTS:
            problems.append(f"variant must be one of {VARIANTS}")
        if self.label_dropout is not None and not 0.0 <= self.label_dropout < 1.0:
            problems.append("label_dropout must be in [0, 1) (or None: auto)")
        if self.train_clip not in ("auto", "yes", "no"):
            problems.append("train_clip must be auto, yes or no")
        if self.optimizer not in ("adam", "sgd"):
            problems.append("optimizer must be adam or sgd")
        if self.schedule not in ("cosine", "step", "constant"):
            problems.append("schedule must be cosine, step or constant")
        if self.stage == 2 and not self.stage1:
            problems.append("stage 2 needs --stage1 CHECKPOINT (the trained stage-1 model)")
        if not self.data:
            problems.append("no --data given")
        if self.batch_size < 1 or self.epochs < 1:
            problems.append("batch_size and epochs must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        path = Path(path)
        text = path.read_text()
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return cls.from_dict(d)

    def override(self, pairs: list[str]) -> "TrainConfig":
        """Apply ``key=value`` strings (values parsed as JSON when they can be, else strings)."""
        d = self.to_dict()
        for pair in pairs:
            if "=" not in pair:
                raise ValueError(f"override {pair!r} is not key=value")
            key, raw = pair.split("=", 1)
            if key not in d:
                raise ValueError(f"unknown training option {key!r}")
            try:
                d[key] = json.loads(raw)
            except json.JSONDecodeError:
                d[key] = raw
        return TrainConfig.from_dict(d)

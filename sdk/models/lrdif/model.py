"""LRDif: CLIP towers + FPEN-S1/S2 + EPR diffusion + UDCformer, with the stage-1 and stage-2 paths.

::

    stage 1:  Z  = FPEN_S1(concat(E_L(y), E_I(x)))              -> UDCformer(x, landmarks, Z)
    stage 2:  c  = FPEN_S2(E_I(x));  Z' = reverse_T(Z_T | c)    -> UDCformer(x, landmarks, Z')
              Z_T = q(Z_T | Z) while training, Z_T = noise input at inference (no label read)

``E_L(y)`` is the frozen CLIP text tower's embedding of the label prompt (computed once per label and
kept in the ``label_text_features`` buffer) or, with no tokenizer, a learned label embedding.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..config import LRDifConfig
from ...labels import prompts
from .clip import CLIPTextTower, CLIPVisionTower
from .diffusion import EPRDiffusion
from .fpen import FPEN, LabelEmbedding
from .udcformer import UDCformer

LABEL_ENCODERS = ("clip", "embedding")


class LRDif(nn.Module):
    def __init__(self, cfg: LRDifConfig, label_encoder: str = "embedding"):
        super().__init__()
        if label_encoder not in LABEL_ENCODERS:
            raise ValueError(f"label_encoder must be one of {LABEL_ENCODERS}, got {label_encoder!r}")
        cfg.validate()
        self.cfg = cfg
        self.label_encoder = label_encoder
        d_img, d_txt, c = cfg.vision.embed_dim, cfg.text.embed_dim, cfg.fpen.epr_dim
        self.clip_image = CLIPVisionTower(cfg.vision)
        self.clip_text = CLIPTextTower(cfg.text) if label_encoder == "clip" else None
        self.label_embedding = LabelEmbedding(cfg.num_classes, d_txt) if label_encoder == "embedding" else None
        if label_encoder == "clip":
            self.register_buffer("label_text_features", torch.zeros(cfg.num_classes, d_txt))
        self.fpen_s1 = FPEN(d_txt + d_img, cfg.fpen, unit_dim=d_img)
        self.fpen_s2 = FPEN(d_img, cfg.fpen, unit_dim=d_img)
        self.diffusion = EPRDiffusion(c, cfg.diffusion)
        self.udcformer = UDCformer(cfg)
        self.clip_source: str | None = None  # where the CLIP weights came from; None = random init
        self.freeze_clip()

    # ------------------------------------------------------------------ CLIP
    def freeze_clip(self) -> None:
        for tower in (self.clip_image, self.clip_text):
            if tower is not None:
                tower.requires_grad_(False)

    @torch.no_grad()
    def set_label_prompts(self, tokenizer) -> None:
        """Embed the label prompts once with the frozen text tower (E_L(y) of eq. 1)."""
        if self.clip_text is None:
            raise RuntimeError("this model uses a learned label embedding: it has no CLIP text tower")
        if tokenizer.tok.get_vocab_size() > self.cfg.text.vocab_size:
            raise ValueError(f"tokenizer vocabulary ({tokenizer.tok.get_vocab_size()}) exceeds the text tower's "
                             f"({self.cfg.text.vocab_size})")
        tokens, eot = tokenizer(prompts(self.cfg.labels))
        device = self.label_text_features.device
        self.label_text_features.copy_(self.clip_text(tokens.to(device), eot.to(device)))

    def label_features(self, labels: torch.Tensor) -> torch.Tensor:
        if self.label_embedding is not None:
            return self.label_embedding(labels)
        return self.label_text_features[labels]  # [B, D_txt]

    # ------------------------------------------------------------------ the two stages
    def epr_stage1(self, f_img: torch.Tensor, labels: torch.Tensor, label_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Z = FPEN_S1(concat(E_L(y), E_I(x))); ``label_mask`` [B, 1] zeroes E_L(y) per sample (label dropout)."""
        lf = self.label_features(labels)
        if label_mask is not None:
            lf = lf * label_mask
        return self.fpen_s1(torch.cat([lf, f_img], dim=-1))  # Z: [B, C]

    def epr_stage2(
        self,
        f_img: torch.Tensor,
        noise: torch.Tensor,
        z_s1: torch.Tensor | None = None,
        step_noise: torch.Tensor | None = None,
        use_diffusion: bool = True,
    ) -> torch.Tensor:
        """Z' from the image alone. ``z_s1`` (training only) is diffused to Z_T; else Z_T = ``noise``."""
        cond = self.fpen_s2(f_img)  # x_S2: [B, C]
        if not use_diffusion:  # ablation V1
            return cond
        z_t = self.diffusion.schedule.q_sample(z_s1, noise) if z_s1 is not None else noise
        return self.diffusion(cond, z_t, step_noise)

    def forward_stage1(self, image, landmarks, labels) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.epr_stage1(self.clip_image(image), labels)
        return self.udcformer(image, landmarks, z), z

    def forward_stage2(self, image, landmarks, noise, z_s1=None, step_noise=None, use_diffusion=True):
        z = self.epr_stage2(self.clip_image(image), noise, z_s1, step_noise, use_diffusion)
        return self.udcformer(image, landmarks, z), z

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Inference (stage 2, label-free): ``[B,3,S,S]``, ``[B,68,2]``, ``[B,C]`` -> logits ``[B,K]``."""
        return self.forward_stage2(image, landmarks, noise)[0]

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """Parameters trained in stage 1 (FPEN-S1, UDCformer, label embedding) or stage 2 (FPEN-S2, denoiser, UDCformer)."""
        if stage == 1:
            mods = [self.fpen_s1, self.udcformer] + ([self.label_embedding] if self.label_embedding is not None else [])
        elif stage == 2:
            mods = [self.fpen_s2, self.diffusion, self.udcformer]
        else:
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        return [p for m in mods for p in m.parameters()]


def build_model(cfg: LRDifConfig, clip: str | Path | None = None, *, warn: bool = True) -> LRDif:
    """Build LRDif; with ``clip`` (a Hugging Face CLIP directory or an OpenAI/open_clip state dict) load
    the towers from it. A tokenizer beside the weights switches stage 1 to the CLIP text tower."""
    from .clip_checkpoint import load_tower, read_clip_checkpoint
    from .tokenizer import ClipTokenizer

    if clip is None:
        if warn:
            warnings.warn("no CLIP checkpoint given: the CLIP towers start from random init and stage 1 uses a "
                          "learned label embedding (pass a Hugging Face CLIP directory or an OpenAI state dict)",
                          stacklevel=2)
        return LRDif(cfg, "embedding")
    ckpt = read_clip_checkpoint(clip)
    use_text = ckpt.tokenizer_path is not None and bool(ckpt.text)
    model = LRDif(cfg, "clip" if use_text else "embedding")
    load_tower(model.clip_image, ckpt.vision, "CLIP image tower", ckpt.source)
    if use_text:
        load_tower(model.clip_text, ckpt.text, "CLIP text tower", ckpt.source)
        model.set_label_prompts(ClipTokenizer(ckpt.tokenizer_path, cfg.text.context_length))
    elif warn:
        warnings.warn(f"{clip}: no tokenizer.json beside the weights, so stage 1 uses a learned label embedding "
                      "in place of the CLIP text tower", stacklevel=2)
    model.clip_source = ckpt.source
    model.freeze_clip()
    return model

"""The DDAMFN family in the trainer: model from the training options, and its training step.

The trainer's loop, data, augmentation, UDC degradation, optimiser, schedule, checkpoints, resume,
metrics and DDP are shared with LRDif (``trainer.py``); what differs is only the step module:

* LRDif: ``StageStep`` (CLIP features -> FPEN (-> diffusion) -> UDCformer; eq. 13 / eq. 18).
* DDAMFN: :class:`DDAMFNStep`, ``logits, maps, aux = model.forward_train(image)``;
  ``L = CE + att_weight * L_att (+ ial_weight * L_IA) (+ 0.05 * CE of the GCA auxiliary classifiers)``
  (``udc.train.losses.fer.ddamfn_total_loss``).

Both return ``(loss, logits, ce)`` with the same meaning, so the loop does not branch on the family.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from udc.sdk.models.ddamfn_config import DDAMFNConfig, get_ddamfn_config
from udc.train.losses.fer import ddamfn_total_loss
from udc.sdk.models.ddamfn.model import DDAMFN

from .config import TrainConfig


def ddamfn_model_config(cfg: TrainConfig) -> DDAMFNConfig:
    """The DDAMFN preset ``cfg.model`` with the training options' heads, attention weight and GCA stages."""
    return get_ddamfn_config(cfg.model).replace(
        num_heads=int(cfg.heads), att_weight=float(cfg.att_weight),
        gca_stages=tuple(int(s) for s in cfg.gca_stages), gca_reduction=int(cfg.gca_reduction))


def build_ddamfn(cfg: TrainConfig) -> DDAMFN:
    return DDAMFN(ddamfn_model_config(cfg))


class DDAMFNStep(nn.Module):
    """One DDAMFN training forward (what DDP wraps): returns ``(loss, logits, ce)``."""

    def __init__(self, model: DDAMFN, att_weight: float = 0.1, ial_weight: float = 0.0, att_form: str = "paper"):
        super().__init__()
        self.model, self.att_weight, self.ial_weight, self.att_form = model, att_weight, ial_weight, att_form

    def forward(self, image: torch.Tensor, labels: torch.Tensor):
        logits, maps, aux = self.model.forward_train(image)  # aux: GCA auxiliary logits (seed 002), [] without GCA
        loss, _ = ddamfn_total_loss(logits, labels, maps, att_weight=self.att_weight, ial_weight=self.ial_weight,
                                    form=self.att_form, aux_logits=aux, aux_weight=self.model.cfg.gca_aux_weight)
        return loss, logits, F.cross_entropy(logits.detach(), labels)

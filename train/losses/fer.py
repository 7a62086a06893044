"""Losses of the two baseline seeds: DDAMFN's attention loss (seed 003) and the intensity-aware loss (seed 002).

* ``attention_loss``: ``L_att = (sum_i sum_{k != i} MSE(a_i, a_k))^-1`` over the n DDA heads' maps;
  total ``L = L_cls + 0.1 * L_att``. Small when the heads attend to different regions.
* ``intensity_aware_loss``: ``L_IA = -log P_IA`` where ``P_IA`` is the softmax over only two logits,
  the target's and the largest non-target one (the most confusable class); total
  ``L = L_CE + 0.1 * L_IA``. Low-intensity samples sit near another class, so they get extra push.

Both are model-agnostic: the IAL option applies to LRDif's logits as well as DDAMFN's.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def attention_loss(maps: Sequence[torch.Tensor], form: str = "paper", eps: float = 1e-8) -> torch.Tensor:
    """DDAMFN's attention loss over the heads' maps (each ``[B, C, H, W]``; MSE averages all elements).

    ``form="paper"``: the seed's formula, ``1 / sum over ordered pairs i != k`` (each pair counted twice).
    ``form="official"``: what the public DDAMFN training code computes, ``n_pairs / sum over pairs i < k``
    (the reciprocal of the mean pairwise MSE; = 2 * n_pairs * the paper form).
    With fewer than two heads the loss is 0. ``eps`` keeps identical maps finite.
    """
    if form not in ("paper", "official"):
        raise ValueError(f"form must be 'paper' or 'official', got {form!r}")
    n = len(maps)
    if n < 2:
        return maps[0].new_zeros(()) if n else torch.zeros(())
    pair_sum = maps[0].new_zeros(())
    pairs = 0
    for i in range(n - 1):
        for k in range(i + 1, n):
            pair_sum = pair_sum + F.mse_loss(maps[i], maps[k])
            pairs += 1
    if form == "paper":
        return 1.0 / (2.0 * pair_sum + eps)
    return pairs / (pair_sum + eps)


def intensity_aware_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``L_IA = -log softmax([z_target, max_{c != target} z_c])[0]``, averaged over the batch.

    Equals ``softplus(z_confusable - z_target)``; gradients reach both logits (the choice of the
    confusable class itself is an argmax, as in the seed's code).
    """
    # logits: [B, K], labels: [B]
    target = logits.gather(1, labels[:, None])  # [B, 1]
    is_target = F.one_hot(labels, logits.shape[1]).bool()
    other = logits.masked_fill(is_target, float("-inf")).max(dim=1, keepdim=True).values  # [B, 1]
    two = torch.cat([target, other], dim=1)  # [B, 2]
    return -F.log_softmax(two, dim=1)[:, 0].mean()


def ial_total_loss(logits: torch.Tensor, labels: torch.Tensor, ial_weight: float = 0.1
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Seed 002: ``L = L_CE + lambda * L_IA`` (lambda = 0.1)."""
    ce = F.cross_entropy(logits, labels)
    ia = intensity_aware_loss(logits, labels)
    loss = ce + ial_weight * ia
    return loss, {"ce": float(ce.detach()), "ia": float(ia.detach()), "total": float(loss.detach())}


def gca_aux_loss(aux_logits: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Seed 002's auxiliary classifiers on the GCA descriptors: the mean of their cross-entropies (0 without any).
    The caller weights it (0.05: ``DDAMFNConfig.gca_aux_weight``)."""
    if not aux_logits:
        return torch.zeros(())
    return torch.stack([F.cross_entropy(a, labels) for a in aux_logits]).mean()


def ddamfn_total_loss(logits: torch.Tensor, labels: torch.Tensor, maps: Sequence[torch.Tensor],
                      att_weight: float = 0.1, ial_weight: float = 0.0, form: str = "paper",
                      aux_logits: Sequence[torch.Tensor] = (), aux_weight: float = 0.05,
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """Seed 003: ``L = L_cls + att_weight * L_att``, plus ``ial_weight * L_IA`` when IAL is on, plus
    ``aux_weight * mean CE`` of the GCA auxiliary classifiers (seed 002) when there are any."""
    ce = F.cross_entropy(logits, labels)
    att = attention_loss(maps, form=form).to(ce)
    loss = ce + att_weight * att
    parts = {"ce": float(ce.detach()), "att": float(att.detach())}
    if aux_logits and aux_weight:
        aux = gca_aux_loss(aux_logits, labels)
        loss = loss + aux_weight * aux
        parts["gca_aux"] = float(aux.detach())
    if ial_weight:
        ia = intensity_aware_loss(logits, labels)
        loss = loss + ial_weight * ia
        parts["ia"] = float(ia.detach())
    parts["total"] = float(loss.detach())
    return loss, parts

"""LRDif losses: cross-entropy (eq. 13), the EPR KL term (eq. 17) and their sum (eq. 18)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 13: ``-sum_c y_c log p_c``, averaged over the batch."""
    return F.cross_entropy(logits, labels)


def epr_kl_loss(z_s1: torch.Tensor, z_s2: torch.Tensor) -> torch.Tensor:
    """Eq. 17: ``sum_i Z_norm(i) log(Z_norm(i) / Zbar_norm(i))`` with both EPRs softmax-normalised
    over their C dimensions; ``z_s1`` (stage-1 EPR) is the target. Averaged over the batch."""
    log_p = F.log_softmax(z_s1, dim=-1)
    log_q = F.log_softmax(z_s2, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def total_loss(logits, labels, z_s1, z_s2, kl_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 18: ``L_total = L_ce + L_kl`` (``kl_weight=0`` gives the paper's V2 ablation)."""
    ce = ce_loss(logits, labels)
    kl = epr_kl_loss(z_s1, z_s2)
    loss = ce + kl_weight * kl
    return loss, {"ce": float(ce.detach()), "kl": float(kl.detach()), "total": float(loss.detach())}

import math

import torch

from udc.train.losses.lrdif import ce_loss, epr_kl_loss, total_loss


def test_ce_matches_eq13_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    p1 = 1 / (2 + math.e)
    assert ce_loss(logits, labels).item() == torch.tensor((-math.log(p0) - math.log(p1)) / 2).item()


def test_kl_matches_eq17_by_hand():
    z1 = torch.tensor([[1.0, 0.0]])
    z2 = torch.tensor([[0.0, 1.0]])
    p = [math.e / (1 + math.e), 1 / (1 + math.e)]
    q = [p[1], p[0]]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert abs(epr_kl_loss(z1, z2).item() - expected) < 1e-6
    assert epr_kl_loss(z1, z1).item() == 0.0
    # KL is asymmetric in general and never negative
    a, b = torch.randn(64, 16), torch.randn(64, 16)
    assert epr_kl_loss(a, b).item() > 0


def test_total_is_ce_plus_kl():
    logits, labels = torch.randn(4, 7), torch.tensor([0, 1, 2, 3])
    z1, z2 = torch.randn(4, 16), torch.randn(4, 16)
    loss, parts = total_loss(logits, labels, z1, z2)
    assert abs(loss.item() - (ce_loss(logits, labels) + epr_kl_loss(z1, z2)).item()) < 1e-6
    assert set(parts) == {"ce", "kl", "total"}
    loss_v2, _ = total_loss(logits, labels, z1, z2, kl_weight=0.0)
    assert loss_v2.item() == ce_loss(logits, labels).item()

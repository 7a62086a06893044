"""Seed 002 (GCA block, intensity-aware loss) and seed 003's attention loss, against hand computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from udc.train.losses.fer import attention_loss, ddamfn_total_loss, ial_total_loss, intensity_aware_loss
from udc.sdk.models.ddamfn.gca import GCA

# ---------------------------------------------------------------- intensity-aware loss


def test_ial_known_logits():
    logits = torch.tensor([[2.0, 1.0, 0.5, 3.0],   # target 0: the most confusable class is 3 (logit 3)
                           [2.0, 1.0, 0.5, 3.0],   # target 3: the largest non-target logit is 2 (class 0)
                           [0.0, 0.0, 0.0, 0.0]])  # ties: P_IA = 1/2
    labels = torch.tensor([0, 3, 1])
    per_sample = [
        -math.log(math.exp(2) / (math.exp(2) + math.exp(3))),  # = log(1 + e)     = 1.31326
        -math.log(math.exp(3) / (math.exp(3) + math.exp(2))),  # = log(1 + e^-1)  = 0.31326
        math.log(2.0),
    ]
    assert abs(per_sample[0] - 1.3132617) < 1e-6 and abs(per_sample[1] - 0.3132617) < 1e-6
    got = intensity_aware_loss(logits, labels)
    assert abs(float(got) - sum(per_sample) / 3) < 1e-6
    # total: L = L_CE + 0.1 * L_IA, with CE over all 4 classes by hand
    ce = [-(row[t] - math.log(sum(math.exp(v) for v in row))) for row, t in zip(logits.tolist(), labels.tolist())]
    loss, parts = ial_total_loss(logits, labels)
    assert abs(float(loss) - (sum(ce) / 3 + 0.1 * sum(per_sample) / 3)) < 1e-6
    assert abs(parts["ce"] - sum(ce) / 3) < 1e-6 and abs(parts["ia"] - sum(per_sample) / 3) < 1e-6


def test_ial_only_touches_the_target_and_the_most_confusable_logit():
    logits = torch.tensor([[0.3, 2.5, -1.0, 1.7, 0.0]], requires_grad=True)
    intensity_aware_loss(logits, torch.tensor([3])).backward()
    g = logits.grad[0]
    p = 1 / (1 + math.exp(2.5 - 1.7))  # P_IA = sigmoid(z_t - z_c), target 3 (1.7), confusable class 1 (2.5)
    # dL/dz_t = -(1 - P_IA), dL/dz_c = 1 - P_IA, every other logit 0
    assert torch.allclose(g, torch.tensor([0.0, 1 - p, 0.0, -(1 - p), 0.0]), atol=1e-6)


def test_ial_is_softplus_of_the_margin_on_random_batches():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 7, generator=g) * 3
    labels = torch.randint(0, 7, (64,), generator=g)
    other = logits.clone()
    other[torch.arange(64), labels] = -1e9
    margin = other.max(1).values - logits[torch.arange(64), labels]
    assert torch.allclose(intensity_aware_loss(logits, labels), F.softplus(margin).mean(), atol=1e-6)


# ---------------------------------------------------------------- DDAMFN attention loss


def test_attention_loss_two_known_maps():
    a1 = torch.zeros(1, 2, 2, 2)
    a2 = torch.full((1, 2, 2, 2), 0.5)  # MSE(a1, a2) = 0.25
    # paper: 1 / (MSE(a1,a2) + MSE(a2,a1)) = 1 / 0.5
    assert abs(float(attention_loss([a1, a2])) - 2.0) < 1e-6
    # the public training code: n_pairs / sum_{i<k} MSE = 1 / 0.25
    assert abs(float(attention_loss([a1, a2], form="official")) - 4.0) < 1e-6
    # maps that differ in one element only: MSE = (0.8 - 0.2)^2 / 8
    b1, b2 = torch.full((1, 2, 2, 2), 0.2), torch.full((1, 2, 2, 2), 0.2)
    b2[0, 1, 0, 1] = 0.8
    assert abs(float(attention_loss([b1, b2])) - 1 / (2 * 0.36 / 8)) < 1e-4


def test_attention_loss_three_maps_and_degenerate_cases():
    a = [torch.zeros(2, 1, 3, 3), torch.full((2, 1, 3, 3), 0.5), torch.ones(2, 1, 3, 3)]
    # pair MSEs: 0.25, 1.0, 0.25 -> ordered sum 3.0; official: 3 pairs / 1.5
    assert abs(float(attention_loss(a)) - 1 / 3) < 1e-6
    assert abs(float(attention_loss(a, form="official")) - 2.0) < 1e-6
    assert float(attention_loss(a[:1])) == 0.0 and float(attention_loss([])) == 0.0
    assert torch.isfinite(attention_loss([a[0], a[0]]))  # identical heads: large but finite
    with pytest.raises(ValueError):
        attention_loss(a, form="mean")


def test_ddamfn_total_loss_with_ial_option():
    logits = torch.tensor([[2.0, 1.0, 0.5, 3.0]])
    labels = torch.tensor([0])
    maps = [torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)]
    loss, parts = ddamfn_total_loss(logits, labels, maps, att_weight=0.1, ial_weight=0.1)
    ce = F.cross_entropy(logits, labels)
    assert abs(float(loss) - (float(ce) + 0.1 * 2.0 + 0.1 * math.log(1 + math.e))) < 1e-5
    assert set(parts) == {"ce", "att", "ia", "total"}
    assert "ia" not in ddamfn_total_loss(logits, labels, maps)[1]


# ---------------------------------------------------------------- GCA block


def _gca(channels=32, size=4, **kw) -> GCA:
    torch.manual_seed(0)
    return GCA(channels, size, **kw).eval()


def test_gca_matches_its_formula():
    m = _gca(32, 4, reduction=8)
    x = torch.randn(3, 32, 4, 4)
    g = (x * m.gc.weight[:, 0][None]).sum(dim=(2, 3))  # global depthwise conv by hand: [B, C]
    h = torch.relu(g @ m.fc1.weight[:, :, 0, 0].T)  # [B, C/r]
    w = 2 * torch.sigmoid(h @ m.fc2.weight[:, :, 0, 0].T)  # [B, C] in (0, 2)
    assert torch.allclose(m.channel_weights(x)[:, :, 0, 0], w, atol=1e-6)
    assert torch.allclose(m(x), x * w[:, :, None, None], atol=1e-6)
    assert m.fc1.weight.shape == (4, 32, 1, 1)  # r = 8


def test_gca_can_enhance_and_suppress_channels():
    m = _gca(16, 4, reduction=4)
    with torch.no_grad():
        m.fc2.weight.zero_()
        m.fc2.weight[:8] = 0.5  # channels 0-7: positive pre-activation
        m.fc2.weight[8:] = -0.5
        m.fc1.weight.abs_()
        m.gc.weight.abs_()
    x = torch.rand(2, 16, 4, 4) + 0.5
    with torch.no_grad():
        w = m.channel_weights(x)[:, :, 0, 0]
    assert float(w[:, :8].min()) > 1.2  # enhanced: an SE/CBAM sigmoid gate (< 1) could not do this
    assert float(w[:, 8:].max()) < 0.8  # suppressed
    assert float(w.max()) < 2.0


def test_gca_keeps_spatial_position_unlike_average_pooling():
    m = _gca(8, 4, reduction=2)
    x1 = torch.zeros(1, 8, 4, 4)
    x2 = torch.zeros(1, 8, 4, 4)
    x1[..., 0, 0] = 1.0  # same per-channel mean, different position
    x2[..., 3, 3] = 1.0
    assert torch.equal(x1.mean(dim=(2, 3)), x2.mean(dim=(2, 3)))
    assert not torch.allclose(m.channel_weights(x1), m.channel_weights(x2))


def test_gca_clip_mode_mixes_weights_within_each_clip_only():
    frame = _gca(16, 4, reduction=4)
    clip = _gca(16, 4, reduction=4, clip_len=3)
    clip.load_state_dict(frame.state_dict())
    x = torch.randn(6, 16, 4, 4)  # 2 clips x 3 frames
    w = frame.channel_weights(x)  # [6, C, 1, 1]
    wc = w.reshape(2, 3, 16, 1, 1)
    expect = torch.sqrt(wc * wc.mean(dim=1, keepdim=True) + 1e-5).reshape(6, 16, 1, 1)
    assert torch.allclose(clip.channel_weights(x), expect, atol=1e-6)
    x2 = x.clone()
    x2[3:] = torch.randn(3, 16, 4, 4)  # change clip 2 only
    assert torch.allclose(clip.channel_weights(x2)[:3], clip.channel_weights(x)[:3])
    assert not torch.allclose(clip.channel_weights(x2)[3:], clip.channel_weights(x)[3:])

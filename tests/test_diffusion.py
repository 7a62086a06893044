"""The EPR diffusion: schedule closed forms, q-sample moments, the deterministic reverse chain."""
import math

import pytest
import torch
from torch import nn

from udc.sdk.models.config import DiffusionConfig
from udc.sdk.models.lrdif.diffusion import DiffusionSchedule, EPRDiffusion


@pytest.mark.parametrize("steps", [1, 2, 4, 8, 16])
def test_schedule_closed_forms(steps):
    s = DiffusionSchedule(DiffusionConfig(steps=steps))
    expected_betas = [
        (math.sqrt(0.1) + (math.sqrt(0.99) - math.sqrt(0.1)) * i / max(steps - 1, 1)) ** 2 for i in range(steps)
    ]
    if steps == 1:  # one step: the schedule's end, so that Z_T is (almost) the noise inference starts from
        expected_betas = [0.99]
    torch.testing.assert_close(s.betas, torch.tensor(expected_betas, dtype=torch.float64))
    alpha_bar = 1.0
    for i in range(steps):
        alpha_bar *= 1.0 - expected_betas[i]
        assert s.alphas_cumprod[i].item() == pytest.approx(alpha_bar, rel=1e-12)
    assert s.betas[0].item() == pytest.approx(0.1 if steps > 1 else 0.99)
    assert s.betas[-1].item() == pytest.approx(0.99)
    assert s.alphas_cumprod[-1].item() < 0.011  # q(Z_T | Z) keeps at most ~10 % of Z's amplitude, whatever T
    # posterior variance and coefficients from their definitions
    ab, abp = s.alphas_cumprod, s.alphas_cumprod_prev
    torch.testing.assert_close(s.posterior_variance, s.betas * (1 - abp) / (1 - ab))
    assert s.posterior_variance[0].item() == 0.0


def test_t4_alpha_bar_values():
    s = DiffusionSchedule(DiffusionConfig(steps=4))
    # betas = linspace(sqrt(.1), sqrt(.99), 4)^2: sqrt-steps of (0.99499 - 0.31623) / 3 = 0.22626
    b = [0.1, 0.54249**2, 0.76875**2, 0.99]
    for i in range(4):
        assert s.betas[i].item() == pytest.approx(b[i], abs=1e-3)
    assert s.alphas_cumprod[-1].item() == pytest.approx(0.9 * (1 - 0.54249**2) * (1 - 0.76875**2) * 0.01, rel=1e-3)


def test_q_sample_moments():
    s = DiffusionSchedule(DiffusionConfig(steps=4))
    g = torch.Generator().manual_seed(0)
    z0 = torch.linspace(-2, 2, 16)
    noise = torch.randn(200_000, 16, generator=g)
    for i in range(4):
        zt = s.q_sample(z0.expand(200_000, 16), noise, i)
        ab = s.alphas_cumprod[i].item()
        torch.testing.assert_close(zt.mean(0), math.sqrt(ab) * z0, atol=0.01, rtol=0)
        torch.testing.assert_close(zt.var(0), torch.full((16,), 1 - ab), atol=0.01, rtol=0)


def test_reverse_chain_is_deterministic_given_noise():
    torch.manual_seed(0)
    d = EPRDiffusion(8, DiffusionConfig(steps=4, hidden=32, layers=3))
    cond, n1, n2 = torch.randn(3, 2, 8).unbind(0)
    assert torch.equal(d(cond, n1), d(cond, n1.clone()))
    assert not torch.allclose(d(cond, n1), d(cond, n2))
    # variant V3: per-step noise is an input too; zero step noise is the deterministic chain
    step_noise = torch.randn(4, 2, 8)
    assert torch.equal(d(cond, n1, torch.zeros(4, 2, 8)), d(cond, n1))
    assert not torch.allclose(d(cond, n1, step_noise), d(cond, n1))


class _Oracle(nn.Module):
    """Predicts the true eps (or Z_0) of a known Z_0 at whatever step it is asked."""

    def __init__(self, z0, schedule, parameterization):
        super().__init__()
        self.z0, self.s, self.p = z0, schedule, parameterization

    def forward(self, z_t, t, cond):
        if self.p == "x0":
            return self.z0.expand_as(z_t)
        i = round(t[0, 0].item() * self.s.steps) - 1
        ab = self.s.alphas_cumprod[i].item()
        return (z_t - math.sqrt(ab) * self.z0) / math.sqrt(1 - ab)


@pytest.mark.parametrize("parameterization", ["eps", "x0"])
@pytest.mark.parametrize("steps", [1, 4, 8])
def test_reverse_chain_recovers_z0_with_a_perfect_denoiser(parameterization, steps):
    d = EPRDiffusion(6, DiffusionConfig(steps=steps, parameterization=parameterization))
    z0 = torch.randn(1, 6)
    d.net = _Oracle(z0, d.schedule, parameterization)
    z_T = torch.randn(4, 6)
    torch.testing.assert_close(d(torch.zeros(4, 6), z_T), z0.expand(4, 6), atol=1e-5, rtol=1e-5)

"""Diffusion over the EPR vector (DiffIR-style, paper eqs. 14-16).

* Schedule: ``betas = linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2`` (``[beta_end]`` for T = 1), ``alpha = 1 - beta``,
  ``alpha_bar = cumprod(alpha)``. Steps are indexed ``i = 0..T-1`` for the paper's ``t = 1..T``.
* Forward: ``q(Z_T | Z) = N(sqrt(alpha_bar_T) Z, (1 - alpha_bar_T) I)`` with the noise passed in.
* Reverse: the whole T-step chain, unrolled; deterministic unless ``step_noise`` is given (the paper's
  Table 5 "Ours", V3, inserts noise in the reverse steps; V4 does not; exported graphs run it without). With
  ``parameterization="eps"`` (eq. 16, with the standard DDPM coefficient
  ``beta_t / sqrt(1 - alpha_bar_t)``; the paper's text prints ``sqrt(1 - alpha_t)``, a typo
  against DDPM and DiffIR) or ``"x0"`` (posterior mean from a predicted Z_0).
* The initial noise is a model *input*: nothing in the graph draws random numbers. The optional
  per-step noise of variant V3 is an input too (``sigma_t * n_t`` added after every step but the last).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import DiffusionConfig


class DiffusionSchedule:
    """Closed-form schedule quantities as float64 tensors and as Python floats (graph constants)."""

    def __init__(self, cfg: DiffusionConfig):
        t = cfg.steps
        self.steps = t
        # T = 1: linspace would give beta_start alone (alpha_bar_T = 0.9), so training's Z_T would keep most of the
        # label-bearing Z while inference starts from pure noise (measured, tiny: 100 % train, 14.3 % val). The
        # schedule always ends at beta_end, so q(Z_T | Z) is close to the N(0, I) that inference starts from
        start = math.sqrt(cfg.beta_start) if t > 1 else math.sqrt(cfg.beta_end)
        self.betas = torch.linspace(start, math.sqrt(cfg.beta_end), t, dtype=torch.float64, device="cpu") ** 2
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64, device="cpu"), self.alphas_cumprod[:-1]])
        ab, abp = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = self.betas * (1.0 - abp) / (1.0 - ab)
        self.posterior_coef_x0 = self.betas * abp.sqrt() / (1.0 - ab)
        self.posterior_coef_xt = (1.0 - abp) * self.alphas.sqrt() / (1.0 - ab)
        self.eps_coef = self.betas / (1.0 - ab).sqrt()

    def q_sample(self, z0: torch.Tensor, noise: torch.Tensor, i: int | None = None) -> torch.Tensor:
        """Sample q(Z_t | Z_0) at step index ``i`` (default: the last, t = T)."""
        i = self.steps - 1 if i is None else i
        ab = float(self.alphas_cumprod[i])
        return math.sqrt(ab) * z0 + math.sqrt(1.0 - ab) * noise


class DenoiserNet(nn.Module):
    """epsilon_theta (or Z_0-predictor): MLP on ``concat(Z_t, t/T, c)`` -> ``[B, C]``."""

    def __init__(self, epr_dim: int, cfg: DiffusionConfig):
        super().__init__()
        dims = [2 * epr_dim + 1] + [cfg.hidden] * (cfg.layers - 1) + [epr_dim]
        layers: list[nn.Module] = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.1))
        self.net = nn.Sequential(*layers)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z_t, t, cond], dim=-1))


class EPRDiffusion(nn.Module):
    """The reverse chain ``Z_T -> Z'_0`` conditioned on ``c = FPEN_S2(E_I(x))``."""

    def __init__(self, epr_dim: int, cfg: DiffusionConfig):
        super().__init__()
        self.cfg = cfg
        self.schedule = DiffusionSchedule(cfg)
        self.net = DenoiserNet(epr_dim, cfg)
        s = self.schedule
        # Python floats: the unrolled graph carries them as constants (no .item(), no buffers to index)
        self._inv_sqrt_alpha = [float(1.0 / a.sqrt()) for a in s.alphas]
        self._eps_coef = [float(c) for c in s.eps_coef]
        self._coef_x0 = [float(c) for c in s.posterior_coef_x0]
        self._coef_xt = [float(c) for c in s.posterior_coef_xt]
        self._sigma = [float(v.sqrt()) for v in s.posterior_variance]

    def step(self, z: torch.Tensor, i: int, cond: torch.Tensor) -> torch.Tensor:
        """One deterministic reverse step ``Z_t -> Z_{t-1}`` at step index ``i``."""
        t = torch.full_like(z[:, :1], (i + 1) / self.cfg.steps)  # [B, 1]
        out = self.net(z, t, cond)
        if self.cfg.parameterization == "eps":
            # eq. 16 with DDPM's coefficient beta_t / sqrt(1 - alpha_bar_t) where the paper prints (1 - alpha_t) / sqrt(1 - alpha_t)
            return (z - self._eps_coef[i] * out) * self._inv_sqrt_alpha[i]
        return self._coef_x0[i] * out + self._coef_xt[i] * z  # posterior mean from predicted Z_0

    def forward(self, cond: torch.Tensor, z_T: torch.Tensor, step_noise: torch.Tensor | None = None) -> torch.Tensor:
        # cond, z_T: [B, C]; step_noise (variant V3 only): [T, B, C]
        z = z_T
        for i in reversed(range(self.cfg.steps)):
            z = self.step(z, i, cond)
            if step_noise is not None and i > 0:
                z = z + self._sigma[i] * step_noise[i]
        return z  # [B, C]

"""Apply a device profile to face crops: the UDC image formation model.

    linear = srgb_to_linear(clean)                         (sensor-linear light)
    blurred = PSF_c * linear  (+ flare: highlights * wide PSF tail)      per channel c
    electrons ~ Poisson(T_c * blurred * photons_white) + N(0, read_noise^2)
    out = linear_to_srgb(clip(gain * electrons / photons_white)),  gain = mean(T)^-exposure_compensation

Everything runs batched in torch (FFT convolution); randomness comes only from per-image seeds,
so the same seed gives the same bytes whatever the batch composition or order.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .profiles import DeviceProfile
from .psf import CHANNEL_WAVELENGTHS_UM, auto_psf_size, cached_display_psf

FLARE_THRESHOLD = 0.75  # linear intensity above which a pixel feeds the flare


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


_SRGB_LUT = srgb_to_linear(torch.arange(256, dtype=torch.float32) / 255.0)  # uint8 -> linear


def uint8_to_linear(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` sRGB -> float ``[B,3,H,W]`` linear (a table lookup)."""
    return _SRGB_LUT[torch.from_numpy(np.array(images, dtype=np.int64))].permute(0, 3, 1, 2).contiguous()


def linear_to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``[B,3,H,W]`` linear -> uint8 ``[B,H,W,3]`` sRGB, rounded."""
    return (linear_to_srgb(x) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _fast_size(n: int) -> int:
    """Smallest 2^a * 3^b >= n (pocketfft is fastest on such sizes)."""
    best = 1 << (n - 1).bit_length()
    p3 = 1
    while p3 < best:
        m = p3
        while m < n:
            m *= 2
        best, p3 = min(best, m), p3 * 3
    return best


def fft_conv2d(x: torch.Tensor, psf: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
    """Same-size convolution of ``x [B,C,H,W]`` with a per-channel kernel ``psf [C,K,K]`` (K odd),
    reflect-padded at the borders, computed with real FFTs on a fast transform size. ``cache`` (a dict
    owned by the caller, one per kernel) keeps the kernel's spectrum per transform size."""
    b, c, h, w = x.shape
    k = psf.shape[-1]
    p = k // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect" if min(h, w) > p else "replicate")
    hp, wp = _fast_size(h + 2 * p), _fast_size(w + 2 * p)
    xp = F.pad(xp, (0, wp - xp.shape[-1], 0, hp - xp.shape[-2]))
    spectrum = cache.get((hp, wp)) if cache is not None else None
    if spectrum is None:
        kernel = torch.zeros(c, hp, wp, dtype=x.dtype)
        kernel[:, :k, :k] = psf
        spectrum = torch.fft.rfft2(torch.roll(kernel, shifts=(-p, -p), dims=(-2, -1)))  # centre at (0, 0)
        if cache is not None:
            cache[(hp, wp)] = spectrum
    out = torch.fft.irfft2(torch.fft.rfft2(xp) * spectrum, s=(hp, wp))
    return out[..., p:p + h, p:p + w]


POISSON_EXACT_BELOW = 30.0  # electrons; above, the Poisson term is drawn as a Gaussian of equal mean and variance


def add_poisson_gaussian(signal: torch.Tensor, photons: float, read_noise_e: float,
                         generator: torch.Generator) -> torch.Tensor:
    """``(Poisson(signal * photons) + N(0, read_noise^2)) / photons``.

    Mean ``signal``, variance ``signal / photons + (read_noise / photons)^2``. Pixels expecting fewer
    than ``POISSON_EXACT_BELOW`` electrons draw an exact Poisson sample; brighter ones use the
    Gaussian with the same mean and variance (indistinguishable there, and 5x faster).
    """
    lam = signal.clamp(min=0) * photons
    electrons = lam + torch.sqrt(lam + read_noise_e**2) * torch.randn(lam.shape, generator=generator)
    dark = lam < POISSON_EXACT_BELOW
    if dark.any():
        ld = lam[dark]
        electrons[dark] = torch.poisson(ld, generator=generator) + read_noise_e * torch.randn(
            ld.shape, generator=generator)
    return electrons / photons


class UDCDegrader:
    """``degrader(images, seeds)``: uint8 ``[B,H,W,3]`` (or float ``[B,3,H,W]`` in 0..1) -> same kind."""

    def __init__(self, profile: DeviceProfile, crop_size: int, psf: np.ndarray | None = None,
                 psf_size: int | None = None, flare: bool = True):
        self.profile = profile
        self.crop_size = crop_size
        self.psf_source = "measured" if psf is not None else "computed"
        aperture, optics = profile.aperture(), profile.optics(crop_size)
        psf_size = psf_size or auto_psf_size(aperture, optics)
        if psf is None:
            psf = cached_display_psf(aperture, optics, psf_size)
        self.psf = torch.from_numpy(np.ascontiguousarray(psf, dtype=np.float32))
        self.flare_psf = None
        if flare and profile.flare > 0:
            # the far tail needs no spectral averaging: one wavelength per channel keeps this cheap
            wide = cached_display_psf(aperture, optics, 4 * psf_size + 1,
                               wavelengths=tuple((w[1],) for w in CHANNEL_WAVELENGTHS_UM))
            c = wide.shape[-1] // 2
            r = psf.shape[-1] // 2
            wide[:, c - r:c + r + 1, c - r:c + r + 1] = 0.0  # the tail only: the core is the blur above
            self.flare_psf = torch.from_numpy(wide / wide.sum(axis=(1, 2), keepdims=True))
        t = torch.tensor(profile.transmittance, dtype=torch.float32)
        self.transmittance = t.view(1, 3, 1, 1)
        self.gain = float(t.mean()) ** -profile.exposure_compensation
        self._spectra: dict = {}
        self._flare_spectra: dict = {}

    def degrade_linear(self, linear: torch.Tensor, seeds: list[int], noise: bool = True) -> torch.Tensor:
        """Sensor-linear ``[B,3,H,W]`` -> degraded sensor-linear (before gamma)."""
        p = self.profile
        y = fft_conv2d(linear, self.psf, self._spectra)
        if self.flare_psf is not None:
            highlights = (linear - FLARE_THRESHOLD).clamp(min=0) / (1 - FLARE_THRESHOLD)
            if highlights.any():
                y = y + p.flare * fft_conv2d(highlights, self.flare_psf, self._flare_spectra)
        y = y.clamp(min=0) * self.transmittance
        if noise:
            y = torch.stack([
                add_poisson_gaussian(img, p.photons_white, p.read_noise_e, torch.Generator().manual_seed(int(s)))
                for img, s in zip(y, seeds)
            ])
        return y * self.gain

    def __call__(self, images, seeds: list[int], noise: bool = True):
        if len(seeds) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(seeds)} seeds")
        if isinstance(images, np.ndarray):
            return linear_to_uint8(self.degrade_linear(uint8_to_linear(images), seeds, noise))
        return linear_to_srgb(self.degrade_linear(srgb_to_linear(images), seeds, noise))

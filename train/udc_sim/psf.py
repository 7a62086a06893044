"""Point-spread functions of a display in front of a phone camera, by Fraunhofer diffraction.

The display over the camera is a thin amplitude mask ``A(x, y)`` (1 where light passes between
the OLED emitters and wires, 0 where it is blocked), seen through the lens's circular entrance
pupil of diameter ``D = f / N``. For a wavelength ``lambda`` the intensity PSF on the sensor is
``|FFT(A * pupil)|^2`` with the frequency ``xi`` landing at sensor position ``x = lambda f xi``.

Sampling: the pupil is sampled every ``dx`` um on an ``N x N`` grid, so one FFT bin is
``lambda f / (N dx)`` um on the sensor. We choose ``N`` per wavelength so that every wavelength lands
on the *same* bin size ``b`` (a fraction ``1/k`` of one output pixel), which must not exceed the
lens's own Nyquist limit ``lambda_min * N_f`` for the Airy core to be resolved. Each RGB channel
averages a few wavelengths across its band; ``k x k`` bins are summed into one output pixel
(pixel integration) and each channel is normalised to sum 1.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PSF_VERSION = 1  # bump when display_psf's numerics change (invalidates the disk cache)

#: Wavelengths (um) averaged for each RGB channel (centres and edges of typical CFA passbands).
CHANNEL_WAVELENGTHS_UM = ((0.59, 0.615, 0.64), (0.50, 0.53, 0.56), (0.43, 0.455, 0.48))


@dataclass(frozen=True)
class DisplayAperture:
    """One period of the display over the camera, repeated on a square lattice.

    layout "window": a transparent ``open_w x open_h`` rectangle per cell (emitters/wires opaque);
    layout "circle": a transparent disc of diameter ``open_w`` per cell.
    """

    pitch_um: float
    layout: str = "window"
    open_w_um: float = 30.0
    open_h_um: float = 30.0

    def mask(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Amplitude transmission at pupil coordinates (um, centred on the optical axis)."""
        u = np.mod(x, self.pitch_um) - self.pitch_um / 2
        v = np.mod(y, self.pitch_um) - self.pitch_um / 2
        if self.layout == "window":
            return ((np.abs(u) <= self.open_w_um / 2) & (np.abs(v) <= self.open_h_um / 2)).astype(np.float64)
        if self.layout == "circle":
            return (u * u + v * v <= (self.open_w_um / 2) ** 2).astype(np.float64)
        raise ValueError(f"unknown display layout {self.layout!r} (window, circle)")

    @property
    def open_fraction(self) -> float:
        if self.layout == "circle":
            return math.pi * (self.open_w_um / 2) ** 2 / self.pitch_um**2
        return self.open_w_um * self.open_h_um / self.pitch_um**2


@dataclass(frozen=True)
class Optics:
    focal_mm: float  # lens focal length
    f_number: float
    um_per_pixel: float  # sensor micrometres that one pixel of the *output image* covers

    @property
    def pupil_um(self) -> float:
        return self.focal_mm * 1000.0 / self.f_number


def _psf_one_wavelength(aperture: DisplayAperture, optics: Optics, lam: float, dx: float, bin_um: float,
                        n_pix: int, k: int) -> np.ndarray:
    f_um = optics.focal_mm * 1000.0
    n = int(round(lam * f_um / (bin_um * dx)))  # FFT size that puts one bin at bin_um on the sensor
    d = optics.pupil_um
    m = int(math.ceil(d / dx)) + 1  # pupil samples
    if n < m:
        raise ValueError("PSF sampling too coarse for this pupil: lower dx or the output pixel size")
    c = (np.arange(m) - (m - 1) / 2) * dx
    xx, yy = np.meshgrid(c, c)
    field = aperture.mask(xx, yy) * ((xx * xx + yy * yy) <= (d / 2) ** 2)
    padded = np.zeros((n, n))
    padded[:m, :m] = field
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(padded))) ** 2  # centre at n // 2
    span = n_pix * k
    if span > n:
        raise ValueError("PSF window larger than the diffraction field: lower dx")
    start = n // 2 - span // 2  # the optical axis (bin n // 2) in the middle bin of the centre pixel
    window = intensity[start:start + span, start:start + span]
    return window.reshape(n_pix, k, n_pix, k).sum(axis=(1, 3))  # integrate over each output pixel


def auto_psf_size(aperture: DisplayAperture, optics: Optics, lobes: float = 2.5, limits=(7, 63)) -> int:
    """Odd window (pixels) covering ``lobes`` side lobes of the reddest light's diffraction envelope
    (first zero at ``lambda f / opening``): small crops get small kernels, large crops larger ones."""
    lam_max = max(max(w) for w in CHANNEL_WAVELENGTHS_UM)
    radius_um = lobes * lam_max * optics.focal_mm * 1000.0 / min(aperture.open_w_um, aperture.open_h_um)
    size = 2 * math.ceil(radius_um / optics.um_per_pixel) + 1
    return int(min(max(size, limits[0]), limits[1]))


def display_psf(aperture: DisplayAperture, optics: Optics, size: int = 31, dx: float | None = None,
                wavelengths=CHANNEL_WAVELENGTHS_UM) -> np.ndarray:
    """``[3, size, size]`` float32 PSF (R, G, B), each channel summing to 1, centred at ``size // 2``."""
    if size % 2 == 0:
        raise ValueError("PSF size must be odd (a centre pixel)")
    lam_min = min(min(w) for w in wavelengths)
    # bins per output pixel, with a margin so rounding never puts a bin above the Nyquist limit
    k = max(1, math.ceil(1.15 * optics.um_per_pixel / (lam_min * optics.f_number)))
    if k % 2 == 0:
        k += 1  # odd, so the optical axis falls in the middle bin of the centre pixel
    bin_um = optics.um_per_pixel / k
    if dx is None:  # resolve the display's features, and make the diffraction field cover the window
        feature = min(aperture.pitch_um, aperture.open_w_um, aperture.open_h_um) / 8.0
        field = 0.9 * lam_min * optics.focal_mm * 1000.0 / (size * optics.um_per_pixel)
        dx = min(feature, field)
    out = np.zeros((3, size, size))
    for ch, lams in enumerate(wavelengths):
        for lam in lams:
            p = _psf_one_wavelength(aperture, optics, lam, dx, bin_um, size, k)
            out[ch] += p / p.sum()
        out[ch] /= out[ch].sum()
    return out.astype(np.float32)


def psf_cache_dir() -> Path:
    """Where computed PSFs are kept: ``$UDC_CACHE_DIR/psf`` or ``~/.cache/udc/psf``."""
    root = os.environ.get("UDC_CACHE_DIR") or Path.home() / ".cache" / "udc"
    return Path(root) / "psf"


def cached_display_psf(aperture: DisplayAperture, optics: Optics, size: int,
                       wavelengths=CHANNEL_WAVELENGTHS_UM) -> np.ndarray:
    """:func:`display_psf`, memoised on disk by its exact inputs (PSFs take up to seconds to compute)."""
    key = hashlib.sha256(repr((PSF_VERSION, aperture, optics, size, wavelengths)).encode()).hexdigest()[:24]
    path = psf_cache_dir() / f"{key}.npy"
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    psf = display_psf(aperture, optics, size, wavelengths=wavelengths)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npy", dir=path.parent)
        os.close(fd)
        np.save(tmp, psf)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs the recomputation
    return psf


def load_psf(path, size: int | None = None) -> np.ndarray:
    """A measured PSF from ``.npy``: ``[H,W]`` (all channels) or ``[3,H,W]`` / ``[H,W,3]``; cropped to
    ``size`` around its centre of mass's pixel when given, clipped at 0, each channel normalised."""
    psf = np.load(path, allow_pickle=False).astype(np.float64)
    if psf.ndim == 2:
        psf = np.repeat(psf[None], 3, axis=0)
    elif psf.ndim == 3 and psf.shape[-1] == 3 and psf.shape[0] != 3:
        psf = psf.transpose(2, 0, 1)
    if psf.ndim != 3 or psf.shape[0] != 3:
        raise ValueError(f"{path}: expected a PSF of shape [H,W], [3,H,W] or [H,W,3], got {psf.shape}")
    psf = np.clip(psf, 0, None)
    if size is not None:
        total = psf.sum(0)
        cy, cx = np.unravel_index(np.argmax(total), total.shape)
        h = size // 2
        psf = np.pad(psf, ((0, 0), (h, h), (h, h)))[:, cy:cy + size, cx:cx + size]
    sums = psf.sum(axis=(1, 2), keepdims=True)
    if np.any(sums <= 0):
        raise ValueError(f"{path}: a PSF channel is all zero")
    return (psf / sums).astype(np.float32)

"""The UDC simulator: PSF physics, degradation statistics, determinism, tree conversion."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from udc.train.udc_sim.degrade import UDCDegrader, add_poisson_gaussian, fft_conv2d
from udc.train.udc_sim.profiles import PROFILES, get_profile
from udc.train.udc_sim.psf import DisplayAperture, Optics, display_psf, load_psf

OPTICS = Optics(focal_mm=3.5, f_number=2.0, um_per_pixel=10.0)


def mean_radius(psf: np.ndarray) -> np.ndarray:
    k = psf.shape[-1]
    yy, xx = np.mgrid[:k, :k] - k // 2
    return (psf * np.hypot(xx, yy)).sum(axis=(1, 2))


@pytest.mark.parametrize("name", list(PROFILES))
def test_profile_psf_sums_to_one_per_channel(name):
    psf = display_psf(PROFILES[name].aperture(), PROFILES[name].optics(112), 31)
    assert psf.shape == (3, 31, 31) and psf.dtype == np.float32 and (psf >= 0).all()
    np.testing.assert_allclose(psf.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_wider_opening_gives_narrower_psf():
    radii = [mean_radius(display_psf(DisplayAperture(63.5, "window", a, a), OPTICS, 31)).mean()
             for a in (20.0, 35.0, 50.0)]
    assert radii[0] > radii[1] > radii[2]
    # and the undiffracted share in the centre pixel grows with the open area
    centre = [display_psf(DisplayAperture(63.5, "circle", d, d), OPTICS, 31)[1, 15, 15] for d in (30.0, 50.0)]
    assert centre[1] > centre[0]


def test_psf_disk_cache_returns_the_computed_psf(tmp_path, monkeypatch):
    from udc.train.udc_sim import psf as psf_mod

    monkeypatch.setenv("UDC_CACHE_DIR", str(tmp_path))
    ap = DisplayAperture(63.5, "window", 30, 30)
    first = psf_mod.cached_display_psf(ap, OPTICS, 15)
    assert len(list((tmp_path / "psf").glob("*.npy"))) == 1
    np.testing.assert_array_equal(first, display_psf(ap, OPTICS, 15))
    monkeypatch.setattr(psf_mod, "display_psf", lambda *a, **k: pytest.fail("recomputed despite the cache"))
    np.testing.assert_array_equal(psf_mod.cached_display_psf(ap, OPTICS, 15), first)


def test_first_diffraction_order_lands_at_lambda_f_over_pitch():
    optics = Optics(focal_mm=3.5, f_number=2.0, um_per_pixel=2.0)
    psf = display_psf(DisplayAperture(63.5, "window", 30, 30), optics, 41)
    row = psf[:, 20, 20 + 6:]  # right of the centre, along the grating axis
    peaks = [6 + int(np.argmax(r)) for r in row]
    expected = [np.mean(w) * 3500 / 63.5 / 2.0 for w in ((0.59, 0.615, 0.64), (0.50, 0.53, 0.56), (0.43, 0.455, 0.48))]
    assert peaks[0] > peaks[1] > peaks[2]  # red diffracts furthest
    for got, want in zip(peaks, expected):
        assert abs(got - want) <= 1.0


def test_fft_conv_identity_and_shift():
    x = torch.rand(2, 3, 20, 24)
    delta = torch.zeros(3, 5, 5)
    delta[:, 2, 2] = 1
    torch.testing.assert_close(fft_conv2d(x, delta), x, atol=1e-5, rtol=0)
    shift = torch.zeros(3, 5, 5)
    shift[:, 2, 3] = 1  # kernel one to the right: output(x) = input(x - 1)
    torch.testing.assert_close(fft_conv2d(x, shift)[..., 1:], x[..., :-1], atol=1e-5, rtol=0)


def _radial_power(img: np.ndarray) -> np.ndarray:
    g = img.astype(np.float64).mean(axis=2)
    p = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    k = img.shape[0]
    yy, xx = np.mgrid[:k, :k] - k // 2
    r = np.hypot(xx, yy).astype(int)
    return np.bincount(r.ravel(), p.ravel()) / np.bincount(r.ravel())


@pytest.mark.parametrize("name", list(PROFILES))
def test_degraded_image_has_lower_mid_frequency_mtf(name):
    rng = np.random.default_rng(0)
    img = (rng.random((1, 128, 128, 3)) ** 0.5 * 255).astype(np.uint8)  # broadband texture
    out = UDCDegrader(PROFILES[name], 128, flare=False)(img, [0], noise=False)
    clean, deg = _radial_power(img[0]), _radial_power(out[0])
    mid = slice(128 // 8, 128 // 4)  # 1/8 .. 1/4 cycles per pixel
    mtf = np.sqrt(deg[mid] / clean[mid])
    assert mtf.mean() < 0.8, f"{name}: mid-frequency MTF {mtf.mean():.2f}"


@pytest.mark.parametrize("signal", [0.002, 0.02, 0.3])  # dark (exact Poisson) to bright (Gaussian)
def test_noise_variance_follows_poisson_gaussian(signal):
    photons, read = 1000.0, 3.0
    x = torch.full((400_000,), signal)
    y = add_poisson_gaussian(x, photons, read, torch.Generator().manual_seed(1))
    expected_var = signal / photons + (read / photons) ** 2
    assert abs(y.mean().item() - signal) < 4 * math.sqrt(expected_var / x.numel())
    assert y.var().item() == pytest.approx(expected_var, rel=0.02)


def test_same_seed_same_bytes_and_order_independent():
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    deg = UDCDegrader(get_profile("zte_axon20"), 64)
    a = deg(imgs, [10, 11, 12])
    b = deg(imgs, [10, 11, 12])
    assert a.tobytes() == b.tobytes()
    alone = UDCDegrader(get_profile("zte_axon20"), 64)(imgs[2:], [12])
    assert alone.tobytes() == a[2:].tobytes()
    c = deg(imgs, [10, 11, 99])
    assert a[2].tobytes() != c[2].tobytes()


def test_attenuation_and_gain():
    prof = get_profile("galaxy_z_fold3")
    deg = UDCDegrader(prof, 64, flare=False)
    flat = np.full((1, 64, 64, 3), 128, np.uint8)
    out = deg(flat, [0], noise=False)[0].astype(float)
    lin_in = ((128 / 255 + 0.055) / 1.055) ** 2.4
    t = np.array(prof.transmittance)
    expected_lin = lin_in * t * np.mean(t) ** -prof.exposure_compensation
    expected = np.where(expected_lin <= 0.0031308, 12.92 * expected_lin, 1.055 * expected_lin ** (1 / 2.4) - 0.055) * 255
    np.testing.assert_allclose(out[32, 32], expected, atol=1.0)
    assert out[32, 32, 2] < out[32, 32, 0]  # blue lost most: the yellow cast of UDC panels


def test_measured_psf_overrides(tmp_path):
    psf = np.zeros((9, 9))
    psf[4, 4] = 2.0  # unnormalised delta
    np.save(tmp_path / "psf.npy", psf)
    loaded = load_psf(tmp_path / "psf.npy", 5)
    assert loaded.shape == (3, 5, 5) and loaded[:, 2, 2].tolist() == [1.0, 1.0, 1.0]
    deg = UDCDegrader(get_profile("zte_axon20"), 32, psf=loaded, flare=False)
    assert deg.psf_source == "measured"
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    ref = UDCDegrader(get_profile("zte_axon20"), 32, psf=np.tile(np.eye(1, 25, 12).reshape(1, 5, 5), (3, 1, 1)),
                      flare=False)(img, [0], noise=False)
    assert deg(img, [0], noise=False).tobytes() == ref.tobytes()
    np.save(tmp_path / "bad.npy", np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="expected a PSF"):
        load_psf(tmp_path / "bad.npy")


def test_profiles_separate_published_from_assumed():
    for p in PROFILES.values():
        assert p.published and p.assumed, p.name
        assert 2.0 < p.focal_mm() < 6.0
        d = p.to_dict()
        assert d["pitch_um"] == pytest.approx(25400 / p.ppi, abs=0.01)
    with pytest.raises(ValueError, match="unknown UDC profile"):
        get_profile("iphone")

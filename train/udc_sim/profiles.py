"""Device profiles of real under-display-camera phones.

Every profile separates what a source states (``published``) from what we had to assume
(``assumed``). No phone maker publishes its UDC panel's aperture geometry or transmittance, nor
the sensor's noise: those are assumptions, chosen from the UDC literature (Zhou et al. CVPR 2021:
T-OLED ~20 % / P-OLED ~3 % transmittance; Yang & Sankaranarayanan ICCP 2021: T-OLED open-area
ratio 0.21, full well 15,506 e-, read noise 4.87 e-) and from reports that later UDC panels let
more light through. The published numbers were collected from launch coverage and spec sheets
(named per profile) and were not re-verified against the makers' own pages, which are not
reachable from the build machine.

Imaging geometry shared by all profiles (assumed): a selfie at 0.35 m, a face 0.15 m wide,
4:3 sensor, and a face crop in which the face spans ``FACE_SPAN`` of the crop width (the canonical
alignment of :mod:`udc.sdk.faces.align`). That fixes how many sensor micrometres one crop pixel covers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .psf import DisplayAperture, Optics

SELFIE_DISTANCE_M = 0.35
FACE_WIDTH_M = 0.15
FACE_SPAN = 0.67  # face width / crop width in an aligned crop


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    title: str
    # camera
    megapixels: float  # native sensor resolution
    pixel_um: float  # native pixel pitch
    f_number: float
    fov_deg: float  # diagonal field of view
    # display over the camera
    ppi: float  # pixel density over the camera
    layout: str  # "window" (rectangular openings) or "circle" (round openings)
    open_fraction: float  # transparent area / cell area
    transmittance: tuple[float, float, float]  # intensity transmittance of the open area, R, G, B
    # sensor and processing
    photons_white: float  # photo-electrons of a clean white pixel before the display (sets shot noise)
    read_noise_e: float  # read noise, electrons
    exposure_compensation: float  # 0 = no auto-exposure gain, 1 = brightness fully restored
    flare: float  # strength of the highlight flare (0 = off)
    published: dict[str, str] = field(default_factory=dict)
    assumed: dict[str, str] = field(default_factory=dict)

    @property
    def pitch_um(self) -> float:
        return 25400.0 / self.ppi

    def aperture(self) -> DisplayAperture:
        if self.layout == "circle":
            d = 2 * self.pitch_um * math.sqrt(self.open_fraction / math.pi)
            return DisplayAperture(self.pitch_um, "circle", d, d)
        side = self.pitch_um * math.sqrt(self.open_fraction)
        return DisplayAperture(self.pitch_um, "window", side, side)

    def sensor_width_um(self) -> float:
        width_px = math.sqrt(self.megapixels * 1e6 * 4 / 3)
        return width_px * self.pixel_um

    def focal_mm(self) -> float:
        diag_um = self.sensor_width_um() * 5 / 4  # 4:3 sensor: diagonal = 5/4 width
        return diag_um / 2 / math.tan(math.radians(self.fov_deg) / 2) / 1000.0

    def optics(self, crop_size: int) -> Optics:
        """The lens and the sensor micrometres per pixel of a ``crop_size`` face crop."""
        tan_half_h = math.tan(math.radians(self.fov_deg) / 2) * 4 / 5
        face_fraction = FACE_WIDTH_M / (2 * SELFIE_DISTANCE_M * tan_half_h)
        um_per_px = self.sensor_width_um() * face_fraction / (FACE_SPAN * crop_size)
        return Optics(self.focal_mm(), self.f_number, um_per_px)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pitch_um"] = round(self.pitch_um, 2)
        d["focal_mm"] = round(self.focal_mm(), 3)
        return d

    def jittered(self, rng: np.random.Generator, amount: float = 0.15) -> "DeviceProfile":
        """A nearby random device (for training augmentation): every assumed quantity scaled by up to ±amount."""
        def j(x: float) -> float:
            return float(x * (1 + rng.uniform(-amount, amount)))

        return replace(
            self, name=f"{self.name}~", open_fraction=min(0.9, j(self.open_fraction)),
            transmittance=tuple(min(1.0, j(t)) for t in self.transmittance),
            photons_white=j(self.photons_white), read_noise_e=j(self.read_noise_e),
            exposure_compensation=min(1.0, j(self.exposure_compensation)), flare=j(self.flare),
        )


_COMMON_ASSUMED = {
    "layout/open_fraction": "no maker publishes the UDC-area aperture geometry",
    "transmittance": "not published; blue lowest because the yellow polyimide substrate absorbs blue",
    "photons_white/read_noise_e": "indoor selfie light level and a small-pixel CMOS read noise; literature range",
    "exposure_compensation": "auto-exposure restores part of the lost brightness",
}

PROFILES: dict[str, DeviceProfile] = {p.name: p for p in [
    DeviceProfile(
        name="zte_axon20", title="ZTE Axon 20 5G (first-generation UDC, 2020)",
        megapixels=32, pixel_um=0.8, f_number=2.0, fov_deg=78,
        ppi=200, layout="window", open_fraction=0.20, transmittance=(0.22, 0.20, 0.14),
        photons_white=900, read_noise_e=3.0, exposure_compensation=0.7, flare=0.25,
        published={"megapixels": "32 MP UDC camera (launch coverage)",
                   "ppi": "about 200 PPI over the camera, lower than the rest of the screen (SlashGear)"},
        assumed={**_COMMON_ASSUMED, "pixel_um/f_number/fov_deg": "not published; typical 32 MP selfie module"},
    ),
    DeviceProfile(
        name="zte_axon30", title="ZTE Axon 30 5G (UDC 2.0, 2021)",
        megapixels=16, pixel_um=1.12, f_number=2.0, fov_deg=78,
        ppi=400, layout="window", open_fraction=0.25, transmittance=(0.30, 0.28, 0.20),
        photons_white=1200, read_noise_e=3.0, exposure_compensation=0.75, flare=0.2,
        published={"megapixels/f_number": "16 MP, f/2.0 (SlashGear launch article)",
                   "pixel_um": "2.24 um after 4-in-1 binning, i.e. 1.12 um native",
                   "ppi": "400 PPI over the camera, same as the rest of the screen (SlashGear)"},
        assumed={**_COMMON_ASSUMED, "fov_deg": "not published"},
    ),
    DeviceProfile(
        name="zte_axon40_ultra", title="ZTE Axon 40 Ultra (UDC 3.0, 2022)",
        megapixels=16, pixel_um=1.12, f_number=2.0, fov_deg=80,
        ppi=400, layout="window", open_fraction=0.30, transmittance=(0.34, 0.32, 0.24),
        photons_white=1400, read_noise_e=2.8, exposure_compensation=0.8, flare=0.15,
        published={"megapixels/f_number": "16 MP, f/2.0 (Android Authority review)",
                   "pixel_um": "2.24 um binned (Notebookcheck), i.e. 1.12 um native",
                   "ppi": "400 PPI over the camera (Notebookcheck, TechNode)",
                   "layout": "smaller pixels near the camera, 'decentralized transparent circuits' (TechNode)"},
        assumed={**_COMMON_ASSUMED, "fov_deg": "not published"},
    ),
    DeviceProfile(
        name="xiaomi_mix4", title="Xiaomi Mix 4 (CUP, 2021)",
        megapixels=20, pixel_um=0.8, f_number=2.2, fov_deg=78,
        ppi=400, layout="circle", open_fraction=0.30, transmittance=(0.32, 0.30, 0.22),
        photons_white=1000, read_noise_e=3.0, exposure_compensation=0.75, flare=0.2,
        published={"megapixels": "20 MP UDC camera (launch coverage)",
                   "pixel_um": "1.6 um after 4-in-1 binning, i.e. 0.8 um native",
                   "ppi": "400 PPI over the camera (The Verge)",
                   "layout": "circuits moved out from under the pixels, smaller round sub-pixels (Xiaomi via xiaomitoday)"},
        assumed={**_COMMON_ASSUMED, "f_number/fov_deg": "not published", "layout": "round openings model the round sub-pixels"},
    ),
    DeviceProfile(
        name="galaxy_z_fold3", title="Samsung Galaxy Z Fold3, inner-screen UDC (2021)",
        megapixels=4, pixel_um=2.0, f_number=1.8, fov_deg=80,
        ppi=187, layout="window", open_fraction=0.30, transmittance=(0.40, 0.36, 0.26),
        photons_white=2500, read_noise_e=4.0, exposure_compensation=0.8, flare=0.3,
        published={"megapixels/pixel_um/f_number/fov_deg": "4 MP, 2.0 um, f/1.8, 80 degrees (PhoneArena)",
                   "ppi": "about 187 PPI over the camera vs 374 PPI elsewhere (report on Samsung Display; leaks differ: 94-172)",
                   "transmittance": "rumoured 'more than 40 %' (leak, low confidence)"},
        assumed={**_COMMON_ASSUMED},
    ),
    DeviceProfile(
        name="galaxy_z_fold4", title="Samsung Galaxy Z Fold4, inner-screen UDC (2022)",
        megapixels=4, pixel_um=2.0, f_number=1.8, fov_deg=80,
        ppi=132, layout="window", open_fraction=0.35, transmittance=(0.42, 0.38, 0.28),
        photons_white=2500, read_noise_e=4.0, exposure_compensation=0.8, flare=0.25,
        published={"megapixels/f_number": "4 MP, f/1.8 (spec sheets)",
                   "ppi": "132 PPI with 'scattered' sub-pixels (leak reported by Gadgets360, low-medium confidence)",
                   "note": "Samsung states the UDC-area pixel density is lowered and AI restoration applied (Samsung Newsroom)"},
        assumed={**_COMMON_ASSUMED, "pixel_um/fov_deg": "taken equal to the Fold3's"},
    ),
]}


def get_profile(name: str) -> DeviceProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown UDC profile {name!r}; choose one of: {', '.join(PROFILES)}, random") from None

"""Physically based under-display-camera degradation: display aperture -> Fraunhofer PSF per
wavelength -> blur, transmittance loss, Poisson-Gaussian noise, exposure gain, optional flare."""
from .degrade import UDCDegrader
from .profiles import PROFILES, DeviceProfile, get_profile

__all__ = ["PROFILES", "DeviceProfile", "UDCDegrader", "get_profile"]

"""Expression parameters in the spirit of FACS action units, and one prototype per expression.

Every parameter is an intensity in ``[0, 1]``. A sampled expression is its class prototype scaled
by a random overall intensity, with per-parameter jitter, occasional missing components and
noise on every parameter, so that neighbouring classes (fear/surprise, anger/disgust,
sadness/neutral at low intensity) overlap somewhat.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass, fields

import numpy as np

from udc.sdk.labels import LABELS


@dataclass(frozen=True)
class Expression:
    """Action-unit-like intensities (FACS numbers in the comments)."""

    inner_brow_raise: float = 0.0  # AU1
    outer_brow_raise: float = 0.0  # AU2
    brow_lower: float = 0.0  # AU4: brows lowered and drawn together
    upper_lid_raise: float = 0.0  # AU5: eyes wide
    lid_droop: float = 0.0  # AU43-like: upper lids lowered
    lid_tighten: float = 0.0  # AU7: lids tightened (narrowed, lower lid up)
    cheek_raise: float = 0.0  # AU6: cheeks up, lower lids pushed up
    nose_wrinkle: float = 0.0  # AU9
    upper_lip_raise: float = 0.0  # AU10
    lip_corner_up: float = 0.0  # AU12
    lip_corner_down: float = 0.0  # AU15
    lip_stretch: float = 0.0  # AU20: lips stretched sideways
    lip_press: float = 0.0  # AU24: lips pressed thin
    lip_funnel: float = 0.0  # AU22-like: rounded mouth
    chin_raise: float = 0.0  # AU17: lower lip pushed up
    lips_part: float = 0.0  # AU25: lips apart, teeth showing
    jaw_drop: float = 0.0  # AU26/27: mouth opened by the jaw

    def as_array(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> Expression:
        return cls(*(float(v) for v in np.asarray(values, dtype=np.float64)))


AU_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Expression))

#: label -> {parameter: (low, high)} at full intensity; the first entry is the defining one and is
#: never dropped.
PROTOTYPES: dict[str, dict[str, tuple[float, float]]] = {
    "neutral": {},
    "happiness": {
        "lip_corner_up": (0.8, 1.0), "cheek_raise": (0.5, 1.0), "lid_tighten": (0.1, 0.4),
        "lip_stretch": (0.1, 0.4), "lips_part": (0.0, 1.0), "jaw_drop": (0.0, 0.25),
    },
    "sadness": {
        "lip_corner_down": (0.75, 1.0), "inner_brow_raise": (0.7, 1.0), "lid_droop": (0.4, 0.8),
        "brow_lower": (0.2, 0.4), "chin_raise": (0.3, 0.8),
    },
    "surprise": {
        "jaw_drop": (0.6, 1.0), "inner_brow_raise": (0.8, 1.0), "outer_brow_raise": (0.8, 1.0),
        "upper_lid_raise": (0.8, 1.0), "lip_funnel": (0.2, 0.7), "lips_part": (0.5, 1.0),
    },
    "fear": {
        "lip_stretch": (0.7, 1.0), "inner_brow_raise": (0.8, 1.0), "outer_brow_raise": (0.3, 0.7),
        "brow_lower": (0.4, 0.8), "upper_lid_raise": (0.8, 1.0), "jaw_drop": (0.15, 0.45),
        "lips_part": (0.5, 1.0), "lip_corner_down": (0.0, 0.3),
    },
    "disgust": {
        "nose_wrinkle": (0.7, 1.0), "upper_lip_raise": (0.7, 1.0), "brow_lower": (0.4, 0.8),
        "cheek_raise": (0.2, 0.5), "lid_tighten": (0.2, 0.5), "lip_corner_down": (0.2, 0.5),
        "chin_raise": (0.0, 0.4),
    },
    "anger": {
        "brow_lower": (0.8, 1.0), "lid_tighten": (0.5, 1.0), "lip_press": (0.6, 1.0),
        "upper_lid_raise": (0.0, 0.4), "chin_raise": (0.2, 0.6),
    },
}
assert tuple(PROTOTYPES) == LABELS

_LO = np.zeros((len(LABELS), len(AU_NAMES)))
_HI = np.zeros((len(LABELS), len(AU_NAMES)))
_PRIMARY = np.full(len(LABELS), -1)
for _k, _label in enumerate(LABELS):
    for _j, (_name, (_lo, _hi)) in enumerate(PROTOTYPES[_label].items()):
        _LO[_k, AU_NAMES.index(_name)], _HI[_k, AU_NAMES.index(_name)] = _lo, _hi
        if _j == 0:
            _PRIMARY[_k] = AU_NAMES.index(_name)


def prototype(label: int, intensity: float = 1.0) -> Expression:
    """The middle of the class prototype at the given intensity, without noise."""
    return Expression.from_array((_LO[label] + _HI[label]) * 0.5 * intensity)


@dataclass(frozen=True)
class ExpressionNoise:
    """How a sampled expression departs from its prototype."""

    intensity: tuple[float, float] = (0.5, 1.0)  # overall intensity, uniform
    drop: float = 0.12  # probability that a non-defining component is missing
    sigma: float = 0.07  # Gaussian noise on every parameter (clipped to [0, 1])


#: Named expression-noise presets (``udc-data synthetic --difficulty``). ``standard`` is the generator's
#: default; ``easy`` shows every class near full intensity with little jitter, for short CPU demos.
DIFFICULTIES: dict[str, ExpressionNoise] = {
    "standard": ExpressionNoise(),
    "easy": ExpressionNoise(intensity=(0.9, 1.0), drop=0.0, sigma=0.02),
}


def sample_expression(rng: np.random.Generator, label: int, noise: ExpressionNoise = ExpressionNoise()) -> Expression:
    """A random expression of class ``label``; consumes the same draws whatever the label."""
    n = len(AU_NAMES)
    intensity = noise.intensity[0] + (noise.intensity[1] - noise.intensity[0]) * rng.random()
    where = rng.random(n)
    keep = rng.random(n) >= noise.drop
    jitter = rng.normal(0.0, noise.sigma, n)
    values = (_LO[label] + (_HI[label] - _LO[label]) * where) * intensity
    if _PRIMARY[label] >= 0:
        keep[_PRIMARY[label]] = True
    values = np.where(keep, values, 0.0) + jitter
    return Expression.from_array(np.clip(values, 0.0, 1.0))

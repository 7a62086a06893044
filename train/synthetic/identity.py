"""Identity parameters of a synthetic face: proportions, colours, hair style and accessories.

Lengths are in *face units*: the frame of :mod:`udc.train.synthetic.geometry`, whose origin lies
midway between the eyes on the eye line, x to the image right, y down; the inter-ocular distance
is about 0.33 units (as in :func:`udc.sdk.faces.landmarks.canonical_landmarks`, whose crop is 1 unit).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Colour = tuple[int, int, int]

#: Hair styles, by index.
HAIR_STYLES: tuple[str, ...] = ("short", "long", "buzz", "afro", "bangs")

#: Skin tones from light to dark; an identity interpolates between neighbours and jitters.
_SKIN = np.array([
    (246, 214, 190), (234, 192, 160), (214, 165, 128), (186, 134, 96),
    (150, 100, 70), (112, 74, 52), (82, 54, 40),
], dtype=np.float64)

_HAIR = np.array([
    (24, 20, 18), (48, 34, 26), (84, 58, 38), (120, 86, 52), (188, 150, 96),
    (146, 72, 38), (140, 136, 132), (210, 206, 198),
], dtype=np.float64)
_HAIR_P = np.array([0.24, 0.22, 0.16, 0.1, 0.1, 0.07, 0.07, 0.04])

_IRIS = np.array([(60, 38, 24), (96, 64, 36), (70, 100, 60), (70, 110, 150), (110, 130, 140), (36, 26, 20)],
                 dtype=np.float64)


def _colour(c: np.ndarray) -> Colour:
    r, g, b = np.clip(np.rint(c), 0, 255).astype(int).tolist()
    return (r, g, b)


@dataclass(frozen=True)
class Identity:
    """Who the face is: everything that does not change with the expression."""

    face_w: float  # half-width of the face at cheekbone level
    face_h: float  # chin below the eye line
    jaw_square: float  # 0 = oval jaw, 1 = square jaw
    crown_h: float  # top of the skull above the eye line
    hairline_h: float  # front hairline above the eye line
    eye_spacing: float  # half the distance between the eye centres
    eye_w: float  # half the width of an eye (corner to corner / 2)
    eye_open: float  # upper-lid height above the eye axis at rest
    eye_tilt: float  # outer eye corner raised by this much (negative: lowered)
    brow_gap: float  # brow above the eye line at rest
    brow_arch: float  # extra height of the brow's arch
    brow_thickness: float
    nose_len: float  # subnasale (point 33) below the eye line
    nose_w: float  # half the width of the nose wings
    mouth_y: float  # lip seam below the eye line
    mouth_w: float  # half the mouth width at rest
    lip_upper: float  # upper-lip height
    lip_lower: float  # lower-lip height
    hair_volume: float  # how far the hair stands off the skull
    hair_length: float  # for long hair: how far below the chin it reaches
    skin: Colour
    lips: Colour
    hair: Colour
    brows: Colour
    iris: Colour
    clothes: Colour
    hair_style: int  # index into HAIR_STYLES
    glasses: bool
    glasses_colour: Colour
    glasses_round: bool


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random identity; always consumes the same number of draws from ``rng``."""
    u = rng.random(40)  # one block of uniforms, so the draw count never depends on the values
    lerp = lambda i, lo, hi: lo + (hi - lo) * u[i]  # noqa: E731

    t = u[20] * (len(_SKIN) - 1)
    k = min(int(t), len(_SKIN) - 2)
    skin = _SKIN[k] + (_SKIN[k + 1] - _SKIN[k]) * (t - k) + (u[21:24] - 0.5) * 16
    lips = skin * np.array([0.86, 0.62, 0.62]) + np.array([28, 4, 8]) * (0.5 + u[24])
    hair = _HAIR[int(np.searchsorted(np.cumsum(_HAIR_P), u[25] * 0.9999))] * (0.85 + 0.3 * u[26])
    # Brows are darker than the hair and clearly darker than the skin, so they stay visible.
    brows = np.minimum(hair * 0.75, skin * 0.45) * (0.8 + 0.3 * u[27])
    iris = _IRIS[int(u[28] * len(_IRIS)) % len(_IRIS)] * (0.8 + 0.4 * u[29])
    clothes = np.array([u[30], u[31], u[32]]) * 220 + 15
    glasses_colour = (np.array([20, 20, 24]) if u[35] < 0.6 else np.array([u[36], u[37], u[38]]) * 160 + 20)

    nose_len = lerp(0, 0.19, 0.235)
    mouth_y = nose_len + lerp(1, 0.085, 0.11)
    return Identity(
        face_w=lerp(2, 0.36, 0.43),
        face_h=mouth_y + lerp(3, 0.175, 0.215),
        jaw_square=u[4],
        crown_h=lerp(5, 0.52, 0.6),
        hairline_h=lerp(6, 0.36, 0.43),
        eye_spacing=lerp(7, 0.15, 0.178),
        eye_w=lerp(8, 0.056, 0.07),
        eye_open=lerp(9, 0.023, 0.031),
        eye_tilt=lerp(10, -0.006, 0.012),
        brow_gap=lerp(11, 0.085, 0.11),
        brow_arch=lerp(12, 0.008, 0.026),
        brow_thickness=lerp(13, 0.02, 0.034),
        nose_len=nose_len,
        nose_w=lerp(14, 0.042, 0.058),
        mouth_y=mouth_y,
        mouth_w=lerp(15, 0.1, 0.13),
        lip_upper=lerp(16, 0.015, 0.026),
        lip_lower=lerp(17, 0.021, 0.034),
        hair_volume=lerp(18, 0.02, 0.08),
        hair_length=lerp(19, 0.15, 0.6),
        skin=_colour(skin),
        lips=_colour(lips),
        hair=_colour(hair),
        brows=_colour(brows),
        iris=_colour(iris),
        clothes=_colour(clothes),
        hair_style=int(u[33] * len(HAIR_STYLES)) % len(HAIR_STYLES),
        glasses=bool(u[34] < 0.2),
        glasses_colour=_colour(glasses_colour),
        glasses_round=bool(u[39] < 0.5),
    )

"""From identity + expression + pose to the 68 iBUG landmarks (and the outlines the renderer needs).

Everything is built in a frontal *face frame* (see :mod:`udc.train.synthetic.identity`): x to the
image right, y down, origin midway between the eyes, plus a depth z (towards the camera) that
only the yaw uses. The pose then turns the frame (yaw, orthographic), rolls it in the image
plane, scales it and places it in the image. The subject's right side is on the image's left, so
the right eye (36-41) and jaw point 0 have negative x.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from udc.sdk.faces.landmarks import NUM_LANDMARKS

from .curves import catmull_rom
from .expressions import AU_NAMES, PROTOTYPES, Expression, ExpressionNoise, prototype, sample_expression
from .identity import HAIR_STYLES, Identity, sample_identity

__all__ = [
    "AU_NAMES", "EYE_LINE_Y", "FaceGeometry", "HAIR_STYLES", "PROTOTYPES", "Expression", "ExpressionNoise",
    "Identity", "Pose", "face_geometry", "local_landmarks", "prototype", "sample_expression", "sample_identity",
    "sample_pose",
]

#: Height of the eye line in the image (fraction of the image) for a pose with ``ty = 0``.
EYE_LINE_Y = 0.39
_JAW_TOP = 0.02  # y of jaw points 0 and 16 (roughly where the ears attach)


@dataclass(frozen=True)
class Pose:
    """Head pose and placement; angles in degrees, shifts in image fractions."""

    yaw: float = 0.0  # positive turns the nose towards the image right
    roll: float = 0.0  # positive rotates the face clockwise in the image
    tx: float = 0.0
    ty: float = 0.0
    scale: float = 0.75  # image fraction per face unit
    gaze_x: float = 0.0  # iris offset in the eye, -1..1
    gaze_y: float = 0.0


def sample_pose(rng: np.random.Generator, max_yaw: float = 15.0, max_roll: float = 10.0,
                max_shift: float = 0.04, scale: tuple[float, float] = (0.7, 0.8)) -> Pose:
    """A random small pose: yaw within +-``max_yaw``, roll within +-``max_roll``, a small shift and scale."""
    u = rng.random(7) * 2.0 - 1.0
    return Pose(
        yaw=float(u[0] * max_yaw), roll=float(u[1] * max_roll),
        tx=float(u[2] * max_shift), ty=float(u[3] * max_shift),
        scale=float(scale[0] + (scale[1] - scale[0]) * (u[4] + 1.0) * 0.5),
        gaze_x=float(u[5]), gaze_y=float(u[6]) * 0.6,
    )


def _z_head(x: np.ndarray, face_w: float) -> np.ndarray:
    """Depth of the head surface at x: 0.05 on the midline, falling back to -0.25 at the sides."""
    r = np.clip(1.0 - (np.asarray(x) / (1.05 * face_w)) ** 2, 0.0, 1.0)
    return 0.3 * (np.sqrt(r) - 1.0) + 0.05


def _with_z(xy: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([xy, np.broadcast_to(np.asarray(z, dtype=np.float64), (len(xy),))[:, None]], axis=1)


@dataclass(frozen=True)
class _Mouth:
    """The mouth in the face frame, shared by the landmarks and the chin."""

    half_w: float
    seam_y: float
    corner_dy: float
    gap_up: float
    gap_down: float
    power: float
    power_up: float  # the upper lip's opening: lower = more peaked (raised upper lip, AU10)
    lip_up: float
    lip_down: float

    def seam(self, u: np.ndarray) -> np.ndarray:
        return self.seam_y + self.corner_dy * np.abs(u) ** 2.2

    def opening(self, u: np.ndarray, upper: bool = False) -> np.ndarray:
        p = self.power_up if upper else self.power
        v = np.minimum(np.abs(u) / 0.9, 1.0)
        return (1.0 - v ** p) ** (1.0 / p)


def _mouth(idt: Identity, ex: Expression) -> _Mouth:
    press = ex.lip_press
    shape = 2.0 + 3.0 * ex.lip_stretch + 1.5 * ex.lip_corner_up - 0.8 * ex.lip_funnel  # 2 = elliptic opening
    return _Mouth(
        half_w=idt.mouth_w * (1 + 0.32 * ex.lip_stretch + 0.16 * ex.lip_corner_up - 0.35 * ex.lip_funnel
                              + 0.04 * press - 0.06 * ex.lip_corner_down + 0.04 * ex.cheek_raise),
        seam_y=idt.mouth_y - 0.012 * ex.upper_lip_raise - 0.006 * ex.chin_raise - 0.004 * ex.nose_wrinkle,
        corner_dy=(-0.06 * ex.lip_corner_up - 0.01 * ex.cheek_raise + 0.05 * ex.lip_corner_down
                   + 0.012 * ex.lip_stretch + 0.012 * ex.chin_raise),
        gap_up=(0.01 * ex.lips_part + 0.03 * ex.upper_lip_raise + 0.022 * ex.jaw_drop) * (1 - press),
        gap_down=(0.012 * ex.lips_part + 0.12 * ex.jaw_drop + 0.008 * ex.upper_lip_raise) * (1 - press),
        power=max(1.6, shape),
        power_up=max(1.2, shape - 1.2 * ex.upper_lip_raise),
        lip_up=idt.lip_upper * (1 - 0.6 * press) * (1 - 0.25 * ex.lip_stretch) * (1 + 0.3 * ex.lip_funnel)
        * (1 - 0.2 * ex.lip_corner_up),
        lip_down=idt.lip_lower * (1 - 0.55 * press) * (1 - 0.25 * ex.lip_stretch) * (1 + 0.3 * ex.lip_funnel)
        * (1 + 0.25 * ex.chin_raise),
    )


def local_landmarks(idt: Identity, ex: Expression) -> np.ndarray:
    """The 68 landmarks in the frontal face frame, ``[68, 3]`` (x, y, z), before any pose."""
    fw = idt.face_w
    mouth = _mouth(idt, ex)
    out: list[np.ndarray] = []

    # jaw 0-16: a superellipse from the right ear (image left) down round the chin; the chin
    # follows the lower lip when the jaw drops.
    theta = np.pi - np.arange(17) * np.pi / 16
    c, s = np.cos(theta), np.sin(theta)
    e = 2.0 / (2.0 + 1.6 * idt.jaw_square)
    x = fw * np.sign(c) * np.abs(c) ** e
    y = _JAW_TOP + (idt.face_h - _JAW_TOP) * np.abs(s) ** e + 0.85 * mouth.gap_down * s ** 2
    out.append(_with_z(np.stack([x, y], 1), _z_head(x, fw) + 0.06 * s))

    # brows 17-21 (image left, outer to inner) and 22-26 (inner to outer)
    ri, ro, bl = ex.inner_brow_raise, ex.outer_brow_raise, ex.brow_lower
    inner_x = idt.eye_spacing - idt.eye_w * 0.85
    outer_x = idt.eye_spacing + idt.eye_w * 1.35
    t = np.linspace(0.0, 1.0, 5)  # 0 = inner end, 1 = outer end
    by = -idt.brow_gap - idt.brow_arch * np.sin(np.pi * t ** 1.6) + 0.012 * t
    by = by - (0.06 * ri * (1 - t) ** 1.2 + 0.02 * ri) - (0.055 * ro * t + 0.015 * ro)
    by = by + bl * (0.035 * (1 - t) ** 1.2 + 0.015)
    bx = inner_x + (outer_x - inner_x) * t - 0.03 * bl * (1 - t) ** 1.5
    for sgn in (-1.0, 1.0):
        xs, ys = sgn * bx, by
        if sgn < 0:
            xs, ys = xs[::-1], ys[::-1]
        out.append(_with_z(np.stack([xs, ys], 1), _z_head(xs, fw) + 0.03))

    # nose bridge 27-30 and lower nose 31-35
    lift = 0.018 * ex.nose_wrinkle + 0.008 * ex.upper_lip_raise
    nl = idt.nose_len - lift
    nw = idt.nose_w * (1 + 0.15 * ex.nose_wrinkle + 0.08 * ex.upper_lip_raise)
    tip = nl - 0.03
    bridge = np.array([[0.0, -0.015], [0.0, 0.32 * tip], [0.0, 0.64 * tip], [0.0, tip]])
    out.append(_with_z(bridge, _z_head(0.0, fw) + np.array([0.04, 0.09, 0.14, 0.2])))
    lower = np.array([[-nw, nl - 0.02], [-0.5 * nw, nl - 0.004], [0.0, nl], [0.5 * nw, nl - 0.004], [nw, nl - 0.02]])
    out.append(_with_z(lower, _z_head(lower[:, 0], fw) + np.array([0.05, 0.1, 0.12, 0.1, 0.05])))

    # eyes 36-41 (image left) and 42-47, each: left corner, two upper-lid points, right corner,
    # two lower-lid points (right to left)
    eo, ew = idt.eye_open, idt.eye_w
    up = max(eo * (1 + 0.95 * ex.upper_lid_raise - 0.6 * ex.lid_droop - 0.35 * ex.lid_tighten - 0.25 * ex.cheek_raise),
             0.15 * eo)
    lo = max(eo * 0.8 * (1 + 0.3 * ex.upper_lid_raise - 0.5 * ex.lid_tighten - 0.55 * ex.cheek_raise), 0.15 * eo)
    for sgn in (-1.0, 1.0):
        cx = sgn * idt.eye_spacing
        y_outer, y_inner = -idt.eye_tilt, 0.004
        yl, yr = (y_outer, y_inner) if sgn < 0 else (y_inner, y_outer)
        xl, xr = cx - ew, cx + ew
        u1, u2 = cx - 0.38 * ew, cx + 0.38 * ew
        base1 = yl + (yr - yl) * (u1 - xl) / (2 * ew)
        base2 = yl + (yr - yl) * (u2 - xl) / (2 * ew)
        eye = np.array([[xl, yl], [u1, base1 - 0.92 * up], [u2, base2 - 0.92 * up],
                        [xr, yr], [u2, base2 + 0.9 * lo], [u1, base1 + 0.9 * lo]])
        out.append(_with_z(eye, _z_head(eye[:, 0], fw) - 0.02))

    # outer lip 48-59 and inner lip 60-67
    u_out = np.array([-1.0, -0.62, -0.25, 0.0, 0.25, 0.62, 1.0, 0.62, 0.25, 0.0, -0.25, -0.62])
    upper = np.arange(12) <= 6
    bow = np.sqrt(np.clip(1 - u_out ** 2, 0, 1)) * (1 - 0.18 * np.exp(-(u_out / 0.12) ** 2))
    y_out = np.where(
        upper,
        mouth.seam(u_out) - mouth.gap_up * mouth.opening(u_out, upper=True) - mouth.lip_up * bow,
        mouth.seam(u_out) + mouth.gap_down * mouth.opening(u_out) + mouth.lip_down * np.clip(1 - u_out**2, 0, 1) ** 0.6,
    )
    u_in = np.array([-0.9, -0.4, 0.0, 0.4, 0.9, 0.4, 0.0, -0.4])
    upper_in = np.arange(8) <= 4
    y_in = np.where(upper_in, mouth.seam(u_in) - mouth.gap_up * mouth.opening(u_in, upper=True),
                    mouth.seam(u_in) + mouth.gap_down * mouth.opening(u_in))
    for u, yy in ((u_out, y_out), (u_in, y_in)):
        xx = u * mouth.half_w
        out.append(_with_z(np.stack([xx, yy], 1), _z_head(xx, fw) + 0.02 + 0.07 * (1 - u ** 2)))

    pts = np.concatenate(out)
    assert pts.shape == (NUM_LANDMARKS, 3)
    return pts


def _arc(half_w: float, height: float, y0: float, psi: np.ndarray) -> np.ndarray:
    """Points of a dome over the head: psi = 0 at the top, +-pi/2 at y0 on the sides."""
    c = np.cos(psi)
    return np.stack([half_w * np.sin(psi), y0 - height * np.sign(c) * np.abs(c) ** 0.85], 1)


def _hair(idt: Identity) -> dict[str, np.ndarray]:
    """Hair outlines in the face frame (2-D): ``hair_back`` (behind the head) and ``hair_front``."""
    fw, vol, style = idt.face_w, idt.hair_volume, HAIR_STYLES[idt.hair_style]
    if style == "buzz":
        vol = 0.008
    if style == "afro":
        vol = vol + 0.06
    # the outer contour runs left to right over the top, the hairline back right to left
    psi = np.linspace(-np.pi / 2 - 0.15, np.pi / 2 + 0.15, 17)
    outer = _arc(fw * 1.04 + vol, idt.crown_h + 0.02 + vol, _JAW_TOP, psi)
    h = idt.hairline_h
    if style == "bangs":
        fy = -(0.268 + (h - 0.36) * 0.5)  # a straight fringe, still clear of fully raised brows
        fringe = np.stack([np.linspace(0.78, -0.78, 9) * fw, fy + 0.012 * (np.arange(9) % 2)], 1)
        hairline = np.concatenate([[[fw, 0.01], [0.96 * fw, -0.18], [0.86 * fw, fy - 0.01]], fringe,
                                   [[-0.86 * fw, fy - 0.01], [-0.96 * fw, -0.18], [-fw, 0.01]]])
    else:
        knots = np.array([[fw * 1.0, 0.01], [fw * 0.93, -0.19], [fw * 0.62, -h + 0.03], [fw * 0.1, -h],
                          [-fw * 0.3, -h + 0.005], [-fw * 0.62, -h + 0.03], [-fw * 0.93, -0.19], [-fw * 1.0, 0.01]])
        hairline = catmull_rom(knots, samples=3)
    front = np.concatenate([outer, hairline])

    back = np.zeros((0, 2))
    if style == "long":
        w = fw * 1.14 + vol
        top = _arc(w, idt.crown_h + 0.05 + vol, _JAW_TOP, np.linspace(-np.pi / 2, np.pi / 2, 13))
        bottom_y = idt.face_h + idt.hair_length
        sides = np.array([[w * 1.02, 0.25], [w * 1.08, bottom_y], [w * 0.6, bottom_y + 0.04], [0.0, bottom_y + 0.05],
                          [-w * 0.6, bottom_y + 0.04], [-w * 1.08, bottom_y], [-w * 1.02, 0.25]])
        back = np.concatenate([top, sides])
    elif style == "afro":
        back = _arc(fw * 1.35 + vol, idt.crown_h * 1.05 + vol, 0.05, np.linspace(-np.pi * 0.62, np.pi * 0.62, 21))
    return {"hair_back": back, "hair_front": front}


def _outlines(idt: Identity) -> dict[str, np.ndarray]:
    """Non-landmark outlines in the face frame, ``name -> [N, 3]``."""
    fw = idt.face_w
    psi = np.linspace(np.pi / 2 - 0.04, -np.pi / 2 + 0.04, 15)  # right to left over the top
    skull = _arc(fw, idt.crown_h + _JAW_TOP, _JAW_TOP, psi)
    skull[:, 0] *= 1 + 0.04 * np.abs(np.cos(psi))
    parts = {"head": skull}
    a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    for name, sgn in (("ear_right", -1.0), ("ear_left", 1.0)):
        parts[name] = np.stack([sgn * fw * 0.99 + 0.045 * np.cos(a), 0.1 + 0.095 * np.sin(a)], 1)
    fh = idt.face_h
    parts["neck"] = np.array([[-0.42 * fw, fh * 0.5], [0.42 * fw, fh * 0.5], [0.47 * fw, fh + 0.2],
                              [0.0, fh + 0.3], [-0.47 * fw, fh + 0.2]])
    parts["shoulders"] = np.array([[-0.45 * fw, fh + 0.12], [0.0, fh + 0.24], [0.45 * fw, fh + 0.12], [0.9, fh + 0.16],
                                   [1.5, fh + 0.4], [1.9, 3.0], [-1.9, 3.0], [-1.5, fh + 0.4], [-0.9, fh + 0.16]])
    parts.update(_hair(idt))
    return {k: _with_z(v, _z_head(v[:, 0], fw) - (0.24 if k.startswith("ear") else 0.0)) for k, v in parts.items()}


@dataclass(frozen=True)
class FaceGeometry:
    """A posed face in image pixels: the 68 landmarks plus the outlines the renderer needs."""

    landmarks: np.ndarray  # [68, 2] float32, image pixels, iBUG order
    parts: dict[str, np.ndarray]  # name -> [N, 2] float64 pixels: head, ears, neck, shoulders, hair, irises
    iris_radius: float  # pixels
    unit: float  # pixels per face unit
    roll: float  # radians
    size: int


def _project(p: np.ndarray, pose: Pose, size: int) -> np.ndarray:
    yaw, roll = math.radians(pose.yaw), math.radians(pose.roll)
    x = p[:, 0] * math.cos(yaw) + p[:, 2] * math.sin(yaw)
    y = p[:, 1]
    cr, sr = math.cos(roll), math.sin(roll)
    xr, yr = x * cr - y * sr, x * sr + y * cr
    return np.stack([(0.5 + pose.tx + pose.scale * xr) * size, (EYE_LINE_Y + pose.ty + pose.scale * yr) * size], 1)


def face_geometry(idt: Identity, ex: Expression, pose: Pose, size: int) -> FaceGeometry:
    """Pose the face and express it in pixels of a ``size`` x ``size`` image."""
    lm = local_landmarks(idt, ex)
    parts = _outlines(idt)
    iris = []
    for sgn in (-1.0, 1.0):
        cx = sgn * idt.eye_spacing + pose.gaze_x * 0.3 * idt.eye_w
        cy = 0.1 * idt.eye_open + pose.gaze_y * 0.25 * idt.eye_open
        iris.append([cx, cy])
    iris = np.array(iris)
    parts["irises"] = _with_z(iris, _z_head(iris[:, 0], idt.face_w) - 0.02)
    projected = {k: _project(v, pose, size) for k, v in parts.items()}
    unit = pose.scale * size
    return FaceGeometry(
        landmarks=_project(lm, pose, size).astype(np.float32),
        parts=projected,
        iris_radius=0.43 * idt.eye_w * unit * math.cos(math.radians(pose.yaw)) ** 0.5,
        unit=unit,
        roll=math.radians(pose.roll),
        size=size,
    )

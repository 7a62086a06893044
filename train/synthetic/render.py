"""Draw a synthetic face with PIL from its landmarks (supersampled, then LANCZOS-downsampled).

Every facial feature is drawn through the 68 landmarks of :class:`~.geometry.FaceGeometry`
(eyelids, brows, nose, lips, jaw line), so the landmarks returned with an image are the ones the
pixels show. Lighting is applied last as a multiplicative map over the person (a random
directional gradient times a fall-off towards the face's edge), then a little sensor noise.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .curves import catmull_rom, ellipse_points, flat, ribbon
from .expressions import Expression, ExpressionNoise, sample_expression
from .geometry import FaceGeometry, face_geometry, sample_identity, sample_pose
from .identity import HAIR_STYLES, Colour, Identity

__all__ = ["Scene", "render_face", "render_geometry", "sample_scene", "supersample_factor"]

_CANVAS = 256  # render on a canvas at least this large


def supersample_factor(size: int) -> int:
    """How much larger than the output the canvas is drawn (2 at 128 px, 4 at 64 px)."""
    return max(2, math.ceil(_CANVAS / size))


@dataclass(frozen=True)
class Scene:
    """Per-image choices that belong to neither the identity nor the expression."""

    background: int  # 0 = flat colour, 1 = linear gradient, 2 = smooth noise texture
    bg_a: Colour
    bg_b: Colour
    bg_angle: float  # radians, gradient direction
    light_angle: float  # radians, direction the light comes from (image plane)
    light_strength: float  # 0..~0.4: brightness change across one face unit
    ambient: float  # overall exposure
    noise_sigma: float  # sensor noise, in 0..255 units


def sample_scene(rng: np.random.Generator) -> Scene:
    """Background, light and noise; consumes a fixed number of draws."""
    u = rng.random(11)
    a = np.array([u[0], u[1], u[2]]) * 210 + 25
    b = np.clip(a + (np.array([u[3], u[4], u[5]]) - 0.5) * 160, 0, 255)
    return Scene(
        background=int(u[6] * 3) % 3,
        bg_a=tuple(int(v) for v in a), bg_b=tuple(int(v) for v in b),  # type: ignore[arg-type]
        bg_angle=float(u[7] * 2 * math.pi),
        light_angle=float(u[8] * 2 * math.pi),
        light_strength=float(0.1 + 0.3 * u[9]),
        ambient=float(0.85 + 0.3 * u[10]),
        noise_sigma=float(1.0 + 4.0 * u[10] * u[9]),
    )


def _mix(a: Colour, b: Colour | tuple[float, float, float], t: float) -> Colour:
    t = min(max(t, 0.0), 1.0)
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _scale(c: Colour, k: float) -> Colour:
    return tuple(int(min(255, max(0, round(v * k)))) for v in c)  # type: ignore[return-value]


@lru_cache(maxsize=8)
def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    return x, y


def _background(scene: Scene, s: int, texture: np.ndarray) -> Image.Image:
    """Flat, gradient or smooth-noise background, drawn small and enlarged (all three are smooth)."""
    if scene.background == 0:
        return Image.new("RGB", (s, s), scene.bg_a)
    a, b = np.asarray(scene.bg_a, np.float32), np.asarray(scene.bg_b, np.float32)
    if scene.background == 1:
        x, y = _grid(16)
        t = ((x - 8) * math.cos(scene.bg_angle) + (y - 8) * math.sin(scene.bg_angle)) / 16 + 0.5
        small = a + (b - a) * np.clip(t, 0.0, 1.0)[..., None]
    else:
        small = a + (texture - 0.5) * (b - a + 60)
    img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8))
    return img.resize((s, s), Image.Resampling.BICUBIC)


class _Painter:
    """Draws on the RGB canvas and, for the person's silhouette, on the lighting mask."""

    def __init__(self, canvas: Image.Image, factor: int):
        self.canvas = canvas
        self.draw = ImageDraw.Draw(canvas)
        self.mask = Image.new("L", canvas.size, 0)
        self.mdraw = ImageDraw.Draw(self.mask)
        self.f = factor

    def poly(self, pts: np.ndarray, colour: Colour, person: bool = False) -> None:
        xy = flat(pts * self.f)
        self.draw.polygon(xy, fill=colour)
        if person:
            self.mdraw.polygon(xy, fill=255)

    def line(self, pts: np.ndarray, colour: Colour, width: float) -> None:
        self.draw.line(flat(pts * self.f), fill=colour, width=max(1, int(round(width * self.f))), joint="curve")

    def clipped(self, clip: np.ndarray, paint: Callable[[ImageDraw.ImageDraw, np.ndarray], None]) -> None:
        """Paint inside the polygon ``clip`` only (eyeballs, mouth interior), via a small layer."""
        pts = clip * self.f
        x0, y0 = np.floor(pts.min(0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.canvas.width), min(y1, self.canvas.height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        layer = Image.new("RGB", (x1 - x0, y1 - y0))
        mask = Image.new("L", layer.size, 0)
        origin = np.array([x0, y0], dtype=np.float64)
        ImageDraw.Draw(mask).polygon(flat(pts - origin), fill=255)
        paint(ImageDraw.Draw(layer), origin)
        self.canvas.paste(layer, (int(x0), int(y0)), mask)


def render_geometry(geom: FaceGeometry, idt: Identity, ex: Expression, rng: np.random.Generator) -> np.ndarray:
    """Render a posed face; ``rng`` supplies the scene (background, light) and the sensor noise."""
    size = geom.size
    f = supersample_factor(size)
    s = size * f
    scene = sample_scene(rng)
    texture = rng.random((5, 5, 3)).astype(np.float32)
    lm = geom.landmarks.astype(np.float64)
    u = geom.unit  # output pixels per face unit
    right = lm[45] - lm[36]
    right = right / max(np.linalg.norm(right), 1e-9)
    up = np.array([right[1], -right[0]])
    skin = idt.skin

    p = _Painter(_background(scene, s, texture), f)
    parts = geom.parts
    smooth = lambda pts, n=4: catmull_rom(pts, n, closed=True)  # noqa: E731

    # -- behind the face: hair, clothes, neck, ears
    hair_colour = _mix(idt.hair, skin, 0.45) if HAIR_STYLES[idt.hair_style] == "buzz" else idt.hair
    if len(parts["hair_back"]):
        p.poly(smooth(parts["hair_back"], 3), _scale(idt.hair, 0.85), person=True)
    p.poly(parts["shoulders"], idt.clothes, person=True)
    p.poly(smooth(parts["neck"], 3), _scale(skin, 0.9), person=True)
    for name in ("ear_right", "ear_left"):
        ear = parts[name]
        p.poly(ear, _scale(skin, 0.95), person=True)
        c = ear.mean(0)
        p.line(c + (ear[[9, 11, 1, 3]] - c) * 0.55, _scale(skin, 0.75), 0.008 * u)

    # -- the face: jaw landmarks + skull
    outline = np.concatenate([lm[0:17], parts["head"]])
    p.poly(smooth(outline, 4), skin, person=True)
    p.line(catmull_rom(lm[2:15], 3), _scale(skin, 0.9), 0.01 * u)  # soft jaw line

    # cheeks (follow the lower lids and the lip corners, so they rise with a smile)
    for eye, corner in ((lm[36:42], lm[48]), (lm[42:48], lm[54])):
        c = 0.55 * eye[[4, 5]].mean(0) + 0.45 * corner
        c = c + (c - lm[30]) * 0.25
        r = (0.06 + 0.02 * ex.cheek_raise) * u
        p.poly(ellipse_points(c, right * r, up * r * 0.8, 16), _mix(skin, (225, 105, 100), 0.08 + 0.1 * ex.cheek_raise))

    # nasolabial folds: from beside the nose wings to beyond the lip corners
    fold = min(1.0, 0.15 + 0.9 * ex.lip_corner_up + 0.5 * ex.cheek_raise + 0.7 * ex.upper_lip_raise
               + 0.4 * ex.nose_wrinkle + 0.3 * ex.lip_stretch)
    if fold > 0.2:
        for wing, corner, sgn in ((lm[31], lm[48], -1.0), (lm[35], lm[54], 1.0)):
            a = wing + right * sgn * 0.025 * u - up * 0.01 * u
            b = corner + right * sgn * 0.03 * u - up * 0.01 * u
            m = 0.5 * (a + b) + right * sgn * 0.02 * u
            p.line(catmull_rom(np.array([a, m, b]), 4), _mix(skin, _scale(skin, 0.6), fold * 0.7), 0.008 * u)

    _eyes(p, lm, geom, idt, ex, right, up, u)
    _brows(p, lm, idt, ex, right, up, u)
    _nose(p, lm, idt, ex, right, up, u, scene)
    _mouth(p, lm, idt, ex, right, up, u)

    # -- in front: hair, glasses
    p.poly(smooth(parts["hair_front"], 3), hair_colour, person=True)
    if idt.glasses:
        _glasses(p, lm, idt, right, up, u)

    img = np.asarray(p.canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    mask = np.asarray(p.mask.reduce(f), dtype=np.float32) * (1.0 / 255.0)
    arr = img * _light(mask, lm, idt, scene, u)[..., None]
    arr += rng.normal(0.0, scene.noise_sigma, (size, size, 3)).astype(np.float32)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _eyes(p: _Painter, lm: np.ndarray, geom: FaceGeometry, idt: Identity, ex: Expression,
          right: np.ndarray, up: np.ndarray, u: float) -> None:
    skin = idt.skin
    for k, a in enumerate((36, 42)):
        pts = lm[a:a + 6]
        centre = 0.5 * (pts[0] + pts[3])
        width = np.linalg.norm(pts[3] - pts[0])
        # socket shadow, then the eyeball clipped by the lids
        p.poly(ellipse_points(centre - up * 0.012 * u, right * width * 0.68, up * width * 0.42, 16), _scale(skin, 0.93))
        shape = catmull_rom(pts, 5, closed=True)
        iris_c = geom.parts["irises"][k]
        r = geom.iris_radius

        def paint(d: ImageDraw.ImageDraw, origin: np.ndarray, iris_c=iris_c, r=r) -> None:
            d.rectangle((0, 0, 10_000, 10_000), fill=(236, 232, 226))
            c = iris_c * p.f - origin
            rr = r * p.f
            d.ellipse(flat(np.array([c - rr, c + rr])), fill=idt.iris, outline=_scale(idt.iris, 0.5),
                      width=max(1, int(rr * 0.18)))
            rp = rr * 0.45
            d.ellipse(flat(np.array([c - rp, c + rp])), fill=(14, 10, 10))
            h = c - rr * 0.35
            rh = max(rr * 0.16, 0.6)
            d.ellipse(flat(np.array([h - rh, h + rh])), fill=(250, 250, 250))

        p.clipped(shape, paint)
        upper = catmull_rom(pts[[0, 1, 2, 3]], 5)
        lower = catmull_rom(pts[[3, 4, 5, 0]], 5)
        p.line(upper, (32, 22, 20), 0.012 * u)  # lash line
        p.line(lower, _scale(skin, 0.7), 0.004 * u)
        crease = centre + (upper - centre) * 0.9 - up * idt.eye_open * u * 0.85
        p.line(crease[2:-2], _scale(skin, 0.78), 0.004 * u)
        bag = min(1.0, ex.cheek_raise + 0.5 * ex.lid_tighten)
        if bag > 0.3:
            arc = centre + (lower - centre) * 0.85 + up * -0.03 * u
            p.line(arc[3:-3], _mix(skin, _scale(skin, 0.7), bag), 0.005 * u)


def _brows(p: _Painter, lm: np.ndarray, idt: Identity, ex: Expression, right: np.ndarray, up: np.ndarray,
           u: float) -> None:
    skin = idt.skin
    for brow in (lm[21:16:-1], lm[22:27]):  # inner to outer
        line = catmull_rom(brow, 6)
        t = np.linspace(0.0, 1.0, len(line))
        width = idt.brow_thickness * u * (1.05 - 0.6 * t ** 1.5) * np.clip(t * 6 + 0.6, 0, 1) ** 0.5
        p.poly(ribbon(line, width), idt.brows)
    # forehead wrinkles when the brows go up, frown lines when they come down and together
    raise_ = 0.5 * (ex.inner_brow_raise + ex.outer_brow_raise) + 0.25 * ex.inner_brow_raise
    if raise_ > 0.35:
        colour = _mix(skin, _scale(skin, 0.7), (raise_ - 0.35) * 1.3)
        base = np.array([lm[18], lm[20], 0.5 * (lm[21] + lm[22]), lm[23], lm[25]])
        for j in range(3):
            p.line(catmull_rom(base + up * (0.055 + 0.035 * j) * u, 3), colour, 0.005 * u)
    if ex.brow_lower > 0.35:
        colour = _mix(skin, _scale(skin, 0.65), (ex.brow_lower - 0.35) * 1.5)
        for k in (0.36, 0.64):
            c = lm[21] + (lm[22] - lm[21]) * k
            p.line(np.array([c + up * 0.02 * u, c - up * 0.045 * u]), colour, 0.006 * u)


def _nose(p: _Painter, lm: np.ndarray, idt: Identity, ex: Expression, right: np.ndarray, up: np.ndarray,
          u: float, scene: Scene) -> None:
    skin = idt.skin
    side = -1.0 if math.cos(scene.light_angle) * right[0] + math.sin(scene.light_angle) * right[1] > 0 else 1.0
    p.line(np.array([lm[27], lm[29], lm[30]]) + right * side * 0.03 * u, _scale(skin, 0.88), 0.012 * u)
    for wing, inner, sgn in ((lm[31], lm[32], -1.0), (lm[35], lm[34], 1.0)):
        arc = np.array([wing - up * 0.04 * u + right * sgn * 0.004 * u, wing + right * sgn * 0.012 * u - up * 0.014 * u,
                        wing, inner])
        p.line(catmull_rom(arc, 4), _scale(skin, 0.7), 0.008 * u)
        c = (wing + 2 * inner) / 3 - up * 0.006 * u
        p.poly(ellipse_points(c, right * 0.016 * u, up * 0.007 * u, 10), _scale(skin, 0.35))
    p.line(lm[[32, 33, 34]], _scale(skin, 0.8), 0.005 * u)
    if ex.nose_wrinkle > 0.25:
        colour = _mix(skin, _scale(skin, 0.45), ex.nose_wrinkle)
        for k in (0.0, 0.3, 0.6):
            c = lm[28] + (lm[29] - lm[28]) * k
            p.line(catmull_rom(np.array([c - right * 0.035 * u, c + up * 0.006 * u, c + right * 0.035 * u]), 3),
                   colour, 0.008 * u)
        for corner, wing in ((lm[39], lm[31]), (lm[42], lm[35])):
            a = corner + (wing - corner) * 0.3
            b = corner + (wing - corner) * 0.7
            p.line(np.array([a, b]), colour, 0.008 * u)


def _mouth(p: _Painter, lm: np.ndarray, idt: Identity, ex: Expression, right: np.ndarray, up: np.ndarray,
           u: float) -> None:
    skin, lips = idt.skin, idt.lips
    outer = catmull_rom(lm[48:60], 5, closed=True)
    p.poly(outer, lips)
    upper = np.concatenate([catmull_rom(lm[48:55], 5), catmull_rom(lm[[54, 64, 63, 62, 61, 60, 48]], 5)])
    p.poly(upper, _scale(lips, 0.84))
    gap = float(np.linalg.norm(lm[66] - lm[62]))
    if gap > 0.01 * u:
        inner_upper = catmull_rom(lm[60:65], 5)
        inner_lower = catmull_rom(lm[[64, 65, 66, 67, 60]], 5)
        down = -up

        def paint(d: ImageDraw.ImageDraw, origin: np.ndarray) -> None:
            q = lambda pts: flat(pts * p.f - origin)  # noqa: E731
            d.rectangle((0, 0, 10_000, 10_000), fill=(52, 18, 22))
            if gap > 0.05 * u:
                tongue = 0.5 * (lm[66] + lm[62]) + down * gap * 0.35
                d.polygon(q(ellipse_points(tongue, right * 0.06 * u, up * gap * 0.3, 14)), fill=(150, 62, 68))
                d.polygon(q(np.concatenate([inner_lower, inner_lower[::-1] - down * 0.018 * u])), fill=(214, 208, 194))
            teeth = min(0.028 * u, 0.75 * gap)
            d.polygon(q(np.concatenate([inner_upper, inner_upper[::-1] + down * teeth])), fill=(236, 232, 218))

        p.clipped(catmull_rom(lm[60:68], 5, closed=True), paint)
    seam = catmull_rom(lm[[48, 60, 61, 62, 63, 64, 54]], 5)
    p.line(seam, _scale(lips, 0.45), (0.007 if gap <= 0.01 * u else 0.004) * u)
    c = 0.5 * (lm[57] + lm[66])
    p.poly(ellipse_points(c, right * 0.03 * u, up * 0.006 * u, 10), _mix(lips, (255, 230, 225), 0.18))
    if ex.lip_corner_up > 0.3:
        colour = _mix(skin, _scale(skin, 0.7), ex.lip_corner_up)
        for corner, sgn in ((lm[48], -1.0), (lm[54], 1.0)):
            a = corner + right * sgn * 0.012 * u
            p.line(np.array([a + up * 0.012 * u, a + right * sgn * 0.006 * u, a - up * 0.012 * u]), colour, 0.005 * u)
    if ex.chin_raise > 0.3:
        c = lm[57] - up * 0.05 * u
        colour = _mix(skin, _scale(skin, 0.75), ex.chin_raise)
        p.line(catmull_rom(np.array([c - right * 0.04 * u, c - up * 0.008 * u, c + right * 0.04 * u]), 3), colour,
               0.005 * u)


def _glasses(p: _Painter, lm: np.ndarray, idt: Identity, right: np.ndarray, up: np.ndarray, u: float) -> None:
    hw, hh = idt.eye_w * u * 1.55, idt.eye_w * u * 1.05
    frames = []
    for a, b in ((36, 39), (42, 45)):
        c = 0.5 * (lm[a] + lm[b]) + up * 0.006 * u
        ang = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        cs, sn = np.cos(ang), np.sin(ang)
        if not idt.glasses_round:
            cs, sn = np.sign(cs) * np.abs(cs) ** 0.45, np.sign(sn) * np.abs(sn) ** 0.45
        frame = c + cs[:, None] * right * hw + sn[:, None] * (-up) * hh
        frames.append(frame)
        p.line(np.concatenate([frame, frame[:2]]), idt.glasses_colour, 0.012 * u)
    p.line(np.array([frames[0][0] + up * 0.2 * hh, 0.5 * (frames[0][0] + frames[1][14]) + up * 0.45 * hh,
                     frames[1][14] + up * 0.2 * hh]), idt.glasses_colour, 0.012 * u)
    for frame, k, ear in ((frames[0], 14, lm[0]), (frames[1], 0, lm[16])):
        p.line(np.array([frame[k], ear + up * 0.06 * u]), idt.glasses_colour, 0.01 * u)


def _light(mask: np.ndarray, lm: np.ndarray, idt: Identity, scene: Scene, u: float) -> np.ndarray:
    """Multiplicative shading over the person's silhouette ``mask`` (output resolution, 0..1): a
    directional gradient times a fall-off towards the face's edge. Smooth, so computing it after
    the downsampling loses nothing."""
    x, y = _grid(mask.shape[0])
    centre = 0.5 * (lm[27] + lm[30])
    lx, ly = math.cos(scene.light_angle), math.sin(scene.light_angle)
    dx, dy = x - centre[0], y - centre[1]
    grad = 1.0 + (scene.light_strength / u) * (dx * lx + dy * ly)
    r2 = (dx * (1.0 / (idt.face_w * u))) ** 2 + (dy * (1.0 / (0.55 * u))) ** 2
    edge = np.minimum(np.maximum((np.sqrt(r2) - 0.55) * (1.0 / 0.6), 0.0), 1.0)
    shade = np.minimum(np.maximum(grad * (1.0 - 0.4 * edge * edge), 0.35), 1.4) * scene.ambient
    return 1.0 + mask * (shade - 1.0)


def render_face(rng: np.random.Generator, label: int, size: int = 128,
                noise: ExpressionNoise = ExpressionNoise()) -> tuple[np.ndarray, np.ndarray]:
    """A random face showing expression ``label`` (index into ``LABELS``).

    Returns ``(image, landmarks)``: ``uint8 [size, size, 3]`` RGB and ``float32 [68, 2]`` image-pixel
    coordinates in iBUG order. Deterministic for a given ``rng`` state; the identity, pose and
    scene draws do not depend on ``label``, so the same seed with another label shows the same
    person in the same pose making another expression.
    """
    idt = sample_identity(rng)
    pose = sample_pose(rng)
    ex = sample_expression(rng, label, noise)
    geom = face_geometry(idt, ex, pose, size)
    return render_geometry(geom, idt, ex, rng), geom.landmarks

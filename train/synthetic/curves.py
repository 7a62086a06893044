"""Small numpy helpers for smooth outlines: Catmull-Rom splines, polyline normals and offsets."""
from __future__ import annotations

import numpy as np


def catmull_rom(points: np.ndarray, samples: int = 5, closed: bool = False) -> np.ndarray:
    """A uniform Catmull-Rom spline through ``points`` ``[N, 2]``: ``samples`` points per segment.

    The curve passes through every input point, so a shape drawn from the spline stays on its
    landmarks. Open curves end exactly on the last point.
    """
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    if n < 3:
        return p.copy()
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
        n_seg = n
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
        n_seg = n - 1
    p0, p1, p2, p3 = (ext[i:i + n_seg][:, None, :] for i in range(4))
    t = np.linspace(0.0, 1.0, samples, endpoint=False)[None, :, None]
    t2, t3 = t * t, t * t * t
    seg = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t3)
    out = seg.reshape(-1, 2)
    if not closed:
        out = np.concatenate([out, p[-1:]])
    return out


def normals(poly: np.ndarray) -> np.ndarray:
    """Unit normals ``[N, 2]`` of an open polyline (the tangent rotated by +90 degrees, image coords)."""
    tangent = np.gradient(poly, axis=0)
    length = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = tangent / np.maximum(length, 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def ribbon(poly: np.ndarray, widths: np.ndarray | float) -> np.ndarray:
    """The closed outline of a strip of (varying) ``widths`` centred on an open polyline."""
    w = np.broadcast_to(np.asarray(widths, dtype=np.float64), (len(poly),))[:, None] * 0.5
    nrm = normals(poly)
    return np.concatenate([poly + nrm * w, (poly - nrm * w)[::-1]])


def ellipse_points(center: np.ndarray, axis_u: np.ndarray, axis_v: np.ndarray, n: int = 24) -> np.ndarray:
    """``n`` points of the (possibly rotated) ellipse ``center + cos(a) * axis_u + sin(a) * axis_v``."""
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
    c, du, dv = (np.asarray(v, dtype=np.float64)[None, :] for v in (center, axis_u, axis_v))
    return c + np.cos(a) * du + np.sin(a) * dv


def flat(points: np.ndarray) -> list[float]:
    """``[N, 2]`` -> ``[x0, y0, x1, y1, ...]`` as PIL's drawing functions take it."""
    return np.asarray(points, dtype=np.float64).ravel().tolist()

"""Similarity alignment of a face to the model's crop: fit rotation + uniform scale + translation
from the stable landmarks (eyes, nose) to the canonical face, warp, and map the 68 points."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .landmarks import ALIGNMENT_POINTS, canonical_landmarks


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping ``src [N,2]`` onto ``dst [N,2]``: a 2x3 matrix."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var = (s * s).sum() / len(src)
    scale = (sig * np.diag(e)).sum() / var if var > 0 else 1.0
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def apply_transform(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def template(crop_size: int) -> np.ndarray:
    """The canonical 68 points in crop pixels."""
    return canonical_landmarks().numpy().astype(np.float64) * crop_size


def align_face(rgb: np.ndarray, landmarks: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp ``rgb`` so the face matches the canonical face in a ``crop_size`` square.

    Returns ``(crop uint8 [S,S,3], landmarks [68,2] in crop pixels, M 2x3 image->crop)``. Pixel
    coordinates are continuous with pixel ``i`` covering ``[i, i+1)``.
    """
    idx = list(ALIGNMENT_POINTS)
    m = similarity_transform(landmarks[idx], template(crop_size)[idx])
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # crop -> image, what PIL's AFFINE wants
    crop = Image.fromarray(rgb).transform((crop_size, crop_size), Image.AFFINE, data=tuple(inv.ravel()),
                                          resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(crop), apply_transform(m, landmarks).astype(np.float32), m

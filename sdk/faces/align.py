"""Similarity alignment of a face to the model's crop: fit rotation + uniform scale + translation
from the stable landmarks (eyes, nose) to the canonical face, warp, and map the 68 points."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import LandmarksError
from .landmarks import ALIGNMENT_POINTS, NUM_LANDMARKS, canonical_landmarks


def check_landmarks(landmarks, what: str = "landmarks") -> np.ndarray:
    """``landmarks`` as float64 ``[68, 2]``, or :class:`LandmarksError` (one line) when they cannot place a face:
    wrong shape, any NaN/inf (a face cached without landmarks is stored as NaN points), or no spread."""
    try:
        lm = np.asarray(landmarks, np.float64)
    except (TypeError, ValueError):
        raise LandmarksError(f"{what}: not a numeric [68, 2] array") from None
    if lm.size != NUM_LANDMARKS * 2:
        raise LandmarksError(f"{what}: expected [{NUM_LANDMARKS}, 2] points, got shape {tuple(lm.shape)}")
    lm = lm.reshape(NUM_LANDMARKS, 2)
    bad = int((~np.isfinite(lm)).any(axis=1).sum())
    if bad:
        raise LandmarksError(f"{what}: {bad} of {NUM_LANDMARKS} points are NaN/inf (no face was found for this "
                             "image); detect the face again or score it as a miss")
    if not (np.ptp(lm, axis=0).max() > 1e-6):
        raise LandmarksError(f"{what}: all {NUM_LANDMARKS} points at one spot: they cannot place a face")
    return lm


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) mapping ``src [N,2]`` onto ``dst [N,2]``: a 2x3 matrix.
    Non-finite points raise :class:`LandmarksError` (NumPy's SVD would fail with "SVD did not converge")."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise LandmarksError("similarity_transform: NaN/inf points (a face without landmarks)")
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
    coordinates are continuous with pixel ``i`` covering ``[i, i+1)``. Landmarks that cannot place a face
    (NaN/inf, wrong shape, all at one point) raise :class:`udc.sdk.errors.LandmarksError`.
    """
    landmarks = check_landmarks(landmarks)
    idx = list(ALIGNMENT_POINTS)
    m = similarity_transform(landmarks[idx], template(crop_size)[idx])
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # crop -> image, what PIL's AFFINE wants
    crop = Image.fromarray(rgb).transform((crop_size, crop_size), Image.AFFINE, data=tuple(inv.ravel()),
                                          resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    return np.asarray(crop), apply_transform(m, landmarks).astype(np.float32), m

"""The 68-point iBUG landmark layout and its in-graph rasterisation to facial-region heatmaps.

Landmarks enter every model as coordinates ``[B, 68, 2]`` (x, y normalised to the face crop,
0..1, origin top-left), never as images: the rasteriser below is part of the exported graph.
"""
from __future__ import annotations

import math

import torch
from torch import nn

NUM_LANDMARKS = 68

#: Facial regions of the 68-point iBUG layout: name -> (first index, last index + 1).
REGIONS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17),
    "right_brow": (17, 22),
    "left_brow": (22, 27),
    "nose_bridge": (27, 31),
    "nose_lower": (31, 36),
    "right_eye": (36, 42),
    "left_eye": (42, 48),
    "outer_lip": (48, 60),
    "inner_lip": (60, 68),
}


def region_membership(regions: dict[str, tuple[int, int]] = REGIONS) -> torch.Tensor:
    """``[R, 68]`` 0/1 matrix: row r marks the points of region r."""
    m = torch.zeros(len(regions), NUM_LANDMARKS)
    for r, (a, b) in enumerate(regions.values()):
        m[r, a:b] = 1.0
    return m


def _ellipse(cx: float, cy: float, rx: float, ry: float, angles: list[float]) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def canonical_landmarks() -> torch.Tensor:
    """A frontal, neutral 68-point face in crop coordinates ``[68, 2]`` (x right, y down).

    Drawn from simple geometry (ellipses and lines), not fitted to a dataset: it is the neutral
    reference used by the demo and as the alignment target until a measured mean shape replaces it.
    """
    pts: list[tuple[float, float]] = []
    pts += _ellipse(0.5, 0.40, 0.38, 0.50, [math.pi - k * math.pi / 16 for k in range(17)])  # jaw 0-16
    for x0 in (0.20, 0.56):  # brows 17-21, 22-26
        pts += [(x0 + 0.06 * k, 0.30 - 0.035 * math.sin(math.pi * k / 4)) for k in range(5)]
    pts += [(0.5, 0.38 + 0.06 * k) for k in range(4)]  # nose bridge 27-30
    pts += [(0.42 + 0.04 * k, 0.60 + 0.015 * math.sin(math.pi * k / 4)) for k in range(5)]  # nose 31-35
    eye = [math.pi, 1.25 * math.pi, 1.75 * math.pi, 0.0, 0.25 * math.pi, 0.75 * math.pi]
    pts += _ellipse(0.33, 0.40, 0.07, 0.025, eye)  # right eye 36-41 (image left)
    pts += _ellipse(0.67, 0.40, 0.07, 0.025, eye)  # left eye 42-47
    outer = [math.pi + k * math.pi / 6 for k in range(7)] + [k * math.pi / 6 for k in range(1, 6)]
    pts += _ellipse(0.5, 0.75, 0.16, 0.06, outer)  # outer lip 48-59
    inner = [math.pi + k * math.pi / 4 for k in range(5)] + [k * math.pi / 4 for k in range(1, 4)]
    pts += _ellipse(0.5, 0.75, 0.11, 0.02, inner)  # inner lip 60-67
    out = torch.tensor(pts, dtype=torch.float32)
    assert out.shape == (NUM_LANDMARKS, 2)
    return out


class LandmarkHeatmaps(nn.Module):
    """Gaussian splats of the 68 points, summed per facial region: ``[B,68,2] -> [B,R,S,S]``.

    Export-clean: broadcasting, ``exp``, one matmul with a constant membership matrix and a clamp;
    every shape is fixed by ``size``.
    """

    def __init__(self, size: int, sigma: float, regions: dict[str, tuple[int, int]] = REGIONS):
        super().__init__()
        self.size = size
        self.num_regions = len(regions)
        centers = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        gy, gx = torch.meshgrid(centers, centers, indexing="ij")
        self.register_buffer("gx", gx.reshape(1, 1, size * size), persistent=False)
        self.register_buffer("gy", gy.reshape(1, 1, size * size), persistent=False)
        self.register_buffer("membership", region_membership(regions), persistent=False)
        self.inv_two_sigma2 = 1.0 / (2.0 * sigma * sigma)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        # landmarks: [B, 68, 2] in crop units
        px = landmarks[:, :, 0:1]  # [B, 68, 1]
        py = landmarks[:, :, 1:2]
        d2 = (self.gx - px) ** 2 + (self.gy - py) ** 2  # [B, 68, S*S]
        splats = torch.exp(d2 * -self.inv_two_sigma2)
        heat = torch.matmul(self.membership, splats).clamp(max=1.0)  # [B, R, S*S]
        return heat.reshape(landmarks.shape[0], self.num_regions, self.size, self.size)

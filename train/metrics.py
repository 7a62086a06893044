"""Classification metrics: accuracy (WAR), UAR (mean per-class recall), per-class table, confusion matrix."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` counts samples of true class t predicted as p."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


@dataclass
class Metrics:
    """``confusion`` counts the scored faces; ``missed`` [K] the faces of each true class that could not be scored
    (no face/landmarks found, unreadable): they count as wrong, as the standard protocols (e.g. FER2013's 3,589
    PrivateTest images) score every test image. ``n`` is scored + missed."""

    confusion: np.ndarray
    labels: tuple[str, ...]
    predictions: np.ndarray | None = None  # per-sample predicted class, when the caller kept them
    missed: np.ndarray | None = None  # [K] unscored faces per true class, counted wrong

    @property
    def _missed(self) -> np.ndarray:
        return np.zeros(len(self.confusion), np.int64) if self.missed is None else np.asarray(self.missed, np.int64)

    @property
    def n_scored(self) -> int:
        return int(self.confusion.sum())

    @property
    def n_missed(self) -> int:
        return int(self._missed.sum())

    @property
    def n(self) -> int:
        return self.n_scored + self.n_missed

    @property
    def accuracy(self) -> float:  # = WAR, weighted average recall; unscored faces count as wrong
        return float(np.trace(self.confusion) / max(1, self.n))

    @property
    def war(self) -> float:
        """Weighted average recall, the video-FER name of accuracy (seed 002 reports UAR and WAR)."""
        return self.accuracy

    @property
    def recall(self) -> np.ndarray:
        support = self.confusion.sum(1) + self._missed
        return np.divide(np.diag(self.confusion), support, out=np.full(len(support), np.nan), where=support > 0)

    @property
    def precision(self) -> np.ndarray:
        predicted = self.confusion.sum(0)
        return np.divide(np.diag(self.confusion), predicted, out=np.full(len(predicted), np.nan), where=predicted > 0)

    @property
    def uar(self) -> float:
        """Unweighted average recall over the classes present."""
        r = self.recall
        return float(np.nanmean(r)) if np.isfinite(r).any() else 0.0

    def per_class_rows(self) -> list[list]:
        support = self.confusion.sum(1) + self._missed
        return [[name, int(support[i]), f"{100 * self.recall[i]:.1f}" if support[i] else "-",
                 f"{100 * self.precision[i]:.1f}" if np.isfinite(self.precision[i]) else "-"]
                for i, name in enumerate(self.labels)]

    def to_dict(self) -> dict:
        return {"n": self.n, "n_scored": self.n_scored, "n_missed_counted_wrong": self.n_missed,
                "missed": self._missed.tolist(), "accuracy": self.accuracy, "uar": self.uar, "labels": list(self.labels),
                "confusion": self.confusion.tolist(),
                "recall": [None if not np.isfinite(r) else float(r) for r in self.recall]}


def save_confusion_png(m: Metrics, path, title: str = "") -> None:
    """A row-normalised confusion matrix as a PNG (PIL only: no plotting dependency)."""
    from PIL import Image, ImageDraw

    k, cell, left, top = len(m.labels), 56, 90, 40
    img = Image.new("RGB", (left + k * cell + 10, top + k * cell + 70), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title or f"confusion (n={m.n}, acc {100 * m.accuracy:.1f}%, UAR {100 * m.uar:.1f}%)", fill="black")
    rows = m.confusion / np.maximum(1, m.confusion.sum(1, keepdims=True) + m._missed[:, None])
    for t in range(k):
        d.text((5, top + t * cell + cell // 2 - 5), m.labels[t][:11], fill="black")
        d.text((left + t * cell + 4, top + k * cell + 8 + 12 * (t % 2)), m.labels[t][:8], fill="black")
        for p in range(k):
            v = rows[t, p]
            shade = int(255 * (1 - v))
            x0, y0 = left + p * cell, top + t * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline="gray")
            d.text((x0 + 6, y0 + cell // 2 - 5), f"{m.confusion[t, p]}", fill="black" if v < 0.6 else "white")
    note = f"; {m.n_missed} faces not scored (no face found) count as wrong in each row" if m.n_missed else ""
    d.text((left, top + k * cell + 40), "rows: true label, columns: predicted" + note, fill="black")
    img.save(path)

"""Parity of an exported program against the PyTorch reference: pure functions over arrays.

    m = compare(reference, exported, logits=True)   # {"max_abs": ..., "cosine": ..., "top1_agreement": ...}
    ok, why = check(m, "int8", logits=True)         # thresholds of the quant mode

Inputs are ``[N, ...]`` batches (torch tensors or numpy arrays): one row per sample. ``cosine`` is
the mean over samples of the per-sample cosine similarity; ``psnr`` uses the reference's peak
absolute value as the signal peak. Top-1 agreement only means something when the reference's
own decisions do: :func:`top1_report` adds how decisive they are (margins, how many classes the
reference predicts, the share of near-ties) and whether every disagreement sits where the
reference itself was within the exported program's typical error (a "margin-explained" flip;
``top1_agreement_margin_aware`` counts only the other flips). Pass/fail (:func:`check`) uses the
plain top-1 agreement unless a caller asks for the margin-aware one explicitly.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Pass/fail thresholds per quant mode. ``max_abs`` is relative to ``max(1, max|reference|)``;
#: ``top1`` applies to logits only. Never loosened by a caller: the bundle records which applied.
THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"max_abs": 1e-4, "cosine": 0.99999, "top1": 1.0},
    "fp16": {"cosine": 0.999, "top1": 0.99},
    "int8": {"cosine": 0.99, "top1": 0.97},
    "int8-weight": {"cosine": 0.995, "top1": 0.98},
    "int4-palettize": {"cosine": 0.98, "top1": 0.95},
}


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _rows(x: Any) -> np.ndarray:
    a = _np(x)
    return a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)


def max_abs(ref: Any, out: Any) -> float:
    return float(np.max(np.abs(_np(ref) - _np(out)))) if _np(ref).size else 0.0


def mean_abs(ref: Any, out: Any) -> float:
    return float(np.mean(np.abs(_np(ref) - _np(out)))) if _np(ref).size else 0.0


def cosine(ref: Any, out: Any, eps: float = 1e-12) -> float:
    """Mean over samples (rows) of cos(ref_i, out_i); two zero rows count as 1."""
    a, b = _rows(ref), _rows(out)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    cos = np.where((na < eps) & (nb < eps), 1.0, dot / np.maximum(na * nb, eps))
    return float(np.mean(cos))


def psnr(ref: Any, out: Any) -> float:
    """``20 log10(peak / rmse)`` with ``peak = max|ref|``; ``inf`` when identical."""
    a, b = _np(ref), _np(out)
    mse = float(np.mean((a - b) ** 2))
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if mse == 0.0:
        return math.inf
    return 20.0 * math.log10(max(peak, 1e-12) / math.sqrt(mse))


def top1_agreement(ref: Any, out: Any) -> float:
    """Fraction of samples whose arg-max class is the same."""
    a, b = _rows(ref), _rows(out)
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def top1_report(ref: Any, out: Any) -> dict[str, Any]:
    """Top-1 agreement with what it rests on: the reference's margins and the flips' margins."""
    a, b = _rows(ref), _rows(out)
    ra, rb = a.argmax(1), b.argmax(1)
    top2 = np.sort(a, axis=1)[:, -2:] if a.shape[1] > 1 else np.concatenate([a, a], 1)
    margin = top2[:, 1] - top2[:, 0]
    err = np.max(np.abs(a - b), axis=1)
    flips = ra != rb
    counts = np.bincount(ra, minlength=a.shape[1])
    # a flip is margin-explained when the reference's own top-2 gap is within 2x the program's typical
    # error (95th percentile over samples of the per-sample max|d|): a near-tie, not a broken program
    band = 2.0 * float(np.percentile(err, 95)) if len(err) else 0.0
    unexplained = int(np.sum(flips & (margin > band)))
    return {
        "top1_agreement": float(np.mean(~flips)),
        "flips": int(flips.sum()),
        "unexplained_flips": unexplained,
        "top1_agreement_margin_aware": 1.0 - unexplained / max(1, len(ra)),
        "near_tie_share": float(np.mean(margin <= band)) if len(margin) else 0.0,
        "reference_classes": int(np.count_nonzero(counts)),
        "reference_majority_share": float(counts.max() / max(1, len(ra))),
        "reference_margin_median": float(np.median(margin)) if len(margin) else 0.0,
    }


def compare(ref: Any, out: Any, logits: bool = False) -> dict[str, Any]:
    """Every metric of one output: ``max_abs``, ``mean_abs``, ``cosine``, ``psnr``, ``ref_abs_max``,
    ``n`` and, for logits, :func:`top1_report`."""
    a, b = _np(ref), _np(out)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: reference {a.shape} vs exported {b.shape}")
    m: dict[str, Any] = {
        "n": int(a.shape[0]) if a.ndim else 1,
        "max_abs": max_abs(a, b),
        "mean_abs": mean_abs(a, b),
        "cosine": cosine(a, b),
        "psnr": psnr(a, b),
        "ref_abs_max": float(np.max(np.abs(a))) if a.size else 0.0,
    }
    if logits:
        m.update(top1_report(a, b))
    return m


def thresholds_for(quant: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pass/fail thresholds of a bundle: those its manifest stores (``parity.thresholds``, written by
    udc-export for its quant mode), else ``THRESHOLDS[quant]``. Keys: ``mode``, ``cosine``, ``top1``
    and optionally ``max_abs``."""
    stored = (manifest or {}).get("parity", {}).get("thresholds") or {}
    if "cosine" in stored and "top1" in stored:
        return {k: v for k, v in stored.items() if k in ("mode", "max_abs", "cosine", "top1")}
    if quant not in THRESHOLDS:
        raise ValueError(f"no parity thresholds for quant mode {quant!r}; known: {', '.join(THRESHOLDS)}")
    return {"mode": quant, **THRESHOLDS[quant]}


def check(metrics: dict[str, Any], quant: str | dict[str, Any], logits: bool = False,
          margin_aware: bool = False) -> tuple[bool, list[str]]:
    """``(passed, failures)`` of ``metrics`` (from :func:`compare`) against ``THRESHOLDS[quant]`` (or
    against ``quant`` itself when it is a thresholds dict, e.g. from :func:`thresholds_for`).

    ``margin_aware`` checks ``top1_agreement_margin_aware`` (flips at near-ties excused) instead of
    the plain top-1 agreement; every other threshold is the same. Callers that use it say so.
    """
    if isinstance(quant, dict):
        t, fails = quant, []
    elif quant not in THRESHOLDS:
        raise ValueError(f"no parity thresholds for quant mode {quant!r}; known: {', '.join(THRESHOLDS)}")
    else:
        t, fails = THRESHOLDS[quant], []
    if "max_abs" in t:
        bound = t["max_abs"] * max(1.0, metrics.get("ref_abs_max", 0.0))
        if metrics["max_abs"] > bound:
            fails.append(f"max|d| {metrics['max_abs']:.3g} > {bound:.3g}")
    if metrics["cosine"] < t["cosine"]:
        fails.append(f"cosine {metrics['cosine']:.6f} < {t['cosine']}")
    key = "top1_agreement_margin_aware" if margin_aware else "top1_agreement"
    if logits and key in metrics and metrics[key] < t["top1"]:
        fails.append(f"{'margin-aware ' if margin_aware else ''}top-1 agreement {metrics[key]:.4f} < {t['top1']}")
    return not fails, fails


def rounded(metrics: dict[str, Any], digits: int = 6) -> dict[str, Any]:
    """Metrics with floats to ``digits`` significant digits (what a manifest stores); inf -> None."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, float):
            out[k] = None if not math.isfinite(v) else float(f"{v:.{digits}g}")
        else:
            out[k] = v
    return out


def summary(metrics: dict[str, Any]) -> str:
    """One short cell for a table: ``cos 0.99991 top1 99.6% max|d| 3.1e-07``."""
    parts = [f"cos {metrics['cosine']:.5f}"]
    if metrics.get("top1_agreement") is not None:
        parts.append(f"top1 {100 * metrics['top1_agreement']:.1f}%")
    parts.append(f"max|d| {metrics['max_abs']:.2g}")
    return " ".join(parts)

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
from typing import Any, Callable

import numpy as np

from ..errors import UdcError

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
    """``20 log10(peak / rmse)`` with ``peak = max|ref|``; ``inf`` when identical, ``nan`` when either side holds
    a non-finite value (never an exception: an fp16 overflow is a result to report, not a crash)."""
    a, b = _np(ref), _np(out)
    if not a.size:
        return math.inf
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.nan
    with np.errstate(over="ignore"):
        mse = float(np.mean((a - b) ** 2))
    peak = float(np.max(np.abs(a)))
    if mse == 0.0:
        return math.inf
    if not math.isfinite(mse):  # finite inputs whose squared difference overflows float64
        return -math.inf
    return 20.0 * math.log10(max(peak, 1e-12) / math.sqrt(mse))


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(x), axis=1)


def top1_agreement(ref: Any, out: Any) -> float:
    """Fraction of samples whose arg-max class is the same; a row with a non-finite value on either side
    disagrees (``argmax`` of a NaN row means nothing)."""
    a, b = _rows(ref), _rows(out)
    same = (a.argmax(1) == b.argmax(1)) & _finite_rows(a) & _finite_rows(b)
    return float(np.mean(same)) if len(same) else 0.0


def top1_report(ref: Any, out: Any) -> dict[str, Any]:
    """Top-1 agreement with what it rests on: the reference's margins and the flips' margins. A row with a
    non-finite value (either side) is a flip that no margin explains."""
    a, b = _rows(ref), _rows(out)
    bad = ~(_finite_rows(a) & _finite_rows(b))
    ra, rb = a.argmax(1), b.argmax(1)
    top2 = np.sort(a, axis=1)[:, -2:] if a.shape[1] > 1 else np.concatenate([a, a], 1)
    margin = top2[:, 1] - top2[:, 0]
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.max(np.abs(a - b), axis=1)
    flips = (ra != rb) | bad
    counts = np.bincount(ra, minlength=a.shape[1])
    # a flip is margin-explained when the reference's own top-2 gap is within 2x the program's typical
    # error (95th percentile over the finite samples of the per-sample max|d|): a near-tie, not a broken program
    ok_err = err[~bad]
    band = 2.0 * float(np.percentile(ok_err, 95)) if len(ok_err) else 0.0
    unexplained = int(np.sum(flips & ((margin > band) | bad)))
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
    ``n``, ``nonfinite`` / ``ref_nonfinite`` (NaN and inf values in the exported / reference output; any
    fails :func:`check`) and, for logits, :func:`top1_report`."""
    a, b = _np(ref), _np(out)
    if a.shape != b.shape:
        raise ParityInputError(f"shape mismatch: reference {a.shape} vs exported {b.shape}")
    if a.size == 0:  # nothing compared is not a pass (and numpy's max of nothing is a bare ValueError)
        raise ParityInputError(f"nothing to compare: empty outputs (shape {a.shape})")
    with np.errstate(invalid="ignore", over="ignore"):
        m: dict[str, Any] = {
            "n": int(a.shape[0]) if a.ndim else 1,
            "nonfinite": int(b.size - np.count_nonzero(np.isfinite(b))),
            "ref_nonfinite": int(a.size - np.count_nonzero(np.isfinite(a))),
            "max_abs": max_abs(a, b),
            "mean_abs": mean_abs(a, b),
            "cosine": cosine(a, b),
            "psnr": psnr(a, b),
            "ref_abs_max": float(np.max(np.abs(a))) if a.size else 0.0,
        }
    if logits:
        m.update(top1_report(a, b))
    return m


class ParityInputError(UdcError, ValueError):
    """Outputs that cannot be compared: different shapes, or none at all."""


class ParityThresholdError(UdcError, ValueError):
    """A bundle whose stored parity thresholds contradict its quant mode (or an unknown mode)."""


#: Fewest faces a parity run needs before it may say PASS (a failure is conclusive on any number).
MIN_FACES = 32
#: Keys of a thresholds dict; ``cosine`` and ``top1`` are required, ``max_abs`` optional.
THRESHOLD_KEYS = ("max_abs", "cosine", "top1")


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def thresholds_for(quant: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The pass/fail thresholds of a bundle: the stricter, key by key, of ``THRESHOLDS[quant]`` and what its
    manifest stores (``parity.thresholds``, written by udc-export). A bundle cannot loosen its own check:
    a stored ``cosine: -1, top1: 0`` gives the mode's defaults. A stored ``mode`` other than ``quant`` is
    refused (:class:`ParityThresholdError`). Keys: ``mode``, ``cosine``, ``top1`` and optionally ``max_abs``."""
    if quant not in THRESHOLDS:
        raise ParityThresholdError(f"no parity thresholds for quant mode {quant!r}; known: {', '.join(THRESHOLDS)}")
    stored = ((manifest or {}).get("parity") or {}).get("thresholds") or {}
    if not isinstance(stored, dict):
        stored = {}
    mode = stored.get("mode")
    if mode is not None and mode != quant:
        raise ParityThresholdError(f"the manifest's parity thresholds are for mode {mode!r} but the bundle's quant is "
                                   f"{quant!r}: the manifest is inconsistent, re-export the bundle")
    out: dict[str, Any] = {"mode": quant, **THRESHOLDS[quant]}
    for k in ("cosine", "top1"):
        v = _num(stored.get(k))
        if v is not None and v > out[k]:
            out[k] = v
    v = _num(stored.get("max_abs"))
    if v is not None and v >= 0 and ("max_abs" not in out or v < out["max_abs"]):
        out["max_abs"] = v
    return out


def _fails(value: Any, ok: Callable[[float], bool]) -> bool:
    """True unless ``value`` is a finite number for which ``ok`` holds (None, NaN, inf, missing all fail)."""
    v = _num(value)
    return v is None or not ok(v)


def check(metrics: dict[str, Any], quant: str | dict[str, Any], logits: bool = False,
          margin_aware: bool = False) -> tuple[bool, list[str]]:
    """``(passed, failures)`` of ``metrics`` (from :func:`compare`, raw or :func:`rounded`) against
    ``THRESHOLDS[quant]`` (or against ``quant`` itself when it is a thresholds dict, e.g. from
    :func:`thresholds_for`; it must hold ``cosine`` and ``top1``).

    Fails closed: a non-finite value in either output, and a metric that is missing, None or NaN, fail.
    ``margin_aware`` checks ``top1_agreement_margin_aware`` (flips at near-ties excused) instead of the
    plain top-1 agreement; every other threshold is the same. Callers that use it say so.
    """
    if isinstance(quant, dict):
        t = quant
        missing = [k for k in ("cosine", "top1") if _num(t.get(k)) is None]
        if missing:
            raise ParityThresholdError(f"parity thresholds {t!r} lack a number for {', '.join(missing)}")
    elif quant not in THRESHOLDS:
        raise ParityThresholdError(f"no parity thresholds for quant mode {quant!r}; known: {', '.join(THRESHOLDS)}")
    else:
        t = THRESHOLDS[quant]
    fails: list[str] = []
    for key, what in (("nonfinite", "exported"), ("ref_nonfinite", "reference")):
        if _fails(metrics.get(key, 0), lambda v: v == 0):
            fails.append(f"{metrics.get(key)} non-finite value(s) (NaN/inf) in the {what} output")
    if "max_abs" in t:
        ref_max = _num(metrics.get("ref_abs_max"))
        bound = float(t["max_abs"]) * max(1.0, ref_max if ref_max is not None else math.inf)
        if _fails(metrics.get("max_abs"), lambda v: v <= bound):
            fails.append(f"max|d| {_show(metrics.get('max_abs'), '.3g')} > {bound:.3g}")
    if _fails(metrics.get("cosine"), lambda v: v >= float(t["cosine"])):
        fails.append(f"cosine {_show(metrics.get('cosine'), '.6f')} < {t['cosine']}")
    key = "top1_agreement_margin_aware" if margin_aware else "top1_agreement"
    if logits and _fails(metrics.get(key), lambda v: v >= float(t["top1"])):
        fails.append(f"{'margin-aware ' if margin_aware else ''}top-1 agreement {_show(metrics.get(key), '.4f')} "
                     f"< {t['top1']}")
    return not fails, fails


def _show(v: Any, spec: str) -> str:
    return "missing" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def rounded(metrics: dict[str, Any], digits: int = 6) -> dict[str, Any]:
    """Metrics with floats to ``digits`` significant digits (what a manifest stores); inf and NaN -> None
    (JSON has neither; :func:`check` fails a None metric, and ``nonfinite`` keeps the count)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, (float, np.floating)):
            v = float(v)
            out[k] = None if not math.isfinite(v) else float(f"{v:.{digits}g}")
        elif isinstance(v, np.integer):
            out[k] = int(v)
        else:
            out[k] = v
    return out


def summary(metrics: dict[str, Any]) -> str:
    """One short cell for a table: ``cos 0.99991 top1 99.6% max|d| 3.1e-07`` (``nan`` for a missing metric,
    ``N non-finite`` when the output held NaN/inf)."""
    def f(v: Any, spec: str) -> str:
        return format(v, spec) if _num(v) is not None else "nan"

    parts = [f"cos {f(metrics.get('cosine'), '.5f')}"]
    if "top1_agreement" in metrics:
        t = metrics["top1_agreement"]
        parts.append(f"top1 {f(100 * t, '.1f') if _num(t) is not None else 'nan'}%")
    parts.append(f"max|d| {f(metrics.get('max_abs'), '.2g')}")
    if metrics.get("nonfinite"):
        parts.append(f"{metrics['nonfinite']} non-finite")
    return " ".join(parts)

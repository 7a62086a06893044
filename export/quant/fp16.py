"""Is a component safe in float16? Measured in PyTorch on real faces before Core ML is told FLOAT16.

Core ML (and the ExecuTorch Core ML delegate) compute in fp16: max 65504, and layer norms /
L2 norms square their inputs (|x| > 255 already overflows a square). Two checks, both batched
in eager PyTorch under a ``TorchDispatchMode`` that sees every ATen op:

* ranges: the largest |activation| of every op output, of layer-norm inputs (and their centred
  squares) and of softmax inputs, in float32. Passing needs every one of them ``headroom`` (8x)
  below the fp16 maximum.
* emulation: the component run with weights, inputs and every op output rounded to fp16
  (fp32 arithmetic, fp16 storage: overflow becomes inf), compared with the float32 reference.
  Optional weight compression is emulated the way ``coremltools.optimize.coreml`` does it
  (int8 symmetric per output channel; 4-bit k-means palette per tensor), for weights with at least
  ``weight_threshold`` elements (coremltools' default 2048).

Off macOS a Core ML model cannot predict, so an emulation is the parity the bundle reports for Core ML,
labelled as such, at the precision the package really computes in (:func:`emulate`): fp16 for a
component that passed the range check under ``--quant`` fp16 / int8-weight / int4-palettize, float32
(weights compressed as coremltools does, no fp16 rounding) for one that computes in float32.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

FP16_MAX = 65504.0
HEADROOM = 8.0
WEIGHT_THRESHOLD = 2048  # coremltools.optimize.coreml default: smaller weights stay uncompressed

_LN = {"native_layer_norm", "layer_norm"}
_SOFTMAX = {"_softmax", "softmax", "_safe_softmax"}


def _amax(t: Any) -> float:
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
        return float(t.detach().abs().max())
    return 0.0


class _Probe(TorchDispatchMode):
    def __init__(self, round_outputs: bool):
        super().__init__()
        self.round_outputs = round_outputs
        self.max_out, self.max_op = 0.0, ""
        self.ln_in = self.ln_sq = self.sm_in = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in _LN and args:
            x = args[0]
            n = len(args[1]) if len(args) > 1 else 1
            dims = tuple(range(x.dim() - n, x.dim()))
            self.ln_in = max(self.ln_in, _amax(x))
            self.ln_sq = max(self.ln_sq, _amax((x - x.mean(dim=dims, keepdim=True)) ** 2))
        elif name in _SOFTMAX and args:
            self.sm_in = max(self.sm_in, _amax(args[0]))
        out = func(*args, **kwargs)
        m = max((_amax(t) for t in (out if isinstance(out, (tuple, list)) else [out])), default=0.0)
        if m > self.max_out:
            self.max_out, self.max_op = m, name
        if self.round_outputs:
            out = tree_map(lambda t: t.half().float() if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t,
                           out)
        return out


def _int8_per_channel(w: torch.Tensor) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
    return (torch.round(flat / scale).clamp(-127, 127) * scale).reshape(w.shape)


def _palettize(w: torch.Tensor, nbits: int = 4, iters: int = 20) -> torch.Tensor:
    """1-D k-means palette of ``2**nbits`` values over the whole tensor (Lloyd, quantile start)."""
    x = w.detach().reshape(-1).double().numpy()
    k = 2 ** nbits
    centers = np.unique(np.quantile(x, (np.arange(k) + 0.5) / k))
    for _ in range(iters):
        idx = np.searchsorted((centers[1:] + centers[:-1]) / 2, x)
        counts = np.bincount(idx, minlength=len(centers))
        sums = np.bincount(idx, weights=x, minlength=len(centers))
        centers = np.where(counts > 0, sums / np.maximum(counts, 1), centers)
    idx = np.searchsorted((centers[1:] + centers[:-1]) / 2, x)
    return torch.from_numpy(centers[idx]).reshape(w.shape).to(w.dtype)


def fp16_copy(module: torch.nn.Module, weights: str | None = None,
              weight_threshold: int = WEIGHT_THRESHOLD, half: bool = True) -> tuple[torch.nn.Module, int, int]:
    """A copy with fp16-rounded weights (compressed first for ``weights`` = int8-weight / int4-palettize;
    ``half=False`` keeps float32 weights, compressed or not); returns it with (compressed weight elements, all
    weight elements)."""
    m = copy.deepcopy(module).eval()
    done = total = 0
    with torch.no_grad():
        for p in list(m.parameters()) + list(m.buffers()):
            if not p.is_floating_point():
                continue
            total += p.numel()
            v = p.data
            if weights and p.numel() >= weight_threshold and p.dim() >= 2:
                v = _int8_per_channel(v) if weights == "int8-weight" else _palettize(v)
                done += p.numel()
            p.data = v.half().float() if half else v
    return m, done, total


@torch.no_grad()
def run_probed(module: torch.nn.Module, inputs: dict[str, torch.Tensor], round_fp16: bool,
               batch: int = 32) -> tuple[torch.Tensor, _Probe]:
    probe = _Probe(round_fp16)
    outs = []
    n = next(iter(inputs.values())).shape[0]
    with probe:
        for s in range(0, n, batch):
            args = [v[s:s + batch] for v in inputs.values()]
            if round_fp16:
                args = [a.half().float() for a in args]
            o = module(*args)
            outs.append(o[0] if isinstance(o, (tuple, list)) else o)
    return torch.cat(outs), probe


def check(module: torch.nn.Module, inputs: dict[str, torch.Tensor], reference: torch.Tensor,
          weights: str | None = None, logits: bool = False,
          downstream: Callable[[torch.Tensor], torch.Tensor] | None = None,
          reference_logits: torch.Tensor | None = None) -> dict[str, Any]:
    """Ranges in fp32 and the fp16 emulation's parity (component, and end to end via ``downstream``)."""
    from udc.sdk.parity.metrics import compare, rounded

    _, probe = run_probed(module, inputs, round_fp16=False)
    limit = FP16_MAX / HEADROOM
    ranges = {"max_abs_activation": probe.max_out, "max_abs_activation_op": probe.max_op,
              "layer_norm_input_max_abs": probe.ln_in, "layer_norm_centered_square_max": probe.ln_sq,
              "softmax_input_max_abs": probe.sm_in}
    worst = max(probe.max_out, probe.ln_sq, probe.sm_in)
    emu_module, compressed, total = fp16_copy(module, weights)
    out, _ = run_probed(emu_module, inputs, round_fp16=True)
    result: dict[str, Any] = {
        "fp16_max": FP16_MAX, "headroom_required": HEADROOM,
        "ranges": rounded(ranges), "passed": bool(worst * HEADROOM < FP16_MAX and torch.isfinite(out).all()),
        "samples": int(reference.shape[0]),
        "emulation": rounded(compare(reference, out, logits=logits)),
    }
    if weights:
        result["compressed_weight_fraction"] = round(compressed / max(1, total), 4)
    if downstream is not None and reference_logits is not None:
        result["emulation_end_to_end"] = rounded(compare(reference_logits, downstream(out), logits=True))
    if not result["passed"]:
        result["reason"] = (f"largest magnitude {worst:.4g} (op {probe.max_op}) is within {HEADROOM:g}x of the fp16 "
                            f"maximum {FP16_MAX:g} (limit {limit:.4g})" if worst * HEADROOM >= FP16_MAX
                            else "the fp16 emulation produced inf/nan")
    result["emulated_output"] = out  # popped by the caller (not JSON)
    return result


#: What :func:`emulate` measures, per compute precision (the label a parity report carries).
EMULATION_LABEL = {
    "fp16": "torch fp16 emulation (fp16 weights, inputs and activations)",
    "fp32": "torch float32 emulation (the component computes in float32 throughout)",
}


def emulation_label(precision: str, weights: str | None) -> str:
    """The ``measured_with`` of an emulated component: its precision, its weight compression, and, for float32
    with uncompressed weights, that the emulation is the reference itself (nothing of the conversion measured)."""
    label = EMULATION_LABEL[precision]
    if weights:
        return label[:-1] + f", {weights} weights as coremltools compresses them)"
    if precision == "fp32":
        return label[:-1] + ", float32 weights: identical to the reference by construction, the converted package " \
                            "itself is not run here)"
    return label


@torch.no_grad()
def emulate(module: torch.nn.Module, inputs: dict[str, torch.Tensor], precision: str,
            weights: str | None = None) -> torch.Tensor:
    """``module``'s output as Core ML computes it at ``precision`` (``fp16``: weights, inputs and every op output
    rounded to fp16; ``fp32``: float32 throughout), with ``weights`` compression emulated either way."""
    if precision not in EMULATION_LABEL:
        raise ValueError(f"no emulation for compute precision {precision!r}; known: {', '.join(EMULATION_LABEL)}")
    half = precision == "fp16"
    emu, _, _ = fp16_copy(module, weights, half=half)
    out, _ = run_probed(emu, inputs, round_fp16=half)
    return out

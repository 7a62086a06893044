"""ONNX models through ONNX Runtime's CPU execution provider.

Inputs are fed by name, outputs fetched by name: ``input_names`` / ``output_names`` (the manifest's)
must be exactly the model's own names (in any order); a missing, extra or unknown name is a
:class:`udc.sdk.runtime.runners.ProgramIOError`, never a positional match (two same-shaped inputs, like the
denoiser's ``condition`` and ``noise``, would otherwise swap silently).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .runners import ProgramIOError

#: ONNX Runtime as its performance-tuning guide recommends for a CPU, batch-1, latency run (used by
#: ``benchmarks/compare.py``; the SDK's default sessions stay as they are unless :func:`set_tuning` is called):
#: every graph optimisation (``ORT_ENABLE_ALL``: basic + extended + layout), ``intra_op_num_threads`` = the
#: thread count asked for, one inter-op thread and sequential execution (a chain of dependent ops), spinning
#: intra-op threads kept on (the default; lowest latency when the cores are ours), and, where it fuses
#: anything, the transformer optimizer (``onnxruntime.transformers.optimizer``: LayerNorm, GELU, attention
#: and skip-LayerNorm fusions) applied offline to fp32 graphs before the session is made.
TUNED = {"graph_optimization_level": "all", "execution_mode": "sequential", "allow_spinning": True,
         "transformer_optimizer": True}
_tuning: dict | None = None
_report: dict[str, dict] = {}


def set_tuning(tuning: dict | None) -> None:
    """Every :class:`OnnxRuntimeRunner` made after this uses ``tuning`` (keys of :data:`TUNED`; ``None``: defaults)."""
    global _tuning
    unknown = set(tuning or {}) - set(TUNED)
    if unknown:
        raise ValueError(f"unknown ONNX Runtime tuning keys {sorted(unknown)}; known: {sorted(TUNED)}")
    _tuning = dict(tuning) if tuning else None
    _report.clear()


def tuning_report() -> dict:
    """The tuning in force and, per model loaded since, what the transformer optimizer fused (or why not)."""
    return {"tuning": dict(_tuning) if _tuning else None, "graphs": dict(_report)}


def _transformer_optimized(name: str, path: Path, data: bytes | None) -> bytes | None:
    """The transformer optimizer's graph (bytes) when it fuses anything, else ``None`` (reason in the report)."""
    try:
        import onnx
        from onnxruntime.transformers.optimizer import optimize_model

        proto = onnx.load_from_string(data) if data is not None else onnx.load(str(path))
        if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node):
            _report[name] = {"transformer_optimizer": "not applied: quantized (QDQ) graph"}
            return None
        opt = optimize_model(proto, model_type="bert", num_heads=0, hidden_size=0, opt_level=0)
        fused = {k: v for k, v in (opt.get_fused_operator_statistics() or {}).items() if v}
        if not fused:
            _report[name] = {"transformer_optimizer": "applied, fused nothing: original graph kept"}
            return None
        _report[name] = {"transformer_optimizer": fused}
        return opt.model.SerializeToString()
    except Exception as e:  # noqa: BLE001 - the optimizer is optional: the original graph runs
        _report[name] = {"transformer_optimizer": f"failed, original graph kept: {type(e).__name__}: {e}"[:200]}
        return None


class OnnxRuntimeRunner:
    def __init__(self, path: str | Path, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, threads: int | None = None, data: bytes | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        if _tuning:
            if _tuning.get("graph_optimization_level") == "all":
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if _tuning.get("execution_mode") == "sequential":
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.add_session_config_entry("session.intra_op.allow_spinning",
                                          "1" if _tuning.get("allow_spinning", True) else "0")
            if _tuning.get("transformer_optimizer"):
                data = _transformer_optimized(self.path.name, self.path, data) or data
        self._session = ort.InferenceSession(data if data is not None else str(self.path), opts,
                                             providers=["CPUExecutionProvider"])
        have_in = [i.name for i in self._session.get_inputs()]
        have_out = [o.name for o in self._session.get_outputs()]
        self.input_names = list(input_names) if input_names else have_in
        self.output_names = list(output_names) if output_names else have_out
        if sorted(self.input_names) != sorted(have_in):
            raise ProgramIOError(f"{self.path.name}: the model's inputs are {have_in}, the manifest names "
                                 f"{self.input_names}: re-export the bundle")
        unknown = [n for n in self.output_names if n not in have_out]
        if unknown:
            raise ProgramIOError(f"{self.path.name}: no output named {', '.join(map(repr, unknown))}; the model's "
                                 f"outputs are {have_out}: re-export the bundle")

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise KeyError(f"missing input(s) {missing}; the program takes {self.input_names}")
        feed = {n: np.ascontiguousarray(inputs[n]) for n in self.input_names}
        return list(self._session.run(self.output_names, feed))

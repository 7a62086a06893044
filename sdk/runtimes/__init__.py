"""Run an exported component on this host, one small interface for every format:

    run = load("bundle.udc/clip_image.pte", input_names=["image"])   # or .onnx / .mlpackage
    outputs = run({"image": x})                                       # list of numpy arrays

``load(path) -> Runner``; a :class:`Runner` is called with a dict of numpy arrays (keyed by input
name) and returns the outputs as a list of numpy arrays, in the program's output order. The
runtime is chosen by the file: ``.pte`` ExecuTorch (``executorch.runtime.Runtime``), ``.onnx``
ONNX Runtime (CPU), ``.mlpackage`` Core ML (macOS only: elsewhere a clear error). The PyTorch
reference is :func:`udc.sdk.runtimes.torch_runtime.from_module`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from ..errors import UdcError

RUNTIMES = {".pte": "executorch", ".onnx": "onnxruntime", ".mlpackage": "coreml"}


class RuntimeUnavailableError(UdcError, RuntimeError):
    """The runtime a file needs does not run on this host (e.g. Core ML off macOS)."""


class Runner(Protocol):
    input_names: list[str]
    output_names: list[str] | None

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...


def ordered_inputs(inputs: Mapping[str, np.ndarray], input_names: Sequence[str] | None) -> list[np.ndarray]:
    """The inputs as contiguous float arrays, in ``input_names`` order (or the dict's order)."""
    names = list(input_names) if input_names else list(inputs)
    missing = [n for n in names if n not in inputs]
    if missing:
        raise KeyError(f"missing input(s) {missing}; the program takes {names}")
    return [np.ascontiguousarray(inputs[n]) for n in names]


def runtime_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in RUNTIMES:
        raise ValueError(f"{path}: no runtime for '{suffix}' files (known: {', '.join(RUNTIMES)})")
    return RUNTIMES[suffix]


def load(path: str | Path, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
         threads: int | None = None) -> Runner:
    """A callable running ``path`` on this host (see the module docstring)."""
    kind = runtime_for(path)
    if kind == "executorch":
        from .executorch_runtime import ExecuTorchRunner as cls
    elif kind == "onnxruntime":
        from .onnx_runtime import OnnxRuntimeRunner as cls
    else:
        from .coreml_runtime import CoreMLRunner as cls
    return cls(path, input_names=input_names, output_names=output_names, threads=threads)


__all__ = ["RUNTIMES", "Runner", "RuntimeUnavailableError", "load", "ordered_inputs", "runtime_for"]

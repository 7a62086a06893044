"""Run an exported component on this host, one small interface for every format:

    run = load("bundle.udc/clip_image.pte", input_names=["image"])   # or .onnx / .mlpackage
    outputs = run({"image": x})                                       # list of numpy arrays

``load(path) -> Runner``; a :class:`Runner` is called with a dict of numpy arrays (keyed by input
name) and returns the outputs as a list of numpy arrays, in ``output_names`` order (the program's own
order when none are given). The runtime is chosen by the file: ``.pte`` ExecuTorch
(``executorch.runtime.Runtime``), ``.onnx`` ONNX Runtime (CPU), ``.mlpackage`` Core ML (macOS only:
elsewhere a clear error). ``data`` (the file's bytes, e.g. :meth:`udc.sdk.runtime.bundle.Bundle.read_verified`)
makes ExecuTorch and ONNX Runtime load exactly those bytes instead of re-opening ``path``. Inputs are
matched by name wherever the format has names (ONNX, Core ML): a name the program does not have, or a
program input no name feeds, is an error, never a positional guess. The PyTorch reference is
:func:`udc.sdk.runtime.torch_runtime.from_module`.
"""
from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np

from ..errors import MissingDependencyError, UdcError

RUNTIMES = {".pte": "executorch", ".onnx": "onnxruntime", ".mlpackage": "coreml"}
#: Every runtime a bundle can be run with; ``torch`` is the PyTorch reference (any target).
RUNTIME_NAMES = ("torch", "executorch", "onnxruntime", "coreml")
#: The runtime that runs a bundle of each target on a host.
TARGET_RUNTIME = {"executorch": "executorch", "onnx": "onnxruntime", "coreml": "coreml"}
_MODULES = {"torch": "torch", "executorch": "executorch", "onnxruntime": "onnxruntime", "coreml": "coremltools"}


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


def host_system() -> str:
    return platform.system()


def runtime_problem(runtime: str, target: str | None = None, backend: str | None = None) -> str | None:
    """Why ``runtime`` cannot run a bundle of ``target``/``backend`` on this host (``None``: it can)."""
    if runtime not in RUNTIME_NAMES:
        return f"unknown runtime {runtime!r}; choose one of auto, {', '.join(RUNTIME_NAMES)}"
    if target is not None and runtime != "torch" and TARGET_RUNTIME.get(target) != runtime:
        return (f"this {target} bundle runs with runtime {TARGET_RUNTIME.get(target)!r}, not {runtime!r} "
                "(or runtime 'torch' for the PyTorch reference)")
    system = host_system()
    if runtime == "coreml" and system != "Darwin":
        return (f"Core ML runs only on macOS (and on iOS devices); this host is {system}: use runtime 'torch' for the "
                "PyTorch reference here, or export an executorch/onnx bundle for this host")
    if runtime == "executorch" and backend == "coreml" and system != "Darwin":
        return (f"this .pte bundle is delegated to Core ML, which ExecuTorch runs only on Apple platforms; this host is "
                f"{system}: run it on iOS/macOS, or export --backend xnnpack for Android and this host")
    if importlib.util.find_spec(_MODULES[runtime]) is None:
        return f"runtime {runtime!r} needs the {_MODULES[runtime]} package, which is not installed (pip install -e .)"
    if runtime == "executorch" and backend == "openvino":
        from .openvino_env import EXTRA, library

        if library() is None:
            return (f"this .pte bundle is delegated to OpenVINO, which is not installed: {EXTRA} (or export "
                    "--backend xnnpack)")
    return None


def check_runtime(runtime: str, target: str | None = None, backend: str | None = None) -> None:
    """Raise :class:`RuntimeUnavailableError` (or :class:`MissingDependencyError`) unless ``runtime`` can run it here."""
    why = runtime_problem(runtime, target, backend)
    if why is None:
        return
    if "not installed" in why:
        raise MissingDependencyError(why)
    raise RuntimeUnavailableError(why)


def resolve_runtime(runtime: str, target: str, backend: str | None = None) -> str:
    """``auto`` -> the runtime of ``target``; any choice is checked against this host (:func:`check_runtime`)."""
    name = TARGET_RUNTIME[target] if runtime == "auto" else runtime
    check_runtime(name, target, backend)
    return name


def host_runtimes(target: str, backend: str | None = None) -> list[str]:
    """The runtimes that can run a ``target`` bundle on this host, the bundle's own first, torch last."""
    names = [TARGET_RUNTIME[target], "torch"]
    return [n for n in names if runtime_problem(n, target, backend) is None]


def runtime_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in RUNTIMES:
        raise ValueError(f"{path}: no runtime for '{suffix}' files (known: {', '.join(RUNTIMES)})")
    return RUNTIMES[suffix]


class ProgramIOError(UdcError, ValueError):
    """The names a caller (a manifest) gives for a program's inputs/outputs are not the program's own."""


def load(path: str | Path, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
         threads: int | None = None, data: bytes | None = None) -> Runner:
    """A callable running ``path`` on this host (see the module docstring)."""
    kind = runtime_for(path)
    if kind == "executorch":
        from .executorch_runtime import ExecuTorchRunner as cls
    elif kind == "onnxruntime":
        from .onnx_runtime import OnnxRuntimeRunner as cls
    else:
        from .coreml_runtime import CoreMLRunner

        return CoreMLRunner(path, input_names=input_names, output_names=output_names, threads=threads)
    return cls(path, input_names=input_names, output_names=output_names, threads=threads, data=data)


__all__ = ["RUNTIMES", "RUNTIME_NAMES", "ProgramIOError", "Runner", "RuntimeUnavailableError", "TARGET_RUNTIME", "check_runtime",
           "host_runtimes", "load", "ordered_inputs", "resolve_runtime", "runtime_for", "runtime_problem"]

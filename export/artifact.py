"""What exporting one component produces, whatever the target."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

#: Runs one exported component on this host: batch-1 torch tensors in, outputs (arrays/tensors) out.
HostRunner = Callable[..., list]


def host_runner(path, input_names: list[str], threads: int | None) -> HostRunner:
    """The :data:`HostRunner` of an exported file (``.pte`` or ``.onnx``: :func:`udc.sdk.runtime.runners.load`
    picks the runtime from the file)."""
    from udc.sdk.runtime.runners import load

    run = load(path, input_names=input_names, threads=threads)

    def call(*args: torch.Tensor) -> list:
        return run({n: a.numpy() for n, a in zip(input_names, args)})

    return call


def tensor_spec(name: str, t: torch.Tensor) -> dict[str, Any]:
    return {"name": name, "shape": [int(s) for s in t.shape], "dtype": str(t.dtype).replace("torch.", "")}


@dataclass
class Artifact:
    component: str
    file: str  # name inside the bundle
    format: str  # "pte" | "mlpackage" | "onnx"
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    quantization: dict[str, Any]
    delegation: dict[str, Any] | None = None
    runner: HostRunner | None = None  # None: the file cannot run on this host
    measured_with: str | None = None  # what ``runner`` is, for the parity report
    skip_reason: str | None = None  # why there is no runner
    emulated_parity: dict[str, Any] | None = None  # torch emulation metrics when there is no runner
    bundled_program: dict[str, Any] | None = None  # {"file", "test_cases", "expected_outputs", "atol", "rtol"}
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

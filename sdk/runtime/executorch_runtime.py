"""ExecuTorch ``.pte`` programs through ``executorch.runtime.Runtime`` (XNNPACK and portable
kernels are registered in the pip wheel; the Core ML delegate is not, off Apple platforms).

A ``.pte`` carries no input names: inputs go in ``input_names`` order, which is the component's call
order the manifest records at export. ``data`` loads the program from those bytes (the ones a bundle
verified) instead of re-opening the path."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .openvino_env import missing_hint, point_executorch_at_openvino
from .runners import ProgramIOError, RuntimeUnavailableError, ordered_inputs
from ..console.quiet import quiet_native


def set_threads(n: int) -> None:
    """Size of the threadpool XNNPACK uses (process-wide)."""
    with quiet_native():  # the threadpool's first use prints cpuinfo lines from C++ (shown with --verbose)
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != int(n):
            portable_lib._unsafe_reset_threadpool(int(n))


def registered_backends() -> list[str]:
    from executorch.runtime import Runtime

    return list(Runtime.get().backend_registry.registered_backend_names)


def _delegate_hint(data: bytes | None, path: Path) -> str:
    """A sentence on OpenVINO when the program is delegated to it (its backend id is in the program's bytes)."""
    try:
        blob = data if data is not None else path.read_bytes()
    except OSError:
        return ""
    return f"; it is delegated to OpenVINO: {missing_hint()}" if b"OpenvinoBackend" in blob else ""


class ExecuTorchRunner:
    def __init__(self, path: str | Path, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, threads: int | None = None, data: bytes | None = None):
        import torch
        from executorch.runtime import Runtime

        self.path = Path(path)
        self.input_names = list(input_names or [])
        self.output_names = list(output_names) if output_names else None
        if threads:
            set_threads(threads)
        self._torch = torch
        point_executorch_at_openvino()  # an OpenVINO-delegated program needs it set before it loads
        try:
            with quiet_native():  # ExecuTorch prints cpuinfo lines from C++ while it loads (shown with --verbose)
                self._program = Runtime.get().load_program(data if data is not None else self.path)
                self._method = self._program.load_method("forward")
        except RuntimeError as e:
            raise RuntimeUnavailableError(
                f"{self.path.name}: ExecuTorch cannot load this program here ({e}); registered backends: "
                f"{', '.join(registered_backends())}" + _delegate_hint(data, self.path)) from e

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        args = [self._torch.from_numpy(a) for a in ordered_inputs(inputs, self.input_names)]
        outs = [o.detach().numpy().copy() for o in self._method.execute(args)]
        if self.output_names is not None and len(outs) != len(self.output_names):
            raise ProgramIOError(f"{self.path.name}: the program returned {len(outs)} output(s), the manifest names "
                                 f"{self.output_names}: re-export the bundle")
        return outs

"""ONNX models through ONNX Runtime's CPU execution provider.

Inputs are fed by name, outputs fetched by name: ``input_names`` / ``output_names`` (the manifest's)
must be exactly the model's own names (in any order); a missing, extra or unknown name is a
:class:`udc.sdk.runtimes.ProgramIOError`, never a positional match (two same-shaped inputs, like the
denoiser's ``condition`` and ``noise``, would otherwise swap silently).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import ProgramIOError


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

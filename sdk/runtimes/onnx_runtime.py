"""ONNX models through ONNX Runtime's CPU execution provider."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import ordered_inputs


class OnnxRuntimeRunner:
    def __init__(self, path: str | Path, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.input_names = list(input_names or [i.name for i in self._session.get_inputs()])
        self.output_names = list(output_names or [o.name for o in self._session.get_outputs()])
        self._feed_names = [i.name for i in self._session.get_inputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = ordered_inputs(inputs, self.input_names)
        feed = dict(zip(self._feed_names, arrays))
        return list(self._session.run(None, feed))

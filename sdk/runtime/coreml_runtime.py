"""Core ML ``.mlpackage`` models. Prediction needs macOS (Core ML.framework): on any other host
loading raises :class:`RuntimeUnavailableError`; :func:`inspect` reads the spec anywhere."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .runners import RuntimeUnavailableError

_DTYPES = {65552: "float16", 65568: "float32", 65600: "float64", 131104: "int32"}


def inspect(path: str | Path) -> dict[str, Any]:
    """Input and output names, shapes and dtypes from the package's spec (works on Linux)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))

    def feats(fs):
        return [{"name": f.name, "shape": [int(s) for s in f.type.multiArrayType.shape],
                 "dtype": _DTYPES.get(int(f.type.multiArrayType.dataType), str(f.type.multiArrayType.dataType))}
                for f in fs]

    return {"inputs": feats(spec.description.input), "outputs": feats(spec.description.output),
            "spec_version": int(spec.specificationVersion)}


class CoreMLRunner:
    def __init__(self, path: str | Path, input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None, threads: int | None = None):
        self.path = Path(path)
        if platform.system() != "Darwin":
            raise RuntimeUnavailableError(
                f"{self.path.name}: Core ML prediction needs macOS (this host is {platform.system()}); "
                "inspect the spec with udc.sdk.runtime.coreml_runtime.inspect() or run the bundle on an Apple device")
        import coremltools as ct

        self._model = ct.models.MLModel(str(self.path))
        spec = inspect(self.path)
        self.input_names = list(input_names or [i["name"] for i in spec["inputs"]])
        self.output_names = list(output_names or [o["name"] for o in spec["outputs"]])

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        out = self._model.predict({n: np.ascontiguousarray(inputs[n]) for n in self.input_names})
        return [np.asarray(out[n]) for n in self.output_names]

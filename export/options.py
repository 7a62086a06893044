"""Which target / backend / quant combinations exist, and the one-line errors for the others."""
from __future__ import annotations

from udc.sdk.errors import UdcError

TARGETS = ("executorch", "coreml", "onnx")
BACKEND_CHOICES = ("xnnpack", "coreml", "portable", "openvino")
QUANT_CHOICES = ("fp32", "fp16", "int8", "int8-weight", "int4-palettize")

#: (target, backend) -> quant modes it supports, default first.
SUPPORTED: dict[tuple[str, str], tuple[str, ...]] = {
    ("executorch", "xnnpack"): ("fp32", "int8"),
    ("executorch", "portable"): ("fp32",),
    # OpenVINO (Intel CPUs): int8 only. Its runtime imports a compiled model at OpenVINO's default inference
    # precision (bf16 on a CPU with AMX or AVX512-BF16), whatever was asked at export (measured:
    # docs/measured-facts.md), so an fp32 bundle could not promise fp32; the int8 checks cover that error.
    ("executorch", "openvino"): ("int8",),
    ("executorch", "coreml"): ("fp16", "fp32"),
    ("coreml", "coreml"): ("fp16", "fp32", "int8-weight", "int4-palettize"),
    ("onnx", "onnxruntime"): ("fp32", "int8"),
}
DEFAULT_BACKEND = {"executorch": "xnnpack", "coreml": "coreml", "onnx": "onnxruntime"}

_HINTS = {
    "int8": "int8 (PT2E static) is for --target executorch --backend xnnpack|openvino or --target onnx",
    "fp16": "fp16 is Core ML's compute precision: --target coreml, or --target executorch --backend coreml",
    "int8-weight": "int8-weight is Core ML weight compression: --target coreml",
    "int4-palettize": "int4-palettize is Core ML weight palettization: --target coreml",
    "fp32": ("fp32 works with every target; --backend openvino is int8 only (OpenVINO picks its float "
             "precision at load time: bf16 on CPUs with AMX or AVX512-BF16)"),
}


class ExportOptionError(UdcError, ValueError):
    """An impossible combination of export options (a usage error)."""


def resolve(target: str, backend: str | None, quant: str | None) -> tuple[str, str]:
    """``(backend, quant)`` with defaults filled in, or :class:`ExportOptionError` with what to do instead."""
    if target not in TARGETS:
        raise ExportOptionError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    if backend is None:
        backend = DEFAULT_BACKEND[target]
    elif target == "onnx":
        raise ExportOptionError(f"--backend {backend} does not apply to --target onnx (ONNX Runtime picks its "
                                "execution provider at run time): drop --backend")
    elif target == "coreml" and backend != "coreml":
        raise ExportOptionError(f"--backend {backend} does not apply to --target coreml: drop --backend, or use "
                                f"--target executorch --backend {backend}")
    if backend not in BACKEND_CHOICES + ("onnxruntime",):
        raise ExportOptionError(f"unknown backend {backend!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    modes = SUPPORTED[(target, backend)]
    if quant is None:
        return backend, modes[0]
    if quant not in QUANT_CHOICES:
        raise ExportOptionError(f"unknown quant mode {quant!r}: choose one of {', '.join(QUANT_CHOICES)}")
    if quant not in modes:
        where = f"--target {target}" + (f" --backend {backend}" if target == "executorch" else "")
        raise ExportOptionError(f"--quant {quant} is not available for {where} (it supports {', '.join(modes)}); "
                                f"{_HINTS[quant]}")
    return backend, quant

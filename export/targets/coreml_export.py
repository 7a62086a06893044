"""Core ML: ``ct.convert(ep.run_decompositions({}), convert_to="mlprogram", iOS17, FLOAT16)`` -> ``.mlpackage``.

Weight compression after conversion: ``int8-weight`` with ``linear_quantize_weights`` (symmetric,
per output channel), ``int4-palettize`` with ``palettize_weights`` (4-bit k-means, per tensor);
both compress weights of at least 2048 elements (coremltools' default threshold). The graph is
checked against coremltools' op registry first, so an unsupported op fails with its name before
any conversion work. Prediction needs macOS: here the package is converted, saved, and its spec
(input/output names, shapes) checked against the component; parity comes from a PyTorch emulation at
the precision the package computes in (fp16, or float32 when the fp16 range check failed or ``--quant fp32``;
:func:`udc.export.quant.fp16.emulate`).

``.mlpackage`` manifests carry random item identifiers; they are replaced by identifiers derived
from the item paths, so the same checkpoint gives byte-identical packages.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import uuid
import warnings
from pathlib import Path

import torch

from udc.sdk.models.components import Component
from udc.sdk.errors import UdcError

from ..artifact import Artifact, tensor_spec

COREML_NOT_HERE = ("Core ML prediction needs macOS: spec checked here, parity from a PyTorch emulation at the package's "
                   "compute precision")


class CoreMLUnsupportedError(UdcError, ValueError):
    """The component uses an op coremltools cannot convert."""


def _quiet():
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="coremltools")


@contextlib.contextmanager
def _no_progress_bars():
    """coremltools draws tqdm bars on stderr for every conversion pass: keep them off the CLI."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def op_kind(node: torch.fx.Node) -> str:
    from coremltools.converters.mil.frontend.torch.utils import sanitize_op_kind

    try:
        kind = node.target.name()
    except AttributeError:
        kind = getattr(node.target, "__name__", str(node.target))
    return sanitize_op_kind(kind)


def unsupported_ops(ep: torch.export.ExportedProgram) -> list[str]:
    """ATen ops of ``ep`` (after ``run_decompositions({})``) with no coremltools converter."""
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    bad = set()
    for n in ep.graph.nodes:
        if n.op == "call_function":
            kind = op_kind(n)
            if kind not in _TORCH_OPS_REGISTRY and kind != "getitem":
                bad.add(kind)
    return sorted(bad)


def _deterministic_package(path: Path) -> None:
    mf = path / "Manifest.json"
    data = json.loads(mf.read_text())
    entries = data.get("itemInfoEntries", {})
    remap = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, "udc-mlpackage:" + info.get("path", old)))
             for old, info in entries.items()}
    data["itemInfoEntries"] = {remap[k]: v for k, v in sorted(entries.items(), key=lambda kv: remap[kv[0]])}
    if data.get("rootModelIdentifier") in remap:
        data["rootModelIdentifier"] = remap[data["rootModelIdentifier"]]
    mf.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")


def prepare(comp: Component) -> torch.export.ExportedProgram:
    """``torch.export`` + ``run_decompositions({})``, refused up front if an op has no Core ML converter."""
    _quiet()
    import coremltools as ct

    example = tuple(torch.empty(v.shape, dtype=v.dtype).copy_(v) for v in comp.inputs.values())
    ep = torch.export.export(comp.module, example, strict=False).run_decompositions({})
    bad = unsupported_ops(ep)
    if bad:
        raise CoreMLUnsupportedError(
            f"Core ML cannot convert {comp.name}: coremltools {ct.__version__} has no converter for "
            f"{', '.join(bad)}; export it with --target executorch or --target onnx instead")
    return ep


def convert(comp: Component, precision: str, weights: str | None, ep: torch.export.ExportedProgram | None = None):
    """The converted (and compressed) ``MLModel`` with the component's input and output names."""
    _quiet()
    import coremltools as ct

    ep = ep if ep is not None else prepare(comp)
    try:
        with _no_progress_bars():
            mlmodel = ct.convert(
                ep, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                outputs=[ct.TensorType(name=o) for o in comp.outputs],
            )
    except NotImplementedError as e:  # an op the registry lists but cannot convert in this form
        raise CoreMLUnsupportedError(f"Core ML cannot convert {comp.name}: {str(e).splitlines()[0]}; export it with "
                                     "--target executorch or --target onnx instead") from e
    spec = mlmodel.get_spec()
    have = [i.name for i in spec.description.input]
    for old, new in zip(have, comp.inputs):
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    if weights == "int8-weight":
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

        with _no_progress_bars():
            mlmodel = linear_quantize_weights(mlmodel, OptimizationConfig(global_config=OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel")))
    elif weights == "int4-palettize":
        from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig, palettize_weights

        with _no_progress_bars():
            mlmodel = palettize_weights(mlmodel, OptimizationConfig(global_config=OpPalettizerConfig(
                mode="kmeans", nbits=4, granularity="per_tensor")))
    return mlmodel


def check_spec(path: Path, comp: Component, outputs: list[dict]) -> None:
    """The saved package's spec has the component's input/output names and shapes (works on Linux)."""
    from udc.sdk.runtime.coreml_runtime import inspect

    spec = inspect(path)
    want_in = [(n, list(t.shape)) for n, t in comp.inputs.items()]
    got_in = [(i["name"], i["shape"]) for i in spec["inputs"]]
    want_out = [(o["name"], o["shape"]) for o in outputs]
    got_out = [(o["name"], o["shape"]) for o in spec["outputs"]]
    if got_in != want_in or got_out != want_out:
        raise RuntimeError(f"{path.name}: spec has inputs {got_in} outputs {got_out}, expected {want_in} {want_out}")


def export_component(comp: Component, quant: str, precision: str, out_dir: Path,
                     ep: torch.export.ExportedProgram | None = None) -> Artifact:
    t0 = time.perf_counter()
    weights = quant if quant in ("int8-weight", "int4-palettize") else None
    mlmodel = convert(comp, precision, weights, ep)
    fname = f"{comp.name}.mlpackage"
    path = out_dir / fname
    _quiet()
    mlmodel.save(str(path))
    _deterministic_package(path)
    with torch.no_grad():
        o = comp.module(*comp.inputs.values())
    outs = [o] if isinstance(o, torch.Tensor) else list(o)
    outputs = [tensor_spec(n, t) for n, t in zip(comp.outputs, outs)]
    check_spec(path, comp, outputs)
    return Artifact(
        component=comp.name, file=fname, format="mlpackage",
        inputs=[tensor_spec(n, t) for n, t in comp.inputs.items()], outputs=outputs,
        quantization={"mode": quant, "compute_precision": "float16" if precision == "fp16" else "float32",
                      "weights": {"int8-weight": "int8 linear symmetric per output channel (linear_quantize_weights)",
                                  "int4-palettize": "4-bit k-means palette per tensor (palettize_weights)"}.get(
                          quant, "float16" if precision == "fp16" else "float32")},
        skip_reason=COREML_NOT_HERE, seconds=time.perf_counter() - t0,
    )

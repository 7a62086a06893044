"""ONNX: ``torch.onnx.export(..., dynamo=True)`` -> single-file ``.onnx``; int8 with ONNX Runtime's
``quantize_static`` (QDQ, int8 per-channel symmetric weights, int8 symmetric activations: the same
scheme as the ExecuTorch recipe, and what ARM CPUs prefer) after ``quant_pre_process(...,
skip_symbolic_shape=True)``, calibrated by a ``CalibrationDataReader`` over the same faces.

The recipes (which layers stay float) are those of :mod:`udc.export.quant.recipes`, chosen the same
way: ``all-int8`` = every op type ORT quantizes; ``gemm-int8`` = only MatMul/Gemm/Conv/ConvTranspose
nodes with a constant weight; ``gemm-int8-ends-float`` = those minus the first and the last.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from udc.sdk.models.components import LOGIT_COMPONENTS, Component, chain_of
from udc.sdk.parity.metrics import compare, rounded

from ..artifact import Artifact, host_runner, tensor_spec
from ..quant.recipes import RECIPES, SENSITIVE, choose_recipe, describe, float_kept_list
from ..quant.sensitivity import RANK_FACES, component_sensitivity
from ..reference import ReferenceIO, downstream_logits, per_sample

GEMM_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
_NOISY = ("torch.onnx", "onnxscript", "onnx_ir", "root")


@contextlib.contextmanager
def _silenced():
    """The exporter and ORT's quantization tools print progress and warnings: keep them off the CLI."""
    loggers = [logging.getLogger(n if n != "root" else None) for n in _NOISY]
    levels = [lg.level for lg in loggers]
    sink = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_fp32(comp: Component, path: Path) -> dict[str, str]:
    """Dynamo export to one self-contained file (weights inside: what ORT's quantization tools need).

    Returns ``{gemm node name: module path}`` (read from the exporter's name scopes before the
    per-node metadata is stripped), so recipes can name layers the way the PyTorch side does.
    """
    example = tuple(torch.empty(v.shape, dtype=v.dtype).copy_(v) for v in comp.inputs.values())
    with _silenced():
        prog = torch.onnx.export(comp.module, example, dynamo=True, input_names=list(comp.inputs),
                                 output_names=list(comp.outputs), optimize=True, verbose=False)
    import onnx

    model = prog.model_proto
    model.producer_name, model.producer_version = "udc-export (torch.onnx dynamo)", torch.__version__
    scopes: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type in GEMM_OPS:
            for prop in node.metadata_props:
                if prop.key == "pkg.torch.onnx.name_scopes":
                    names = [x.strip(" '\"") for x in prop.value.strip("[]").split(",")]
                    if len(names) >= 2:
                        scopes[node.name] = names[-2]
    for node in model.graph.node:  # per-node stack traces and source paths: bulk (60 % of the file), and
        del node.metadata_props[:]  # they would tie the file's bytes to where udc is installed
        node.doc_string = ""
    onnx.save_model(model, str(path), save_as_external_data=False)
    return scopes


class _Reader:
    """ORT ``CalibrationDataReader``: one batch-1 input dict per calibration face."""

    def __init__(self, ref: ReferenceIO, component: str, names: list[str]):
        self.ref, self.component, self.names, self.i = ref, component, names, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.ref):
            return None
        args = self.ref.sample(self.component, self.i)
        self.i += 1
        return {n: a.numpy() for n, a in zip(self.names, args)}

    def rewind(self) -> None:
        self.i = 0


def _gemm_nodes(model_path: Path) -> list[str]:
    import onnx

    m = onnx.load(str(model_path))
    inits = {i.name for i in m.graph.initializer}
    consts = {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in m.graph.node
            if n.op_type in GEMM_OPS and len(n.input) > 1 and (n.input[1] in inits or n.input[1] in consts)]


def quantize(fp32_path: Path, out_path: Path, ref: ReferenceIO, comp: Component, recipe: str,
             kept_paths=(), scopes: dict[str, str] | None = None) -> list[str]:
    """ORT static int8 of ``fp32_path`` into ``out_path`` with ``recipe``; returns the float-kept layers."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Reader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="udc-onnx-q-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        with _silenced():
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            gemms = _gemm_nodes(pre)
            kept: list[str] = []
            nodes = None
            if recipe == "gemm-int8":
                nodes = gemms
            elif recipe == "gemm-int8-ends-float":
                kept = [gemms[0], gemms[-1]] if gemms else []
                nodes = [g for g in gemms if g not in kept]
                kept = [(scopes or {}).get(g.split("/")[0], g) for g in kept]
            elif recipe.startswith(SENSITIVE):
                paths = set(kept_paths)
                nodes = [g for g in gemms if (scopes or {}).get(g.split("/")[0]) not in paths]
                kept = sorted(paths)
            quantize_static(
                str(pre), str(out_path), Reader(ref, comp.name, list(comp.inputs)),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )
    return kept


#: ONNX ops that only move or view data: left out of :func:`onnx_op_precision`.
_ONNX_MOVES = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Flatten", "Split", "Gather",
               "Identity", "Shape", "Constant", "ConstantOfShape", "Expand", "Cast", "Tile", "Pad"}


def onnx_op_precision(path: Path) -> dict[str, dict[str, int]]:
    """What a QDQ ``.onnx`` stores in int8, per op type, by the rule of
    :func:`udc.export.quant.recipes.op_precision`: an op is int8 when every activation it reads (inputs that are not
    initializers) comes from a ``DequantizeLinear`` and every consumer is a ``QuantizeLinear``."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out: dict[str, dict[str, int]] = {}
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type in _ONNX_MOVES:
            continue
        acts = [i for i in n.input if i and i not in inits and i in producer
                and producer[i].op_type != "Constant"]
        users = [u for o in n.output for u in consumers.get(o, [])]
        int8 = (bool(acts) and all(producer[i].op_type == "DequantizeLinear" for i in acts)
                and bool(users) and all(u.op_type == "QuantizeLinear" for u in users))
        row = out.setdefault(n.op_type, {"int8": 0, "float": 0})
        row["int8" if int8 else "float"] += 1
    return dict(sorted(out.items()))


def export_component(comp: Component, model, quant: str, out_dir: Path, calib: ReferenceIO | None,
                     threads: int | None = 2, log=lambda s: None, hint=None,
                     thresholds: dict[str, Any] | None = None) -> Artifact:
    """``comp`` to ``out_dir/NAME.onnx`` (int8: the recipe search against ``thresholds``, the bundle's end-to-end
    int8 thresholds, default ``THRESHOLDS["int8"]``)."""
    t0 = time.perf_counter()
    names = list(comp.inputs)
    fname = f"{comp.name}.onnx"
    path = out_dir / fname
    qrecord: dict[str, Any] = {"mode": quant}
    if quant == "fp32":
        export_fp32(comp, path)
    else:
        if calib is None:
            raise ValueError("int8 needs calibration faces")
        is_logits = comp.name in LOGIT_COMPONENTS
        with tempfile.TemporaryDirectory(prefix="udc-onnx-") as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            scopes = export_fp32(comp, fp32)
            kept_by: dict[str, list[str]] = {}

            def evaluate(recipe: str, kept_paths) -> dict[str, Any]:
                t1 = time.perf_counter()
                qpath = Path(tmp) / f"{recipe}.onnx"
                kept_by[recipe] = quantize(fp32, qpath, calib, comp, recipe, kept_paths, scopes)
                out = per_sample(host_runner(qpath, names, threads), calib, comp.name)
                m = {"component": compare(calib.output(comp.name), out, logits=is_logits),
                     "end_to_end": compare(calib.tensors["logits"], downstream_logits(model, comp.name, out, calib),
                                           logits=True)}
                log(f"  {comp.name}: {recipe}: cos {m['component']['cosine']:.5f}, end-to-end top-1 "
                    f"{100 * m['end_to_end']['top1_agreement']:.1f}% cos {m['end_to_end']['cosine']:.5f} "
                    f"({time.perf_counter() - t1:.1f} s)")
                return m

            paths = list(dict.fromkeys(scopes.values()))

            def ranking():
                return component_sensitivity(model, comp.name, comp.module, paths, calib)

            if hint is not None:
                hint.check_layers(comp.name, paths)
            chosen, cands, extra = choose_recipe(evaluate, RECIPES, quant=thresholds or "int8", ranking=ranking,
                                                 n_layers=len(paths), log=log, chained=len(chain_of(model)),
                                                 hint=hint)
            path.write_bytes((Path(tmp) / f"{chosen}.onnx").read_bytes())
            census = onnx_op_precision(path)
        qrecord.update({
            "recipe": chosen, "description": describe(chosen),
            "scheme": "onnxruntime quantize_static, QDQ, int8 symmetric per-channel weights, int8 symmetric "
                      "per-tensor activations (MinMax calibration)",
            "float_kept": float_kept_list(census, kept_by[chosen]),
            "op_precision": census,
            "sensitivity_ranking": extra["ranking"],
            "sensitivity_faces": None if extra["ranking"] is None else min(RANK_FACES, len(calib)),
            "candidates": [{"recipe": c.recipe, "passed": c.passed, "failures": c.failures,
                            "component": rounded(c.metrics["component"]),
                            "end_to_end": rounded(c.metrics["end_to_end"])} for c in cands],
            "basis": extra["basis"],
            "recipe_hint": extra["hint"],
            "decision": f"{chosen}: the first recipe (most int8) meeting the int8 thresholds on the calibration faces "
                        f"(basis: {extra['basis']})",
        })
    with torch.no_grad():
        o = comp.module(*comp.inputs.values())
    outs = [o] if isinstance(o, torch.Tensor) else list(o)
    return Artifact(
        component=comp.name, file=fname, format="onnx",
        inputs=[tensor_spec(n, t) for n, t in comp.inputs.items()],
        outputs=[tensor_spec(n, t) for n, t in zip(comp.outputs, outs)],
        quantization=qrecord, runner=host_runner(path, names, threads),
        measured_with="onnxruntime (CPUExecutionProvider, host)", seconds=time.perf_counter() - t0,
    )

"""int8 quantization recipes and the measured choice between them.

PT2E static quantization for ExecuTorch/XNNPACK (``prepare_pt2e``/``convert_pt2e`` from
``torchao.quantization.pt2e.quantize_pt2e`` with ``XNNPACKQuantizer`` and
``get_symmetric_quantization_config(is_per_channel=True)``: int8 per-channel symmetric weights
(min/max), int8 per-tensor activations (histogram observers), calibrated on real preprocessed faces).
The ONNX path (:mod:`udc.export.onnx_export`) uses the same recipe names.

Which layers stay float is decided by measurement, per component, over three recipes in order
of how much runs in int8:

``all-int8``               every op the quantizer knows: linear, conv, residual adds, Z-modulation
                           muls, concatenations
``gemm-int8``              linear + conv in int8; residual adds, muls, concatenations (and, as in
                           every recipe, layer norms and softmax inputs) stay float
``gemm-int8-ends-float``   as ``gemm-int8`` with the component's first and last linear/conv layer
                           float (patch/stem embedding and final projection)

Each candidate is calibrated and then scored on the calibration faces against the float
reference: the component's own output (cosine) and the end-to-end logits with only this
component quantized (top-1 agreement, cosine). The first candidate meeting the int8 thresholds
of :data:`udc.sdk.parity.THRESHOLDS` wins; if none does, the best end-to-end one is kept and the
parity report says it fails. The numbers of every candidate go into the manifest.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from udc.sdk.parity import THRESHOLDS

aten = torch.ops.aten

RECIPES = ("all-int8", "gemm-int8", "gemm-int8-ends-float")

RECIPE_DESCRIPTIONS = {
    "all-int8": "every op the quantizer supports in int8 (linear, conv, residual adds, muls, concatenations)",
    "gemm-int8": "linear and conv in int8; residual adds, muls, concatenations, layer norms and softmax inputs float",
    "gemm-int8-ends-float": "as gemm-int8, with the first and last linear/conv layer float "
                            "(input embedding and final projection)",
}

#: What stays float under each recipe (besides ops no int8 recipe touches: layer norm, softmax,
#: attention matmuls, GELU/sigmoid, reductions).
ALWAYS_FLOAT = ["layer_norm / channel layer norm", "softmax and its inputs", "activation x activation matmuls",
                "GELU / sigmoid / exp", "L2 normalisation"]

GEMM_TARGETS = {
    aten.linear.default, aten.conv1d.default, aten.conv2d.default, aten.conv2d.padding,
    aten.conv_transpose2d.input, aten.conv_transpose1d.default,
}


def module_path(node: torch.fx.Node) -> str:
    """The innermost module a node came from (``dt.enc1.blocks.0.attn.qkv``), or the node's name."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return node.name
    path = list(stack.values())[-1][0]
    return path.replace("L['self'].", "").replace("L__self__.", "")


def gemm_nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target in GEMM_TARGETS]


def recipe_filter(recipe: str, gm: torch.fx.GraphModule) -> tuple[Callable[[torch.fx.Node], bool] | None, list[str]]:
    """``(filter for XNNPACKQuantizer.set_filter_function, float-kept layer names)`` of a recipe."""
    if recipe == "all-int8":
        return None, []
    gemms = gemm_nodes(gm)
    kept: set[torch.fx.Node] = set()
    if recipe == "gemm-int8-ends-float" and gemms:
        kept = {gemms[0], gemms[-1]}
    elif recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")

    def keep(n: torch.fx.Node) -> bool:
        return n.target in GEMM_TARGETS and n not in kept

    return keep, sorted({module_path(n) for n in kept})


def float_kept(recipe: str, kept_layers: Sequence[str]) -> list[str]:
    """Human-readable list of what a recipe leaves in float (for the manifest)."""
    out = list(ALWAYS_FLOAT)
    if recipe != "all-int8":
        out = ["residual adds", "Z-modulation / gating muls", "concatenations"] + out
    return out + [f"layer {k}" for k in kept_layers]


def _graph(module: torch.nn.Module, example: tuple, rewrite) -> torch.fx.GraphModule:
    ep = torch.export.export(module, example, strict=False)
    if rewrite is not None:
        ep = rewrite(ep)
    return unshare_biases(ep.module())


def unshare_biases(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Give every linear/conv call its own copy of a bias it shares with another call.

    A layer called more than once (the denoiser runs the same MLP at every unrolled step) sees a
    different input scale at each call. XNNPACK (executorch 1.5.1) quantizes a shared bias to int32
    once, with one call's scale, and reuses it for the others: measured on a Linear applied twice,
    cosine 0.71 against 0.9999 for the same graph with separate biases. Weights may stay shared.
    """
    for node in list(gm.graph.nodes):
        if node.op != "get_attr":
            continue
        users = [u for u in node.users if u.target in GEMM_TARGETS and len(u.args) > 2 and u.args[2] is node]
        for k, user in enumerate(users[1:], start=1):
            name = f"{node.target.replace('.', '_')}_unshared_{k}"
            value = _attr(gm, node.target)
            gm.register_buffer(name, value.detach().clone())
            with gm.graph.inserting_before(user):
                copy_node = gm.graph.get_attr(name)
            copy_node.meta = dict(node.meta)
            user.replace_input_with(node, copy_node)
    gm.recompile()
    return gm


def _attr(gm: torch.nn.Module, target: str) -> torch.Tensor:
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


@contextmanager
def torch_threads(n: int):
    """Run small-tensor PyTorch work on ``n`` threads: the quantize/dequantize ops of a PT2E module are
    many tiny kernels, and on shared cores two OpenMP threads make each of them wait (10x slower)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _filtered_quantizer_class():
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer_utils import propagate_annotation

    class FilteredQuantizer(XNNPACKQuantizer):
        """XNNPACKQuantizer that quantizes only the nodes ``keep`` accepts.

        ``set_filter_function`` is not enough in executorch 1.5.1: the conv and cat annotators ignore
        it (measured: with a filter that rejects everything, conv-transposes and concatenations were
        still quantized). Annotations are made as usual, then removed from every node ``keep``
        rejects, and the quantization-parameter sharing of views/permutes/slices is re-derived.
        """

        def __init__(self, keep):
            super().__init__()
            self.keep = keep

        def annotate(self, model):
            model = self._annotate_for_quantization_config(model)
            for node in model.graph.nodes:
                if "quantization_annotation" in node.meta and not self.keep(node):
                    del node.meta["quantization_annotation"]
            propagate_annotation(model)
            return model

    return FilteredQuantizer


def _FilteredQuantizer(keep):  # noqa: N802 - a class, built lazily (executorch imports are heavy)
    return _filtered_quantizer_class()(keep)


class PT2E:
    """PT2E static int8 of one component (batch 1, as it ships).

    ``rewrite`` (the XNNPACK rewrites of :mod:`udc.export.rewrites`) runs before quantization, so the
    slices and views it introduces share their input's quantization parameters and stay inside the
    delegate. Activations are observed with the quantizer's histogram observers (per tensor), weights
    with per-channel min/max, one calibration face at a time.
    """

    def __init__(self, module: torch.nn.Module, example: tuple, rewrite=None):
        self.gm = _graph(module, example, rewrite)

    def calibrate(self, recipe: str, samples: Iterable[tuple]) -> tuple[torch.fx.GraphModule, list[str]]:
        import copy

        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        gm = copy.deepcopy(self.gm)
        keep, kept_layers = recipe_filter(recipe, gm)
        quantizer = (XNNPACKQuantizer() if keep is None else _FilteredQuantizer(keep)).set_global(
            get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(gm, quantizer)
        with torch.no_grad(), torch_threads(1):
            for args in samples:
                prepared(*args)
        return prepared, kept_layers

    @staticmethod
    def convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        return convert_pt2e(prepared)


@dataclass
class Candidate:
    recipe: str
    metrics: dict[str, Any]  # {"component": {...}, "end_to_end": {...}}
    passed: bool
    failures: list[str]


def candidate_passes(metrics: dict[str, Any], quant: str = "int8") -> tuple[bool, list[str]]:
    t = THRESHOLDS[quant]
    fails = []
    comp, e2e = metrics["component"], metrics["end_to_end"]
    if comp["cosine"] < t["cosine"]:
        fails.append(f"component cosine {comp['cosine']:.5f} < {t['cosine']}")
    if e2e["cosine"] < t["cosine"]:
        fails.append(f"end-to-end cosine {e2e['cosine']:.5f} < {t['cosine']}")
    if e2e["top1_agreement"] < t["top1"]:
        fails.append(f"end-to-end top-1 {e2e['top1_agreement']:.4f} < {t['top1']}")
    return not fails, fails


def choose_recipe(evaluate: Callable[[str], dict[str, Any]], recipes: Sequence[str] = RECIPES,
                  quant: str = "int8") -> tuple[str, list[Candidate]]:
    """Score every recipe with ``evaluate(recipe) -> {"component", "end_to_end"}`` metrics; return the first
    that passes (most int8), else the best end-to-end one, and all the scores."""
    cands = []
    for r in recipes:
        m = evaluate(r)
        ok, fails = candidate_passes(m, quant)
        cands.append(Candidate(r, m, ok, fails))
    passing = [c for c in cands if c.passed]
    if passing:
        return passing[0].recipe, cands
    best = max(cands, key=lambda c: (c.metrics["end_to_end"]["top1_agreement"], c.metrics["end_to_end"]["cosine"]))
    return best.recipe, cands

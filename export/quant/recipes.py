"""int8 quantization recipes and the measured choice between them.

PT2E static quantization for ExecuTorch/XNNPACK (``prepare_pt2e``/``convert_pt2e`` from
``torchao.quantization.pt2e.quantize_pt2e`` with ``XNNPACKQuantizer`` and
``get_symmetric_quantization_config(is_per_channel=True)``: int8 per-channel symmetric weights
(min/max), int8 per-tensor activations (histogram observers), calibrated on real preprocessed faces).
The ONNX path (:mod:`udc.export.targets.onnx_export`) uses the same recipe names.

Which layers stay float is decided by measurement, per component, in order of how much runs in
int8:

``all-int8``                 every op the quantizer knows: linear, conv, residual adds, Z-modulation
                             muls, concatenations
``gemm-int8``                linear + conv in int8; residual adds, muls, concatenations (and, as in
                             every recipe, layer norms and softmax inputs) stay float
``gemm-int8-ends-float``     as ``gemm-int8`` with the component's first and last linear/conv layer
                             float (patch/stem embedding and final projection)
``gemm-int8-sensitive-K``    only when the three above miss the thresholds: as ``gemm-int8`` with the
                             K layers float whose int8 error moves the logits most. Sensitivity is
                             measured one layer at a time (that layer's input, weight and output
                             fake-quantized to int8, everything else float, batched on the first
                             :data:`~udc.export.quant.sensitivity.RANK_FACES` calibration faces,
                             scored by 1 - cosine of the end-to-end logits); K = 1, 2, 4, ... up
                             to a quarter of the layers, the first K that passes (each K scored on
                             every calibration face).

Each candidate is calibrated and then scored on the calibration faces against the float
reference: the component's own output (cosine) and the end-to-end logits with only this
component quantized (top-1 agreement, cosine). The first candidate meeting the int8 thresholds
of :data:`udc.sdk.parity.metrics.THRESHOLDS`, split over the four chained components
(:func:`selection_thresholds`: a quarter of the allowed loss each), wins; if none does, the best end-to-end one is kept and the
parity report says it fails. The numbers of every candidate, and the sensitivity ranking, go into
the manifest.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from udc.sdk.parity.metrics import THRESHOLDS, rounded

from .observer_cache import ObserverCache
from .threads import torch_threads

aten = torch.ops.aten

RECIPES = ("all-int8", "gemm-int8", "gemm-int8-ends-float")

#: What each recipe asks the quantizer for. What it then stores in int8 reaches further (the quantizer also takes
#: ops that read an int8 result directly, e.g. a layer norm's first mean after an int8 conv): the manifest's
#: ``op_precision`` and ``float_kept`` are measured on the converted graph (:func:`op_precision`).
RECIPE_DESCRIPTIONS = {
    "all-int8": "every op the backend's quantizer supports in int8 (XNNPACK: linear, conv, residual adds, muls, "
                "concatenations, the layer norms' arithmetic; ONNX Runtime QDQ: its own list, e.g. MatMul but not Add)",
    "gemm-int8": "linear and conv in int8; residual adds, muls, concatenations, layer norms and softmax inputs asked "
                 "float (an op reading an int8 conv output directly may still be stored in int8: op_precision)",
    "gemm-int8-ends-float": "as gemm-int8, with the first and last linear/conv layer float "
                            "(input embedding and final projection)",
}

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


SENSITIVE = "gemm-int8-sensitive-"


def sensitive_recipe(k: int) -> str:
    return f"{SENSITIVE}{k}"


def describe(recipe: str) -> str:
    if recipe.startswith(SENSITIVE):
        return (f"linear and conv in int8 except the {recipe[len(SENSITIVE):]} layers whose int8 error moves the "
                "logits most (measured one layer at a time on the calibration faces); residual adds, muls, "
                "concatenations, layer norms and softmax inputs float")
    return RECIPE_DESCRIPTIONS[recipe]


def recipe_filter(recipe: str, gm: torch.fx.GraphModule, kept_paths: Iterable[str] = ()
                  ) -> tuple[Callable[[torch.fx.Node], bool] | None, list[str]]:
    """``(which nodes to quantize, float-kept layer names)`` of a recipe (``kept_paths``: for the
    sensitivity recipes, the module paths kept float)."""
    if recipe == "all-int8":
        return None, []
    kept = _kept_float(recipe, gemm_nodes(gm), set(kept_paths))

    def keep(n: torch.fx.Node) -> bool:
        return n.target in GEMM_TARGETS and n not in kept

    return keep, sorted({module_path(n) for n in kept})


def _kept_float(recipe: str, gemms: list[torch.fx.Node], paths: set[str]) -> set[torch.fx.Node]:
    """The GEMM nodes (of ``gemms``, in graph order) a recipe other than all-int8 keeps float: none (gemm-int8), the
    first and last (ends-float), those of the module ``paths`` (sensitive-K)."""
    if recipe == "gemm-int8-ends-float" and gemms:
        return {gemms[0], gemms[-1]}
    if recipe.startswith(SENSITIVE):
        return {n for n in gemms if module_path(n) in paths}
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}, {SENSITIVE}K")
    return set()


#: The fused ``pipeline``'s recipe when it is composed from the four programs' (``--fuse --quant int8``): each component's
#: part of the fused graph gets the recipe (and float-kept layers) its own program chose; nothing else is quantized.
PER_COMPONENT = "per-component"


def _in_scope(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def composed_filter(parts: dict[str, tuple[str, Sequence[str]]], gm: torch.fx.GraphModule
                    ) -> tuple[Callable[[torch.fx.Node], bool], list[str]]:
    """``(which nodes to quantize, float-kept layer names)`` of :data:`PER_COMPONENT`: ``parts`` maps a module prefix
    of ``gm`` (``model.clip_image``) to the recipe and float-kept layers (relative to that module, as its own program's
    record names them) of that component. Each part keeps float what its recipe keeps in the part's own nodes (its
    first and last GEMM, its layers: :func:`_kept_float`, as :func:`recipe_filter`); a node outside every part (the
    glue between components) is never asked int8."""
    scope: dict[torch.fx.Node, str] = {}
    for n in gm.graph.nodes:
        if n.op == "call_function":
            path = module_path(n)
            owner = max((p for p in parts if _in_scope(path, p)), key=len, default=None)
            if owner is not None:
                scope[n] = owner
    keeps: dict[str, Callable[[torch.fx.Node], bool] | None] = {}
    kept_layers: list[str] = []
    for prefix, (recipe, kept_paths) in parts.items():
        if recipe == "all-int8":
            keeps[prefix] = None
            continue
        gemms = [n for n in gemm_nodes(gm) if scope.get(n) == prefix]
        if not gemms:
            raise ValueError(f"{PER_COMPONENT}: no linear or conv layer of the fused graph lies in {prefix!r}")
        paths = {f"{prefix}.{k}" for k in kept_paths} if recipe.startswith(SENSITIVE) else set()
        kept = _kept_float(recipe, gemms, paths)
        missing = sorted(paths - {module_path(n) for n in kept})
        if missing:
            raise ValueError(f"{PER_COMPONENT}: {recipe} keeps {', '.join(missing)} float, which the fused graph "
                             "does not have")
        keeps[prefix] = (lambda n, kept=kept: n.target in GEMM_TARGETS and n not in kept)
        kept_layers += sorted({module_path(n) for n in kept})

    def keep(n: torch.fx.Node) -> bool:
        prefix = scope.get(n)
        if prefix is None:
            return False
        k = keeps[prefix]
        return True if k is None else k(n)

    return keep, kept_layers


#: Ops that only move or view data: left out of :func:`op_precision` (they carry whatever precision they are given).
_MOVES = {"view", "reshape", "_unsafe_view", "permute", "transpose", "t", "slice", "select", "unsqueeze", "squeeze",
          "expand", "clone", "contiguous", "_to_copy", "flatten", "unflatten", "alias", "detach", "split",
          "split_with_sizes", "chunk", "unbind", "index", "full", "full_like", "ones", "zeros", "zeros_like",
          "ones_like", "arange", "scalar_tensor", "lift_fresh_copy"}


#: Activations the int8 kernels fuse into the op before them (conv / linear + relu ...): the pair counts as int8.
_FUSED_ACTS = {"relu", "relu_", "hardtanh", "hardtanh_", "clamp", "leaky_relu", "leaky_relu_"}


def _is_q(node, kind: str) -> bool:
    """``kind`` "quantize" or "dequantize": a ``quantized_decomposed`` (de)quantize node."""
    return (isinstance(node, torch.fx.Node) and node.op == "call_function"
            and str(node.target).startswith(f"quantized_decomposed.{kind}_per"))


def _op_name(n: torch.fx.Node) -> str | None:
    if n.op != "call_function" or not isinstance(n.target, torch._ops.OpOverload) or n.target.namespace != "aten":
        return None
    return n.target._schema.name.split("::")[-1]


def op_precision(gm: torch.fx.GraphModule) -> dict[str, dict[str, int]]:
    """Which ops of a converted PT2E graph are int8, counted per aten op: ``{op: {"int8": n, "float": m}}``.

    An op counts as int8 when every activation it reads comes from a ``dequantize`` (weights and biases may be
    float: the lowering quantizes them) and everything that reads it is a ``quantize`` (its result is stored in
    int8), or it is an activation (relu, clamp, ...) fused between such an op and its ``quantize``. The kernel may
    still compute in float between the two (XNNPACK then converts on each side); the values it passes on are int8
    either way. Otherwise it counts as float. Ops that only move data (views, permutes, slices, constants:
    ``_MOVES``) are left out. Measured, not stated per recipe, because the quantizer reaches further than the
    recipe names say: on the ``mobile`` UDCformer, all-int8 stores the layer norms' means, subtractions, products
    and rsqrt in int8, and gemm-int8 stores 9 of its 16 GELUs in int8 (those between two int8 convolutions)."""
    def to_q(n: torch.fx.Node) -> bool:
        return bool(n.users) and all(_is_q(u, "quantize") for u in n.users)

    int8: set[torch.fx.Node] = set()
    out: dict[str, dict[str, int]] = {}
    for n in gm.graph.nodes:
        name = _op_name(n)
        if name is None or name in _MOVES:
            continue
        acts = [a for a in torch.utils._pytree.tree_leaves((n.args, n.kwargs))
                if isinstance(a, torch.fx.Node) and a.op == "call_function"]
        if name in _FUSED_ACTS and len(acts) == 1 and acts[0] in int8:
            is8 = True  # counted with its producer below
        else:
            fused = len(n.users) == 1 and _op_name(next(iter(n.users))) in _FUSED_ACTS and to_q(next(iter(n.users)))
            is8 = bool(acts) and all(_is_q(a, "dequantize") for a in acts) and (to_q(n) or fused)
        if is8:
            int8.add(n)
        row = out.setdefault(name, {"int8": 0, "float": 0})
        row["int8" if is8 else "float"] += 1
    return dict(sorted(out.items()))


def float_kept_list(census: dict[str, dict[str, int]], kept_layers: Sequence[str]) -> list[str]:
    """The manifest's ``float_kept`` from an op census (:func:`op_precision`, ONNX's ``onnx_op_precision``): each op
    that is float at least once, with how many of its uses, then the layers the recipe kept float."""
    out = [f"{op} ({c['float']} of {c['int8'] + c['float']})" for op, c in census.items() if c["float"]]
    return out + [f"layer {k}" for k in kept_layers]


def measured_float_kept(gm: torch.fx.GraphModule, kept_layers: Sequence[str]) -> list[str]:
    """:func:`float_kept_list` of a converted PT2E graph."""
    return float_kept_list(op_precision(gm), kept_layers)


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

    ``rewrite`` (the XNNPACK rewrites of :mod:`udc.export.targets.rewrites`) runs before quantization, so the
    slices and views it introduces share their input's quantization parameters and stay inside the
    delegate. Activations are observed with the quantizer's histogram observers (per tensor), weights
    with per-channel min/max, one calibration face at a time. Calibrating again on the same ``samples``
    object restores the observers from :class:`~udc.export.quant.observer_cache.ObserverCache` when it
    knows them all, and calibrates only the unknown ones otherwise (the known restored and silenced);
    conversion reuses the histogram range searches already done. ``fold_weights=False`` keeps each int8 weight
    as a float ``quantize -> dequantize`` pair instead of an int8 constant (the same numbers; OpenVINO's
    frontend needs the pair). ``quantize_outputs=False`` drops the quantizer's output activation spec: an
    op's inputs are quantized, its output stays float unless the next op asks for int8 (OpenVINO's
    low-precision passes run an int8 GEMM from quantized inputs; a requantized output is one more op there).
    """

    def __init__(self, module: torch.nn.Module, example: tuple, rewrite=None, fold_weights: bool = True,
                 quantize_outputs: bool = True):
        self.gm = _graph(module, example, rewrite)
        self.fold_weights = fold_weights
        self.quantize_outputs = quantize_outputs
        self.cache = ObserverCache()  # the observers of the faces in ``self._samples``
        self._samples: object = None

    def layer_paths(self) -> list[str]:
        """Module paths of the linear/conv calls, in graph order (one entry per module)."""
        return list(dict.fromkeys(module_path(n) for n in gemm_nodes(self.gm)))

    def calibrate(self, recipe: str, samples: Iterable[tuple], kept_paths: Iterable[str] = (),
                  parts: dict[str, tuple[str, Sequence[str]]] | None = None) -> tuple[torch.fx.GraphModule, list[str]]:
        """Prepare ``recipe`` (``parts``: the per-component recipes of :data:`PER_COMPONENT`) and calibrate it on
        ``samples`` (or restore its observers from the cache); ``(prepared, float-kept layers)``."""
        import copy

        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

        gm = copy.deepcopy(self.gm)
        if recipe == PER_COMPONENT:
            if not parts:
                raise ValueError(f"{PER_COMPONENT} needs the components' recipes (parts)")
            keep, kept_layers = composed_filter(parts, gm)
        else:
            keep, kept_layers = recipe_filter(recipe, gm, kept_paths)
        config = get_symmetric_quantization_config(is_per_channel=True)
        if not self.quantize_outputs:
            config = dataclasses.replace(config, output_activation=None)
        quantizer = (XNNPACKQuantizer() if keep is None else _FilteredQuantizer(keep)).set_global(config)
        prepared = prepare_pt2e(gm, quantizer)
        same = samples is self._samples
        if same and self.cache.restore(prepared):  # same faces, every observer known
            return prepared, kept_layers
        partial = same and self.cache.restore_known(prepared) > 0
        try:
            with torch.no_grad(), torch_threads(1):
                for args in samples:
                    prepared(*args)
        finally:
            self.cache.unsilence(prepared)
        if not same:
            self.cache, self._samples = ObserverCache(), samples
        self.cache.partial += partial
        self.cache.store(prepared)
        return prepared, kept_layers

    def convert(self, prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        self.cache.memoize_search(prepared)
        return convert_pt2e(prepared, fold_quantize=self.fold_weights)


@dataclass
class Candidate:
    recipe: str
    metrics: dict[str, Any]  # {"component": {...}, "end_to_end": {...}}
    passed: bool
    failures: list[str]


#: Components chained on the phone (LRDif; DDAMFN is 1); each gets an equal share of the end-to-end error budget.
CHAINED = 4


def selection_thresholds(quant: str | dict[str, Any] = "int8", chained: int = CHAINED) -> dict[str, float]:
    """What one component's candidate must meet (on the calibration faces, only that component quantized) so
    that the four chained int8 components still meet :data:`THRESHOLDS`: a ``1/chained`` share of the
    allowed cosine loss and top-1 flips each (int8: cosine >= 0.9975, top-1 >= 99.25 %). Measured: with the
    plain thresholds per component, ONNX all-int8 components that each passed chained to 97.0 %.

    ``quant``: a mode of :data:`THRESHOLDS`, or the bundle's own end-to-end thresholds (a dict with ``cosine``
    and ``top1``, e.g. :func:`int8_thresholds` with ``udc-export --int8-top1``)."""
    t = quant if isinstance(quant, dict) else THRESHOLDS[quant]
    return {"cosine": 1.0 - (1.0 - t["cosine"]) / chained, "top1": 1.0 - (1.0 - t["top1"]) / chained}


def int8_thresholds(top1: float | None = None) -> dict[str, Any]:
    """The int8 bundle's end-to-end thresholds: :data:`THRESHOLDS` ``["int8"]`` with ``top1`` raised to
    ``top1`` (``udc-export --int8-top1``); never loosened: a ``top1`` below the mode's, above 1 or not a
    finite number is a ``ValueError``."""
    t = {"mode": "int8", **THRESHOLDS["int8"]}
    if top1 is None:
        return t
    if not (t["top1"] <= top1 <= 1.0):  # written so that NaN fails
        raise ValueError(f"int8 top-1 agreement target {top1!r}: must be between the int8 default {t['top1']} and 1")
    return {**t, "top1": float(top1)}


def candidate_passes(metrics: dict[str, Any], quant: str | dict[str, Any] = "int8", margin_aware: bool = False,
                     chained: int = CHAINED) -> tuple[bool, list[str]]:
    t = selection_thresholds(quant, chained)
    fails = []
    comp, e2e = metrics["component"], metrics["end_to_end"]
    # written as `not (x >= thr)` so that a NaN metric fails
    if not (comp["cosine"] >= t["cosine"]):
        fails.append(f"component cosine {comp['cosine']:.5f} < {t['cosine']:.4f}")
    if not (e2e["cosine"] >= t["cosine"]):
        fails.append(f"end-to-end cosine {e2e['cosine']:.5f} < {t['cosine']:.4f}")
    key = "top1_agreement_margin_aware" if margin_aware else "top1_agreement"
    if not (e2e[key] >= t["top1"]):
        fails.append(f"end-to-end {'margin-aware ' if margin_aware else ''}top-1 {e2e[key]:.4f} < {t['top1']:.4f}")
    return not fails, fails


def choose_recipe(evaluate: Callable[[str, Sequence[str]], dict[str, Any]], recipes: Sequence[str] = RECIPES,
                  quant: str | dict[str, Any] = "int8", ranking: Callable[[], list[tuple[str, float]]] | None = None,
                  n_layers: int = 0, log=lambda s: None, chained: int = CHAINED, hint=None,
                  rejected: dict[str, list[str]] | None = None,
                  complete: Callable[[str, Sequence[str]], dict[str, Any]] | None = None
                  ) -> tuple[str | None, list[Candidate], dict[str, Any]]:
    """Score ``recipes`` with ``evaluate(recipe, kept_paths) -> {"component", "end_to_end"}``; if none passes
    and a ``ranking`` (most sensitive layer first) is given, try keeping the top K layers float.

    The choice: the first candidate meeting the thresholds; else (the reference's logits are nearly
    tied, so top-1 flips at ties whatever stays float) among those meeting them with the margin-aware
    top-1, the one with the best plain top-1 (said so in ``extra["basis"]``; measured on the trained tiny
    demo checkpoint: the first such, gemm-int8, chained to 96.4 % end-to-end top-1 on held-out faces while
    4 sensitive layers kept float scored 99.2 % on the calibration faces); else the best end-to-end cosine. Returns the chosen recipe,
    every candidate's scores, and ``{"ranking", "kept", "basis", "hint"}``. ``quant``: the thresholds a
    component's share is taken of (:func:`selection_thresholds`).

    ``hint`` (a :class:`udc.export.quant.recipe_hints.RecipeHint`, ``--recipes-from``) is scored first; if it
    meets the thresholds it is the choice and nothing else is scored. If it misses, it is left out of the
    candidates (its scores go in ``extra["hint"]``) and the search runs as without it.

    ``rejected`` (recipe -> why): recipes whose *lowered* program missed (ExecuTorch checks each lowered program
    on the calibration faces). They count as failing whatever their simulation scored, so the search goes on past
    them exactly as past a simulation miss, and no fallback picks them; with every candidate rejected the choice
    is ``None``. Calling again with a longer ``rejected`` re-scores what was scored before, so ``evaluate``
    should remember its answers (the exporters' do).

    ``evaluate`` may stop scoring a candidate once its top-1 cannot reach the threshold (its metrics then hold
    ``stopped``: ExecuTorch's :func:`~udc.export.targets.executorch_export.scored_until_failed`). Such a candidate
    fails whatever the other faces score; when nothing passes, the choice between failing candidates needs their
    scores on every face, so each stopped one is scored again by ``complete(recipe, kept_paths)`` first.
    """
    rejected = rejected or {}
    cands: list[Candidate] = []
    extra: dict[str, Any] = {"ranking": None, "kept": {}, "basis": "thresholds", "hint": None}

    def judged(r: str, m: dict[str, Any]) -> Candidate:
        ok, fails = candidate_passes(m, quant, chained=chained)
        if "stopped" in m:
            ok, fails = False, fails + [m["stopped"]]
        if r in rejected:
            ok, fails = False, fails + [f"its lowered program missed ({'; '.join(rejected[r])})"]
        return Candidate(r, m, ok, fails)

    def add(r: str, kept: Sequence[str]) -> Candidate:
        c = judged(r, evaluate(r, kept))
        cands.append(c)
        return c

    if hint is not None:
        c = add(hint.recipe, hint.kept_paths)
        extra["hint"] = {**hint.record(), "passed": c.passed, "failures": c.failures,
                         "component": rounded(c.metrics["component"]), "end_to_end": rounded(c.metrics["end_to_end"])}
        if c.passed:
            if hint.kept_paths:
                extra["kept"][hint.recipe] = list(hint.kept_paths)
            extra["basis"] = f"thresholds (the recipe {hint.source} chose, tried first: --recipes-from)"
            return hint.recipe, cands, extra
        cands.clear()  # a missed hint is not a candidate: the search below runs as without it
        log(f"  the recipe from {hint.source} ({hint.recipe}) missed here ({'; '.join(c.failures)}): the full search")

    def margin_ok(c: Candidate) -> bool:
        return c.recipe not in rejected and candidate_passes(c.metrics, quant, margin_aware=True, chained=chained)[0]

    for r in recipes:  # most int8 first; stop at the first that meets the thresholds
        if add(r, ()).passed:
            break
    if not any(c.passed for c in cands) and ranking is not None and n_layers > 1:
        ranked = ranking()
        extra["ranking"] = [{"layer": p, "one_minus_cosine": float(f"{v:.4g}")} for p, v in ranked[:12]]
        log("  sensitivity (1 - end-to-end cosine, one layer int8): " +
            ", ".join(f"{p} {v:.2g}" for p, v in ranked[:5]))
        k, limit = 1, max(1, n_layers // 4)
        while k <= limit:
            r = sensitive_recipe(k)
            extra["kept"][r] = [p for p, _ in ranked[:k]]
            c = add(r, extra["kept"][r])
            if c.passed:
                break
            k = k * 2 if k * 2 <= limit or k == limit else limit
    passing = [c for c in cands if c.passed]
    if passing:
        return passing[0].recipe, cands, extra
    if complete is not None:  # choosing between failing candidates: on every face
        for i, c in enumerate(cands):
            if "stopped" in c.metrics:
                cands[i] = judged(c.recipe, complete(c.recipe, extra["kept"].get(c.recipe, ())))
    tied = [c for c in cands if margin_ok(c)]
    if tied:  # of those, the best plain top-1 (the first, i.e. the most int8, among equals)
        extra["basis"] = "margin-aware top-1 (the plain top-1 threshold is unreachable: near-tied reference logits)"
        best = max(c.metrics["end_to_end"]["top1_agreement"] for c in tied)
        return next(c for c in tied if c.metrics["end_to_end"]["top1_agreement"] == best).recipe, cands, extra
    extra["basis"] = "best end-to-end cosine (no recipe met the thresholds)"
    left = [c for c in cands if c.recipe not in rejected]
    if not left:
        return None, cands, extra
    return max(left, key=lambda c: c.metrics["end_to_end"]["cosine"]).recipe, cands, extra

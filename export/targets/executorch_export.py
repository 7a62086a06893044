"""ExecuTorch: ``torch.export`` -> (int8: PT2E) -> ``to_edge_transform_and_lower`` -> ``.pte`` + ``.bpte``.

Backends: ``xnnpack`` (Android / host CPU; the graph is first rewritten so XNNPACK takes it whole,
:mod:`udc.export.targets.rewrites`), ``coreml`` (iOS; lowers here, runs only on Apple platforms:
"CoreMLBackend is not registered" in the Linux runtime), ``openvino`` (Intel CPUs, int8 only: the
delegate compiles each program for OpenVINO's CPU plugin at export and the runtime imports it; the PT2E
graph keeps its weights as float ``quantize -> dequantize`` pairs, :data:`FOLD_WEIGHTS`) and ``portable``
(no delegate).

Every component also gets a BundledProgram (``.bpte``): the program plus reference inputs and
expected outputs, so a phone can check itself (``executorch.devtools.bundled_program``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from udc.sdk.models.components import LOGIT_COMPONENTS, Component, chain_of, component_modules
from udc.sdk.parity.metrics import ParityInputError, compare, rounded

from . import delegation, rewrites
from ..artifact import Artifact, host_runner, tensor_spec
from ..provenance import shared_provenance
from ..quant.recipe_hints import ComposedRecipe
from ..quant.recipes import (
    PER_COMPONENT,
    PT2E,
    RECIPES,
    candidate_passes,
    choose_recipe,
    describe,
    measured_float_kept,
    op_precision,
    selection_thresholds,
)
from ..quant.sensitivity import RANK_FACES, component_sensitivity
from ..quant.threads import torch_threads
from ..reference import ReferenceIO, downstream_logits, per_sample

COREML_NOT_HERE = ("CoreMLBackend is not registered in this host's ExecuTorch runtime: the .pte runs on iOS/macOS "
                   "only")


def _canonical(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype).copy_(t)


#: Whether PT2E's convert stores each backend's int8 weights as int8 constants. OpenVINO's PyTorch frontend
#: (2025.4) fails on them (an i8 tensor meets an f32 bias in ``aten.addmm`` / ``aten.convolution``) and takes
#: the unfolded ``quantize -> dequantize`` pairs, which its low-precision passes turn into int8 weights.
FOLD_WEIGHTS = {"openvino": False}
#: Whether an op's output is quantized too (XNNPACK runs int8 chains op to op). OpenVINO takes quantized inputs
#: and requantizes only where the next op asks: without output specs its programs ran 10-13 % faster (measured:
#: docs/measured-facts.md).
QUANTIZE_OUTPUTS = {"openvino": False}
#: The recipe order of each backend's search (the first that passes wins). OpenVINO's CPU plugin ran the
#: gemm-int8 program faster than the all-int8 one (measured: docs/measured-facts.md), XNNPACK the other way.
BACKEND_RECIPES = {"openvino": ("gemm-int8", "all-int8", "gemm-int8-ends-float")}


def pt2e_for(module: torch.nn.Module, example: tuple, backend: str) -> PT2E:
    """The PT2E quantizer of ``module`` as ``backend`` takes it (XNNPACK: its rewrites first)."""
    return PT2E(module, example, rewrite=rewrites.decompose if backend == "xnnpack" else None,
                fold_weights=FOLD_WEIGHTS.get(backend, True), quantize_outputs=QUANTIZE_OUTPUTS.get(backend, True))


_MEASURED_WITH = {"xnnpack": "XnnpackBackend", "openvino": "OpenvinoBackend, OpenVINO's default inference precision"}


def partitioners(backend: str, quant: str) -> list:
    if backend == "openvino":
        from executorch.exir.backend.compile_spec_schema import CompileSpec

        try:
            from executorch.backends.openvino.partitioner import OpenvinoPartitioner
        except ImportError as e:  # the package imports nncf (its quantizer) and openvino
            from udc.sdk.errors import MissingDependencyError
            from udc.sdk.runtime.openvino_env import EXTRA

            raise MissingDependencyError(f"--backend openvino needs OpenVINO and NNCF ({e}): {EXTRA}") from e
        # "device" is the only spec: the runtime reads it as a C string, and a second spec's bytes right behind
        # it made the import fail (measured); CPU is the device this SDK measures.
        return [OpenvinoPartitioner([CompileSpec("device", b"CPU")])]
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    if backend == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        precision = ct.precision.FLOAT32 if quant == "fp32" else ct.precision.FLOAT16
        specs = CoreMLBackend.generate_compile_specs(minimum_deployment_target=ct.target.iOS17,
                                                     compute_precision=precision)
        return [CoreMLPartitioner(compile_specs=specs)]
    return []


def lower(ep: torch.export.ExportedProgram, backend: str, quant: str):
    """``(EdgeProgramManager after lowering, ExecutorchProgramManager)``."""
    from executorch.exir import to_edge_transform_and_lower

    if backend == "xnnpack":
        ep = rewrites.for_xnnpack(ep)
    quiet = {"coreml": _quiet_coreml, "openvino": _quiet_openvino}.get(backend, contextlib.nullcontext)
    with quiet():
        edge = to_edge_transform_and_lower(ep, partitioner=partitioners(backend, quant) or None)
    return edge, edge.to_executorch()


@contextlib.contextmanager
def _quiet_openvino():
    """The OpenVINO partitioner prints every op it leaves out ("Op not supported: ..."): the delegation report says
    the same (:mod:`udc.export.targets.delegation`)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _quiet_coreml():
    """The Core ML partitioner logs every skipped placeholder and coremltools draws progress bars."""
    names = ("executorch.backends.apple.coreml", "coremltools")
    levels = [logging.getLogger(n).level for n in names]
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for n, lv in zip(names, levels):
            logging.getLogger(n).setLevel(lv)


def write_bundled_program(et_program, cases: list[tuple[tuple, list[torch.Tensor]]], path: Path) -> None:
    from executorch.devtools import BundledProgram
    from executorch.devtools.bundled_program.config import MethodTestCase, MethodTestSuite
    from executorch.devtools.bundled_program.serialize import serialize_from_bundled_program_to_flatbuffer

    suite = MethodTestSuite("forward", [MethodTestCase(inputs=list(i), expected_outputs=list(o)) for i, o in cases])
    path.write_bytes(serialize_from_bundled_program_to_flatbuffer(BundledProgram(et_program, [suite])))


#: How many candidates an int8 export lowers and runs at most. Lowering an int8 program to XNNPACK takes minutes
#: (measured: 4.6-7.8 min per fused ``fer`` program on 2 cores). A candidate that failed the simulation is not
#: expected to pass once lowered (measured in the issue-16 ``fer`` and ``mobile`` export logs: every lowered
#: program within 1e-4 cosine of its simulation; the misses were single top-1 flips on 128 faces), so only
#: simulation passes are lowered, and the best lowered one is kept when none holds; the bundle's end-to-end
#: parity check then reports it.
MAX_LOWERED = 2


def lowering_order(chosen: str, cands, limit: int = MAX_LOWERED) -> list[str]:
    """The recipes an int8 export lowers first, in order: ``chosen`` (even when nothing passed the simulation),
    then the other candidates that passed it; at most ``limit``."""
    order = [chosen] + [c.recipe for c in cands if c.passed and c.recipe != chosen]
    return order[:max(1, limit)]


@dataclass
class LoweredCheck:
    """One lowered program run on the calibration faces."""
    recipe: str
    passed: bool  # met the component's share of the bundle's thresholds (nothing passing: matched its simulation)
    alone: bool  # met the bundle's whole thresholds by itself (the other components at float)
    failures: list[str]
    program: Any = None  # what lowering made (kept for the best one)
    metrics: dict[str, Any] | None = None  # its scores (None: not run here, Core ML)

    @property
    def score(self) -> tuple[bool, float]:
        """``(passed, end-to-end cosine)``: the best lowered program has the largest (not run here: cosine 1)."""
        return self.passed, 1.0 if self.metrics is None else self.metrics["end_to_end"]["cosine"]


def lower_in_turn(search: Callable[[dict[str, list[str]]], tuple[str | None, list, dict[str, Any]]],
                  lower_check: Callable[[str, dict[str, Any]], LoweredCheck], limit: int = MAX_LOWERED,
                  log=lambda s: None, name: str = "") -> tuple[list[LoweredCheck], str | None, list, dict[str, Any]]:
    """Lower recipes until one holds, at most ``limit``: the simulation's choice and the other simulation passes
    (:func:`lowering_order`); then, if the last lowered program missed even the bundle's *whole* thresholds by
    itself (so the bundle cannot meet them, whatever the other components do), the search goes on in simulation
    past the recipes that missed once lowered (``search(rejected)``, :func:`udc.export.quant.recipes.choose_recipe`)
    and its next choice is lowered if it passes there (not a best-cosine fallback). A lowered program that misses
    only its share is kept when nothing else passed, as before: the others may use less than theirs, and the
    bundle's parity check says. A hinted choice that misses once lowered is not searched past here (the caller
    runs the full search without the hint).

    Returns ``(checks in order, the first choice, the last search's candidates, its extra)``."""
    rejected: dict[str, list[str]] = {}
    chosen, cands, extra = search(rejected)
    first = chosen
    order = lowering_order(chosen, cands, limit) if chosen is not None else []
    done: list[LoweredCheck] = []
    while order and len(done) < limit:
        chk = lower_check(order.pop(0), extra)
        done.append(chk)
        if chk.passed:
            break
        rejected[chk.recipe] = chk.failures
        hinted = extra.get("hint") is not None and extra["hint"].get("passed")
        if not order and not chk.alone and not hinted and len(done) < limit:
            log(f"  {name}: {chk.recipe}'s lowered program misses the bundle's thresholds by itself: the search "
                "goes on past it")
            chosen, cands, extra = search(rejected)
            tried = {d.recipe for d in done}
            if chosen is not None and chosen not in tried and not extra["basis"].startswith("best"):
                order = [chosen]
    return done, first, cands, extra


def _metrics(name: str, model, out: torch.Tensor, calib: ReferenceIO, logits: torch.Tensor | None = None
             ) -> dict[str, Any]:
    """The component's own scores and the end-to-end ones (``logits``: the chain finished from ``out``, when known)."""
    e2e = downstream_logits(model, name, out, calib) if logits is None else logits
    return {"component": compare(calib.output(name), out, logits=name in LOGIT_COMPONENTS),
            "end_to_end": compare(calib.tensors["logits"], e2e, logits=True)}


#: Faces a candidate is scored on between two looks at its top-1 flips (:func:`scored_until_failed`).
SCORE_CHUNK = 8


def near_tied_first(logits: torch.Tensor) -> list[int]:
    """Face indices by the reference's top-2 logit gap, smallest first (the faces a quantized program flips first)."""
    top2 = logits.topk(min(2, logits.shape[1]), dim=1).values
    gap = top2[:, 0] - top2[:, -1]
    return sorted(range(len(gap)), key=lambda i: (float(gap[i]), i))


def scored_until_failed(fn: Callable, name: str, model, calib: ReferenceIO, top1: float,
                        chunk: int = SCORE_CHUNK) -> dict[str, Any]:
    """A candidate's :func:`_metrics`, scoring the faces most near-tied first and stopping once its end-to-end top-1
    flips exceed what ``top1`` allows on all the faces: it fails then whatever the other faces do, and a failing
    candidate of the search is not chosen on its scores (a search where nothing passes completes them,
    :func:`udc.export.quant.recipes.choose_recipe`). A stopped candidate's scores are those of the faces scored
    (their ``n``), with ``stopped`` saying how many of how many and why. A non-finite row counts as a flip.
    Scored to the end, the metrics are :func:`_metrics` of every face in the set's order."""
    n = len(calib)
    if n == 0:  # nothing scored is not a pass (compare() says the same of empty outputs)
        raise ParityInputError("nothing to compare: no calibration faces to score the candidate on")
    allowed = int((1.0 - top1) * n + 1e-9)  # flips the threshold allows on all n faces
    ref_top = calib.tensors["logits"].argmax(1)
    order = near_tied_first(calib.tensors["logits"])
    outs: dict[int, torch.Tensor] = {}
    logits: dict[int, torch.Tensor] = {}
    flips = 0
    for start in range(0, n, chunk):
        idx = order[start:start + chunk]
        faces = calib.take(idx)
        with torch_threads(1):  # the PT2E module's tiny kernels (docs/int8-recipes.md); the float chain after it batched
            part = per_sample(fn, faces, name)
        lg = downstream_logits(model, name, part, faces)
        for j, i in enumerate(idx):
            outs[i], logits[i] = part[j:j + 1], lg[j:j + 1]
        bad = ~torch.isfinite(lg).all(1)
        flips += int(((lg.argmax(1) != ref_top[idx]) | bad).sum())
        done = start + len(idx)
        if flips > allowed and done < n:
            sub = calib.take(order[:done])
            m = _metrics(name, model, torch.cat([outs[i] for i in order[:done]]), sub,
                         torch.cat([logits[i] for i in order[:done]]))
            m["stopped"] = (f"scored on {done} of {n} faces, most near-tied first: {flips} top-1 flip(s), more than "
                            f"the {allowed} that {100 * top1:.2f} % allows on {n}")
            return m
    return _metrics(name, model, torch.cat([outs[i] for i in range(n)]), calib,
                    torch.cat([logits[i] for i in range(n)]))


def _int8_search(comp: Component, model, example: tuple, calib: ReferenceIO, backend: str, log, hint=None,
                 thresholds: dict[str, Any] | None = None):
    """The recipe search on the calibration faces with the PT2E modules (int8 simulated in PyTorch); a ``hint``
    (``--recipes-from``) is scored first and, if it passes, alone.

    Returns ``(search, converted)``: ``search(rejected) -> (chosen, candidates, extra)`` runs
    :func:`~udc.export.quant.recipes.choose_recipe` past the ``rejected`` recipes (each recipe is calibrated and
    scored once, the sensitivity ranking run once, however often it is called; the hint is offered to the first
    call only); ``converted`` maps each scored recipe to its converted module and float-kept layers.
    """
    name = comp.name
    samples = [calib.sample(name, i) for i in range(len(calib))]
    q = pt2e_for(comp.module, example, backend)
    converted: dict[str, tuple[torch.fx.GraphModule, list[str]]] = {}
    scored: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    ranked: list = []

    top1 = selection_thresholds(thresholds or "int8", chained=len(chain_of(model)))["top1"]

    def evaluate(recipe: str, kept_paths, complete: bool = False) -> dict[str, Any]:
        key = (recipe, tuple(kept_paths))
        if key in scored and not (complete and "stopped" in scored[key]):
            return scored[key]
        t0 = time.perf_counter()
        if key in scored:  # a stopped candidate, now scored on every face
            cq = converted[recipe][0]
        else:
            prepared, kept = q.calibrate(recipe, samples, kept_paths)
            cq = q.convert(prepared)
            converted[recipe] = (cq, kept)
        with torch.no_grad():
            if complete:
                with torch_threads(1):
                    out = per_sample(cq, calib, name)
                m = _metrics(name, model, out, calib)
            else:
                m = scored_until_failed(cq, name, model, calib, top1)
        scored[key] = m
        e2e = m["end_to_end"]
        log(f"  {name}: {recipe}: cos {m['component']['cosine']:.5f}, end-to-end top-1 "
            f"{100 * e2e['top1_agreement']:.1f}% cos {e2e['cosine']:.5f}"
            + (f" on {e2e['n']} of {len(calib)} faces (stopped: top-1 fails)" if "stopped" in m else "")
            + f" (PT2E in PyTorch, {time.perf_counter() - t0:.1f} s)")
        return m

    def ranking():
        if not ranked:
            ranked.append(component_sensitivity(model, name, comp.module, q.layer_paths(), calib))
        return ranked[0]

    paths = q.layer_paths()
    if hint is not None:
        hint.check_layers(name, paths)
    calls = []

    def search(rejected: dict[str, list[str]]):
        calls.append(1)
        return choose_recipe(evaluate, BACKEND_RECIPES.get(backend, RECIPES), quant=thresholds or "int8",
                             ranking=ranking, n_layers=len(paths),
                             log=log, chained=len(chain_of(model)), hint=hint if len(calls) == 1 else None,
                             rejected=rejected, complete=lambda r, kept: evaluate(r, kept, complete=True))

    return search, converted


def _export_int8(comp: Component, model, example: tuple, calib: ReferenceIO, backend: str, names: list[str],
                 path: Path, threads: int | None, log, hint=None, thresholds: dict[str, Any] | None = None):
    """Lower the chosen recipe and check the lowered program itself on the calibration faces; if it misses
    what the PyTorch simulation met (a kernel that computes differently), try the next recipe
    (:func:`lower_in_turn`). A ``hint`` that passed in simulation but not once lowered: the full search, as
    without it. ``thresholds``: the bundle's end-to-end int8 thresholds (default
    :data:`~udc.sdk.parity.metrics.THRESHOLDS` ``["int8"]``), of which each component gets its share."""
    search, converted = _int8_search(comp, model, example, calib, backend, log, hint, thresholds)
    chained = len(chain_of(model))
    quant = thresholds or "int8"
    sims: dict[str, Any] = {}

    def lower_check(recipe: str, extra: dict[str, Any]) -> LoweredCheck:
        cq, _ = converted[recipe]
        edge, et = lower(torch.export.export(cq, example, strict=False), backend, "int8")
        if backend == "coreml":  # cannot run here: trust the simulation
            return LoweredCheck(recipe, True, True, [], (edge, et))
        path.write_bytes(et.buffer)
        run = host_runner(path, names, threads)
        m = _metrics(comp.name, model, per_sample(run, calib, comp.name), calib)
        margin_aware = extra["basis"].startswith("margin-aware")
        ok, fails = candidate_passes(m, quant=quant, margin_aware=margin_aware, chained=chained)
        alone = candidate_passes(m, quant=quant, margin_aware=margin_aware, chained=1)[0]
        if extra["basis"].startswith("best"):  # nothing passes: the lowered program must match its simulation
            sim = next(c for c in sims["cands"] if c.recipe == recipe)
            ok = m["end_to_end"]["cosine"] >= sim.metrics["end_to_end"]["cosine"] - 0.005
        log(f"  {comp.name}: {recipe} lowered: cos {m['component']['cosine']:.5f}, end-to-end top-1 "
            f"{100 * m['end_to_end']['top1_agreement']:.1f}% cos {m['end_to_end']['cosine']:.5f}"
            + ("" if ok else " -> trying the next recipe"))
        return LoweredCheck(recipe, ok, alone, fails, (edge, et), m)

    basis_of: dict[str, str] = {}  # each chosen recipe -> the basis it was chosen on

    def tracked(rejected):
        chosen, cands, extra = search(rejected)
        sims["cands"] = cands
        basis_of.setdefault(chosen, extra["basis"])
        return chosen, cands, extra

    checks, first, cands, extra = lower_in_turn(tracked, lower_check, MAX_LOWERED, log, comp.name)
    lowered = [{"recipe": c.recipe, "passed": c.passed, "failures": c.failures,
                "component": rounded(c.metrics["component"]), "end_to_end": rounded(c.metrics["end_to_end"])}
               for c in checks if c.metrics is not None]
    hinted = extra["hint"]
    if hinted is not None and hinted["passed"] and backend != "coreml" and not (lowered and lowered[-1]["passed"]):
        log(f"  {comp.name}: the recipe from {hint.source} ({hint.recipe}) missed once lowered: the full search")
        edge, et, record = _export_int8(comp, model, example, calib, backend, names, path, threads, log,
                                        thresholds=thresholds)
        record["recipe_hint"] = {**hinted, "lowered_check": lowered[-1] if lowered else None}
        return edge, et, record
    best = max(checks, key=lambda c: c.score)  # the first among equals
    recipe, (edge, et) = best.recipe, best.program
    path.write_bytes(et.buffer)
    basis = basis_of.get(recipe, extra["basis"])
    if backend == "coreml":
        why = "chosen in the PyTorch simulation (the lowered program cannot run on this host)"
    elif recipe == first and best.passed:
        why = f"chosen on {basis}, confirmed by running the lowered program on the calibration faces"
    elif best.passed:
        why = (f"the simulation's choice {first} did not hold once lowered; {recipe}, chosen next on {basis}, "
               "held once lowered")
    elif recipe == first:
        why = (f"chosen on {basis}; its lowered program missed the check on the calibration faces and no "
               f"other recipe lowered (at most {MAX_LOWERED}: simulation passes, and past a lowered program that "
               "misses the bundle's thresholds by itself, the search's next choice) did better, so it is kept: "
               "the bundle's parity report says how it does end to end")
    else:
        why = (f"the simulation's choice {first} did not hold once lowered; {recipe} is the best lowered "
               "program")
    record = {
        "recipe": recipe,
        "description": describe(recipe),
        "float_kept": measured_float_kept(*converted[recipe]),
        "op_precision": op_precision(converted[recipe][0]),
        "basis": basis,
        "sensitivity_ranking": extra["ranking"],
        "sensitivity_faces": None if extra["ranking"] is None else min(RANK_FACES, len(calib)),
        "candidates": [{"recipe": c.recipe, "passed": c.passed, "failures": c.failures,
                        "component": rounded(c.metrics["component"]), "end_to_end": rounded(c.metrics["end_to_end"])}
                       for c in cands],
        "lowered_checks": lowered,
        "decision": f"{recipe}: {why}",
        "recipe_hint": hinted,
    }
    return edge, et, record


def _export_int8_composed(comp: Component, model, example: tuple, calib: ReferenceIO, backend: str, names: list[str],
                          path: Path, threads: int | None, log, composed: ComposedRecipe,
                          thresholds: dict[str, Any] | None = None):
    """The fused ``pipeline`` quantized as the four programs were (:data:`~udc.export.quant.recipes.PER_COMPONENT`):
    calibrated once, lowered once, and run on the calibration faces, where it must meet the bundle's whole int8
    thresholds (it is the whole chain). If it misses, the pipeline's own recipe search (:func:`_export_int8`) runs as
    before and the record says why."""
    t0 = time.perf_counter()
    where = {id(m): n for n, m in comp.module.named_modules()}
    mods = component_modules(model)
    parts = {where[id(mods[c])]: (recipe, kept) for c, recipe, kept in composed.parts}
    samples = [calib.sample(comp.name, i) for i in range(len(calib))]
    q = pt2e_for(comp.module, example, backend)
    prepared, kept = q.calibrate(PER_COMPONENT, samples, parts=parts)
    cq = q.convert(prepared)
    with torch.no_grad(), torch_threads(1):
        sim = _metrics(comp.name, model, per_sample(cq, calib, comp.name), calib)
    edge, et = lower(torch.export.export(cq, example, strict=False), backend, "int8")
    path.write_bytes(et.buffer)
    m = _metrics(comp.name, model, per_sample(host_runner(path, names, threads), calib, comp.name), calib)
    ok, fails = candidate_passes(m, quant=thresholds or "int8", chained=1)
    what = ", ".join(f"{c} {r}" for c, r, _ in composed.parts)
    log(f"  {comp.name}: {PER_COMPONENT} ({what}) lowered: top-1 {100 * m['end_to_end']['top1_agreement']:.1f}% "
        f"cos {m['end_to_end']['cosine']:.5f} on the calibration faces ({time.perf_counter() - t0:.1f} s)"
        + ("" if ok else f"; missed ({'; '.join(fails)}): the pipeline's own recipe search"))
    scores = {"component": rounded(m["component"]), "end_to_end": rounded(m["end_to_end"])}
    if not ok:
        edge, et, record = _export_int8(comp, model, example, calib, backend, names, path, threads, log,
                                        thresholds=thresholds)
        record["composed"] = {"parts": composed.record(), "passed": False, "failures": fails, **scores}
        return edge, et, record
    return edge, et, {
        "recipe": PER_COMPONENT,
        "description": "each component's part of the fused graph quantized with the recipe its own program in this "
                       f"bundle chose ({what}); the glue between them float",
        "parts": composed.record(),
        "float_kept": measured_float_kept(cq, kept),
        "op_precision": op_precision(cq),
        "basis": "composed from the four programs' recipes, confirmed by running the lowered pipeline on the "
                 "calibration faces against the bundle's whole thresholds",
        "sensitivity_ranking": None,
        "sensitivity_faces": None,
        "candidates": [{"recipe": PER_COMPONENT, "passed": candidate_passes(sim, quant=thresholds or "int8",
                                                                            chained=1)[0],
                        "component": rounded(sim["component"]), "end_to_end": rounded(sim["end_to_end"])}],
        "lowered_checks": [{"recipe": PER_COMPONENT, "passed": True, "failures": [], **scores}],
        "decision": f"{PER_COMPONENT}: composed from the four programs' recipes; the lowered pipeline met the "
                    "bundle's thresholds on the calibration faces",
        "recipe_hint": None,
    }


def export_component(comp: Component, model, backend: str, quant: str, out_dir: Path,
                     calib: ReferenceIO | None, bundled: ReferenceIO, n_cases: int = 2,
                     threads: int | None = 2, log=lambda s: None, hint=None,
                     thresholds: dict[str, Any] | None = None) -> Artifact:
    """``comp`` to ``out_dir/NAME.pte`` + ``.bpte`` (int8: the recipe search, :func:`_export_int8`, against
    ``thresholds``). The torch.fx provenance records are shared, not deep-copied, throughout
    (:mod:`udc.export.provenance`: the same bytes, measured faster)."""
    with shared_provenance():
        return _export_component(comp, model, backend, quant, out_dir, calib, bundled, n_cases, threads, log, hint,
                                 thresholds)


def _export_component(comp: Component, model, backend: str, quant: str, out_dir: Path,
                      calib: ReferenceIO | None, bundled: ReferenceIO, n_cases: int, threads: int | None, log,
                      hint, thresholds: dict[str, Any] | None = None) -> Artifact:
    t0 = time.perf_counter()
    example = tuple(_canonical(v) for v in comp.inputs.values())
    names = list(comp.inputs)
    qrecord: dict[str, Any] = {"mode": quant}
    fname = f"{comp.name}.pte"
    path = out_dir / fname
    if quant == "int8":
        if calib is None:
            raise ValueError("int8 needs calibration faces")
        if isinstance(hint, ComposedRecipe):
            edge, et, rec = _export_int8_composed(comp, model, example, calib, backend, names, path, threads, log,
                                                  hint, thresholds)
        else:
            edge, et, rec = _export_int8(comp, model, example, calib, backend, names, path, threads, log, hint,
                                         thresholds)
        qrecord.update(rec)
    else:
        edge, et = lower(torch.export.export(comp.module, example, strict=False), backend, quant)
        path.write_bytes(et.buffer)
    report = delegation.report(edge.exported_program(), backend)

    runner, measured, skip = None, None, None
    if backend == "coreml":
        skip = COREML_NOT_HERE
    else:
        runner = host_runner(path, names, threads)
        measured = f"executorch runtime ({_MEASURED_WITH.get(backend, 'portable kernels')}, host CPU)"

    # bundled test cases: held-out faces; expected = PyTorch reference (float), or this program's own
    # host output for int8 (what the phone's int8 kernels should reproduce within a rounding step)
    cases = []
    for i in range(min(n_cases, len(bundled))):
        args = bundled.sample(comp.name, i)
        if quant == "int8" and runner is not None:
            expected = [torch.as_tensor(o) for o in runner(*args)]
        else:
            with torch.no_grad():
                o = comp.module(*args)
            expected = [o] if isinstance(o, torch.Tensor) else list(o)
        cases.append((args, expected))
    bpte = f"{comp.name}.bpte"
    write_bundled_program(et, cases, out_dir / bpte)
    scale = max(1.0, max(float(e.abs().max()) for _, es in cases for e in es)) if cases else 1.0
    tol = {"fp32": 1e-4, "int8": 2e-2}.get(quant, 2e-2)
    bp = {"file": bpte, "test_cases": len(cases),
          "expected_outputs": ("host ExecuTorch run of this int8 program" if quant == "int8" and runner is not None
                               else "PyTorch float32 reference"),
          "atol": float(f"{tol * scale:.3g}"), "rtol": tol}

    outputs = [tensor_spec(o, t) for o, t in zip(comp.outputs, _outputs(comp.module, example))]
    return Artifact(
        component=comp.name, file=fname, format="pte",
        inputs=[tensor_spec(n, t) for n, t in zip(names, example)], outputs=outputs,
        quantization=qrecord, delegation=report, runner=runner, measured_with=measured, skip_reason=skip,
        bundled_program=bp, seconds=time.perf_counter() - t0,
    )


@torch.no_grad()
def _outputs(module: torch.nn.Module, example: tuple) -> list[torch.Tensor]:
    o = module(*example)
    return [o] if isinstance(o, torch.Tensor) else list(o)

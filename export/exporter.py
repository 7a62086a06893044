"""One export, start to finish: model -> faces -> components -> files -> parity -> manifest -> bundle.

    result = run_export(ExportRequest(checkpoint="lrdif.pt", target="executorch", quant="int8",
                                      output="face.udc"))
    print(result.summary_table())

The bundle directory is written atomically (:class:`udc.sdk.runtime.bundle.BundleWriter`): on any error
nothing is left on disk, and an existing bundle is refused unless ``force``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from udc.sdk.runtime.bundle import BundleWriter
from udc.sdk.models.checkpoint import file_sha256, load_checkpoint
from udc.sdk.models.components import LOGIT_COMPONENTS, Component, chain_of, family_of, on_device_components
from udc.sdk.models.registry import FAMILIES, config_names, random_init_model
from udc.sdk.parity.metrics import MIN_FACES, THRESHOLDS, check, compare, rounded, summary, thresholds_for
from udc.sdk.console.table import format_table

from . import bundle_writer
from .quant import fp16
from .artifact import Artifact, host_runner
from .quant.calibration import calibration_sets
from .options import resolve
from .parallel import export_parallel, parallel_reason
from .quant.recipes import int8_thresholds, selection_thresholds
from .reference import INPUTS, OUTPUT, ReferenceIO, downstream_logits, per_sample, reference_io

LOGITS = LOGIT_COMPONENTS


@dataclass
class ExportRequest:
    output: str | Path
    target: str
    checkpoint: str | Path | None = None
    config: str | None = None  # with no checkpoint: a fresh random-init model of this config
    family: str | None = None  # with no checkpoint: "lrdif" (default) or "ddamfn"; with one: must match it
    backend: str | None = None
    quant: str | None = None
    calib: str | Path | None = None
    calib_n: int = 256
    eval_n: int = 224
    fuse: bool = False
    force: bool = False
    seed: int = 0
    threads: int = 2
    bundled_cases: int = 2
    #: export only these components (debugging, tests): the bundle is marked ``partial`` and apps refuse it
    components: tuple[str, ...] | None = None
    #: an earlier int8 bundle of the same model config: each component's recipe search starts from its recipe
    #: (:mod:`udc.export.quant.recipe_hints`)
    recipes_from: str | Path | None = None
    #: components exported side by side in this many worker processes (:mod:`udc.export.parallel`); 1: in turn
    jobs: int = 1
    #: int8: the end-to-end top-1 agreement the bundle must reach (None: the int8 default, 0.97); the recipe
    #: search gives each chained component its share of the allowed flips, and parity checks it (manifest)
    int8_top1: float | None = None


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    artifacts: list[Artifact]
    seconds: dict[str, float] = field(default_factory=dict)
    #: what the user must hear about even when the export succeeds (synthetic faces, a replaced good bundle)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.manifest["parity"]["passed"])

    def summary_rows(self) -> list[list[Any]]:
        m, rows = self.manifest, []
        par = m["parity"]
        for a in self.artifacts:
            comp = m["components"][a.component]
            d = comp["delegation"]
            p = par["components"][a.component]
            q = m["quant"] + (f" ({a.quantization['recipe']})" if a.quantization.get("recipe") else "")
            if a.quantization.get("compute_precision") == "float32" and m["quant"] != "fp32":
                q += " [fp32 compute]"
            rows.append([a.component, a.format, q, f"{comp['size_bytes'] / 1e6:.3f}",
                         f"{d['delegated_pct']:.1f}" if d else "-",
                         _cell(p), _verdict(p)])
        e2e = par["end_to_end"]
        total = sum(c["size_bytes"] for c in m["components"].values() if c["file"] and not c["file"].startswith("pipeline"))
        rows.append(["end-to-end", "-", m["quant"], f"{total / 1e6:.3f}", "-", _cell(e2e), _verdict(e2e)])
        return rows

    def summary_table(self) -> str:
        m = self.manifest
        inp = m["parity"]["inputs"]
        n = inp.get("n", "?")
        small = f" (too few to conclude: {MIN_FACES} needed)" if isinstance(n, int) and n < MIN_FACES else ""
        label = m.get("model", {}).get("label")
        title = (f"{self.path.name}{' (' + label + ')' if label else ''}: target {m['target']}, backend {m['backend']}, quant {m['quant']}; parity on "
                 f"{n} held-out {inp.get('kind', '')} faces{small} vs the PyTorch reference")
        return format_table(["component", "format", "quant", "size MB", "delegated %", "parity vs reference",
                             "result"], self.summary_rows(), title=title)


def _cell(p: dict[str, Any]) -> str:
    if p.get("metrics") is None:
        return "skipped"
    s = summary(p["metrics"])
    how = p.get("measured_with") or ""
    if how.startswith("torch"):
        s += " (emulated fp16)" if "fp16" in how.split("(")[0] else " (emulated float32)"
    return s


def _verdict(p: dict[str, Any]) -> str:
    return "-" if p.get("passed") is None else ("pass" if p["passed"] else "FAIL")


# ------------------------------------------------------------------------------------------ model
class ModelChoiceError(ValueError):
    """``--model``/``--config`` that do not fit each other or the checkpoint (a usage error)."""


def load_model(req: ExportRequest) -> tuple[Any, dict[str, Any], bool, str]:
    """``(model, source section, random_init, what to tell the user)``."""
    if req.family is not None and req.family not in FAMILIES:
        raise ModelChoiceError(f"unknown model family {req.family!r}; choose one of {', '.join(FAMILIES)}")
    if req.checkpoint is not None:
        model = load_checkpoint(req.checkpoint).eval()
        fam = family_of(model)
        if req.family is not None and req.family != fam:
            raise ModelChoiceError(f"{req.checkpoint} is a {fam} checkpoint, not {req.family}: drop --model "
                                   "(a checkpoint carries its family)")
        source = {"checkpoint": str(req.checkpoint), "checkpoint_sha256": file_sha256(req.checkpoint),
                  "random_init": False, "seed": None}
        extra = f", CLIP weights: {model.clip_source or 'random init'}" if fam == "lrdif" else ""
        note = f"checkpoint {req.checkpoint} ({fam}, config {model.cfg.name}{extra})"
        return model, source, False, note
    family = req.family or "lrdif"
    name = req.config or "tiny"
    if name not in config_names(family):
        raise ModelChoiceError(f"--config {name!r} is not a {family} config; {family} has "
                               f"{', '.join(config_names(family))}")
    model = random_init_model(family, name, req.seed)
    source = {"checkpoint": None, "checkpoint_sha256": None, "random_init": True, "seed": req.seed}
    note = (f"no checkpoint: a fresh random-init {family} '{name}' model (seed {req.seed}); its predictions mean "
            "nothing, the bundle exercises the export only")
    return model, source, True, note


# ------------------------------------------------------------------------------------------ parity
@dataclass
class Emulation:
    """How a component that cannot run here (Core ML off macOS) is emulated for its parity: the precision
    the package computes in and its weight compression (:func:`udc.export.quant.fp16.emulate`)."""
    module: torch.nn.Module
    precision: str  # "fp16" | "fp32"
    weights: str | None
    output: torch.Tensor | None = None  # the component's emulated output on the reference inputs, if known

    @property
    def label(self) -> str:
        return fp16.emulation_label(self.precision, self.weights)

    def run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return fp16.emulate(self.module, inputs, self.precision, self.weights)


def _weights(quant: str) -> str | None:
    return quant if quant in ("int8-weight", "int4-palettize") else None


def _precision_for(comp: Component, model, quant: str, ref: ReferenceIO, log) -> tuple[str, dict[str, Any], Emulation]:
    """Run the fp16 check; fp16 compute only if it passes (else fp32, recorded). Returns the precision, the
    check's record and how to emulate the component at that precision."""
    weights = _weights(quant)
    down = (lambda out: downstream_logits(model, comp.name, out, ref)) if comp.name not in LOGITS else None
    res = fp16.check(comp.module, ref.inputs(comp.name), ref.output(comp.name), weights=weights,
                     logits=comp.name in LOGITS, downstream=down, reference_logits=ref.tensors["logits"])
    out16 = res.pop("emulated_output")
    if quant == "fp32":
        return "fp32", res, Emulation(comp.module, "fp32", weights)
    if not res["passed"]:
        log(f"  {comp.name}: fp16 range check failed ({res['reason']}): Core ML compute precision float32")
        return "fp32", res, Emulation(comp.module, "fp32", weights)
    return "fp16", res, Emulation(comp.module, "fp16", weights, out16)


def _parity_entry(metrics: dict[str, Any] | None, mode: str | dict[str, Any], logits: bool, measured: str | None,
                  note: str | None = None) -> dict[str, Any]:
    if metrics is None:
        return {"measured_with": None, "metrics": None, "passed": None, "failures": [], "note": note or "not measured"}
    ok, fails = check(metrics, mode, logits=logits)
    out = {"measured_with": measured, "metrics": rounded(metrics), "passed": ok, "failures": fails}
    notes = [note] if note else []
    if logits and (metrics.get("reference_majority_share") or 0) > 0.9:
        notes.append(f"the reference predicts one class for {100 * metrics['reference_majority_share']:.0f}% of the "
                     "faces (untrained model?): top-1 agreement is weak evidence here, see cosine and unexplained_flips")
    if logits and not ok and check(metrics, mode, logits=True, margin_aware=True)[0]:
        notes.append(f"{100 * metrics['near_tie_share']:.0f}% of the faces are near-ties (the reference's top-2 gap "
                     f"is within 2x this program's typical error); counting only flips away from them, top-1 agreement "
                     f"is {100 * metrics['top1_agreement_margin_aware']:.1f}% (margin-aware); the plain threshold still "
                     "decides pass/fail")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _chain(artifacts: dict[str, Artifact], ref: ReferenceIO, model,
           emulated: dict[str, Emulation] | None = None) -> torch.Tensor:
    """The exported components run one after the other on every face (one that cannot run here: its
    emulation at its real compute precision); a component a partial bundle lacks is the float reference
    (its reference output, or recomputed from the exported upstream output)."""
    emulated = emulated or {}
    t = dict(ref.tensors)
    chain = chain_of(model)

    def run(name: str) -> torch.Tensor:
        a = artifacts[name]
        if a.runner is not None:
            return per_sample(a.runner, ref, name, inputs=t)
        return emulated[name].run({k: t[k] for k in INPUTS[name]})

    if "pipeline" in artifacts and not any(n in artifacts for n in chain):
        return run("pipeline")
    changed = False
    for name in chain:
        a = artifacts.get(name)
        if a is not None:
            t[OUTPUT[name]] = run(name)
            changed = True
        elif changed:
            t[OUTPUT[name]] = _float_component(model, name, t)
    return t["logits"]


@torch.no_grad()
def _float_component(model, name: str, t: dict[str, torch.Tensor]) -> torch.Tensor:
    if name == "clip_image":
        return model.clip_image(t["image"])
    if name == "fpen_s2":
        return model.fpen_s2(t["image_features"])
    if name == "denoiser":
        return model.diffusion(t["condition"], t["noise"])
    return model.udcformer(t["image"], t["landmarks"], t["epr"])


def parity_report(artifacts: dict[str, Artifact], model, ref: ReferenceIO, mode: str | dict[str, Any],
                  precision_checks: dict, quant: str, emulated: dict[str, Emulation] | None = None) -> dict[str, Any]:
    """The manifest's ``parity`` section. A component that runs here is measured; one that cannot (Core ML off
    macOS) is emulated at the precision its package computes in (``emulated``; labelled in ``measured_with``);
    with neither it is not measured (``passed: None``). ``mode``: a mode of ``THRESHOLDS`` or the bundle's own
    thresholds (``{"mode", "cosine", "top1"[, "max_abs"]}``, :func:`~udc.export.quant.recipes.int8_thresholds`)."""
    emulated = emulated or {}
    thresholds = dict(mode) if isinstance(mode, dict) else thresholds_for(mode)
    mode = thresholds
    comps: dict[str, Any] = {}
    for name, a in artifacts.items():
        logits = name in LOGITS
        if a.runner is not None:
            out = per_sample(a.runner, ref, name)
            comps[name] = _parity_entry(compare(ref.output(name), out, logits=logits), mode, logits, a.measured_with)
        elif name in emulated:
            e = emulated[name]
            out = e.output if e.output is not None else e.run(ref.inputs(name))
            comps[name] = _parity_entry(compare(ref.output(name), out, logits=logits), mode, logits, e.label,
                                        a.skip_reason)
        else:
            comps[name] = _parity_entry(None, mode, logits, None, a.skip_reason)
    chain = chain_of(model)
    chained = [n for n in chain if n in artifacts] or [n for n in artifacts]
    missing = [n for n in chain if n not in artifacts] if any(n in artifacts for n in chain) else []
    runs_here = [n for n in chained if artifacts[n].runner is not None]
    emulated_parts = [n for n in chained if artifacts[n].runner is None]
    if any(n not in emulated for n in emulated_parts):
        e2e = _parity_entry(None, mode, True, None, next((artifacts[n].skip_reason for n in emulated_parts
                                                          if artifacts[n].skip_reason), None))
    else:
        if not emulated_parts:
            how = ("the exported program run on this host" if len(chained) == 1 else
                   f"the {len(chained)} exported components chained on this host")
            note = None
        else:
            parts = ", ".join(f"{n} {emulated[n].precision}" for n in emulated_parts)
            what, whose = ("program", "its") if len(chained) == 1 else ("components chained", "each one's")
            how = (f"torch emulation of the exported {what} at {whose} Core ML compute precision ({parts})" +
                   (f"; {', '.join(runs_here)} run on this host" if runs_here else ""))
            note = next((artifacts[n].skip_reason for n in emulated_parts if artifacts[n].skip_reason), None)
        if missing:
            how += f"; the float reference for {', '.join(missing)} (partial bundle)"
        e2e = _parity_entry(compare(ref.tensors["logits"], _chain(artifacts, ref, model, emulated), logits=True), mode,
                            True, how, note)
    passed = all(c["passed"] is not False for c in comps.values()) and e2e["passed"] is not False
    n = len(ref)
    inputs = ref.faces.describe()
    if n < MIN_FACES:
        inputs["warning"] = (f"only {n} held-out faces: too few for a conclusive parity check ({MIN_FACES} needed); "
                             "re-export with --eval-n 32 or more")
    return {
        "reference": "udc.sdk PyTorch model, float32 (batched eager)",
        "inputs": inputs,
        "thresholds": {**thresholds, "notes": "max_abs is relative to max(1, max|reference|); top1 applies to logits"},
        "min_faces": MIN_FACES,
        "conclusive": n >= MIN_FACES,
        "components": comps,
        "end_to_end": e2e,
        "passed": passed,
    }


# ------------------------------------------------------------------------------------------ export
def components_of(req: ExportRequest, model) -> list[Component]:
    """The components this export writes, in chain order (``--fuse`` adds the pipeline; ``--components`` picks)."""
    comps = on_device_components(model, fuse=req.fuse or bool(req.components and "pipeline" in req.components))
    if req.components:
        have = [c.name for c in comps]
        comps = [c for c in comps if c.name in req.components]
        if not comps:
            raise ModelChoiceError(f"--components {','.join(req.components)}: this {family_of(model)} model has "
                                   f"{', '.join(have)}")
    return comps


def face_sets(req: ExportRequest, model, quant: str):
    """``(calibration, held-out)`` face sets: seeded, so every process of one export draws the same faces."""
    return calibration_sets(model.cfg, req.calib, req.calib_n if quant == "int8" else 1, req.eval_n, seed=req.seed)


def export_one(req: ExportRequest, comp: Component, model, backend: str, quant: str, root: Path,
               calib: ReferenceIO | None, held: ReferenceIO, threads: int, log, hint=None) -> Artifact:
    """One component to an ExecuTorch or ONNX file in ``root`` (Core ML: :mod:`.targets.coreml_export`)."""
    thresholds = int8_thresholds(req.int8_top1) if quant == "int8" else None
    if req.target == "executorch":
        from .targets.executorch_export import export_component

        return export_component(comp, model, backend, quant, root, calib, held, req.bundled_cases, threads, log, hint,
                                thresholds)
    from .targets.onnx_export import export_component

    return export_component(comp, model, quant, root, calib, threads, log, hint, thresholds)


def done_line(a: Artifact) -> str:
    """The log line of a finished component."""
    d = a.delegation
    return (f"  {a.component}: {a.file} ({a.seconds:.1f} s" +
            (f", {d['delegated_pct']:.1f}% of nodes delegated, {d['partitions']} partition(s))" if d else ")"))


def run_export(req: ExportRequest, log: Callable[[str], None] = print) -> ExportResult:
    """Export ``req`` as a bundle (see :class:`ExportRequest`), logging progress lines to ``log``. Freed tensor
    memory stays in the heap while it runs (:func:`udc.export.heap.heap_reuse`: batched eager forwards 2-3.6x
    faster, measured; more resident memory)."""
    from .heap import heap_reuse

    with heap_reuse():
        return _run_export(req, log)


def _run_export(req: ExportRequest, log: Callable[[str], None]) -> ExportResult:
    t_all = time.perf_counter()
    backend, quant = resolve(req.target, req.backend, req.quant)
    # the bundle's parity thresholds (int8: --int8-top1 raises the end-to-end top-1 agreement it must reach)
    if quant != "int8":
        if req.int8_top1 is not None:
            raise ModelChoiceError(f"--int8-top1 sets the int8 bundle's top-1 agreement target; this export is "
                                   f"{quant}: drop it or add --quant int8")
        thresholds = thresholds_for(quant if quant in THRESHOLDS else "fp32")
    else:
        try:
            thresholds = int8_thresholds(req.int8_top1)
        except ValueError as e:
            raise ModelChoiceError(f"--int8-top1: {e}") from None
    out = Path(req.output)
    writer = BundleWriter(out, force=req.force)  # refuses an existing bundle before any work
    warnings: list[str] = []
    if writer.cleaned:
        log(f"removed work directories of earlier killed exports of {out.name}: {', '.join(writer.cleaned)}")
    model, source, random_init, note = load_model(req)
    log(f"model: {note}")
    comps = components_of(req, model)
    hints = {}
    if req.recipes_from is not None:
        if quant != "int8":
            raise ModelChoiceError(f"--recipes-from guides the int8 recipe search; this export is {quant}: drop it "
                                   "or add --quant int8")
        from .quant.recipe_hints import read_hints

        hints = read_hints(req.recipes_from, family_of(model), model.cfg.name, [c.name for c in comps])
        log(f"recipes from {Path(req.recipes_from).name}, tried first: " +
            (", ".join(f"{n} {h.recipe}" for n, h in hints.items()) or "none of this export's components"))
    coreml_eps = {}
    if req.target == "coreml":  # an op Core ML cannot convert fails now, before any other work
        from .targets.coreml_export import prepare

        coreml_eps = {c.name: prepare(c) for c in comps}
    calib_set, held_set = face_sets(req, model, quant)
    desc = held_set.describe()
    log(f"faces: {desc['kind']} ({desc.get('format', desc.get('generator'))}): "
        f"{len(calib_set) if quant == 'int8' else 0} calibration, {len(held_set)} held-out")
    if desc["kind"] == "synthetic":
        w = synthetic_faces_warning(quant, random_init)
        warnings.append(w)
        log(f"WARNING: {w}")
    if len(held_set) < MIN_FACES:
        w = (f"parity measured on {len(held_set)} held-out faces, fewer than the {MIN_FACES} a conclusive check needs "
             "(--eval-n)")
        warnings.append(w)
        log(f"WARNING: {w}")
    coreml_like = req.target == "coreml" or backend == "coreml"
    why_serial = parallel_reason(req, coreml_like, [c.name for c in comps])
    parallel = req.jobs > 1 and not why_serial
    # the calibration reference feeds the recipe search; in parallel each worker computes its own
    calib = reference_io(model, calib_set) if quant == "int8" and not parallel else None
    held = reference_io(model, held_set)
    artifacts: dict[str, Artifact] = {}
    precision_checks: dict[str, dict[str, Any]] = {}
    emulated: dict[str, Emulation] = {}
    seconds: dict[str, float] = {}

    def export_here(comp: Component) -> Artifact:
        t0 = time.perf_counter()
        precision = quant
        if coreml_like:
            precision, precision_checks[comp.name], emulated[comp.name] = _precision_for(comp, model, quant, held, log)
        if req.target == "coreml":
            from .targets.coreml_export import export_component

            a = export_component(comp, quant, precision, writer.root, coreml_eps.get(comp.name))
        else:
            a = export_one(req, comp, model, backend, precision if coreml_like else quant, writer.root, calib, held,
                           req.threads, log, hints.get(comp.name))
        if coreml_like:
            if req.target == "executorch":
                a.quantization["compute_precision"] = "float16" if precision == "fp16" else "float32"
            a.quantization["fp16_check"] = precision_checks[comp.name]
        a.seconds = time.perf_counter() - t0
        log(done_line(a))
        return a

    if req.jobs > 1 and why_serial:
        log(f"--jobs {req.jobs}: {why_serial}; exporting one component at a time")
    # --fuse --quant int8 (XNNPACK): the fused pipeline is quantized as the four programs were, once they are done
    # (recipe_hints.ComposedRecipe; its own search only if that misses)
    chain = chain_of(model)
    exported = {c.name for c in comps}
    compose = quant == "int8" and backend == "xnnpack" and {"pipeline", *chain} <= exported
    first = [c for c in comps if not (compose and c.name == "pipeline")]

    def composed() -> None:
        from .quant.recipe_hints import composed_from

        hint = composed_from({n: artifacts[n].quantization for n in chain}, chain)
        if hint is not None:
            hints["pipeline"] = hint

    def in_parallel():
        names = [c.name for c in first]
        yield from export_parallel(req, backend, quant, names, writer.root, hints, log)
        if compose:
            composed()
            yield from export_parallel(req, backend, quant, ["pipeline"], writer.root, hints, log)

    def in_turn():
        for comp in comps:
            if compose and comp.name == "pipeline":
                composed()
            yield export_here(comp)

    with writer:
        if parallel:  # side by side in worker processes; each logs its own lines
            done = in_parallel()
        else:
            done = in_turn()
        for a in done:
            if parallel:
                a.runner = host_runner(writer.root / a.file, [i["name"] for i in a.inputs], req.threads)
            artifacts[a.component] = a
            seconds[a.component] = a.seconds
        t0 = time.perf_counter()
        parity = parity_report(artifacts, model, held, thresholds, precision_checks, quant,
                               {n: e for n, e in emulated.items() if artifacts[n].runner is None})
        seconds["parity"] = time.perf_counter() - t0
        entries = {}
        for name, a in artifacts.items():
            bp = writer.entry(a.bundled_program["file"]) if a.bundled_program else None
            entries[name] = bundle_writer.component_entry(a, writer.entry(a.file), bp)
        qsection: dict[str, Any] = {
            "mode": quant,
            "scheme": _scheme(req.target, backend, quant),
            "calibration": calib_set.describe() if quant == "int8" else None,
            # where the int8 observers' faces came from ("synthetic": no --calib, procedural faces); None: no calibration
            "calibration_source": calib_set.describe()["kind"] if quant == "int8" else None,
            "selection": ({"rule": "per component, the first recipe (most int8 first: all-int8, gemm-int8, "
                                   "gemm-int8-ends-float, then the K most sensitive layers float) whose output, with "
                                   "only that component int8, meets its share (1 / number of chained components) of "
                                   "the int8 error budget on the calibration faces",
                           "chained_components": len(chain_of(model)),
                           "end_to_end_thresholds": {k: thresholds[k] for k in ("cosine", "top1")},
                           "thresholds": selection_thresholds(thresholds, len(chain_of(model)))}
                          if quant == "int8" else None),
            "float_kept": {n: a.quantization.get("float_kept", []) for n, a in artifacts.items()
                           if a.quantization.get("float_kept") is not None},
            "decision": {n: {"recipe": a.quantization.get("recipe"), "decision": a.quantization.get("decision")}
                         for n, a in artifacts.items() if a.quantization.get("recipe")},
        }
        if coreml_like:
            qsection["compute_precision"] = ", ".join(
                f"{n}: {a.quantization.get('compute_precision')}" for n, a in artifacts.items())
            qsection["fp16_check"] = {n: {"passed": c["passed"], "ranges": c["ranges"]}
                                      for n, c in precision_checks.items()}
        manifest = bundle_writer.build_manifest(
            name=out.stem, target=req.target, backend=backend, quant=quant, model=model, random_init=random_init,
            source=source, components=entries, quantization=qsection, parity=parity)
        if warnings:
            manifest["warnings"] = list(warnings)
        if req.components:
            manifest["partial"] = {
                "components": [c.name for c in comps],
                "reason": "exported with --components (debugging / tests): not every on-device component is in "
                          "this bundle, apps must refuse it",
            }
        if writer.existing_manifest() is not None and not parity["passed"]:
            old = (writer.existing_manifest().get("parity") or {}).get("passed")
            if old is True:
                w = (f"replacing {out.name}, whose parity PASSED, with this export, whose parity FAILED (--force); "
                     "re-export to get a passing bundle back")
                warnings.append(w)
                log(f"WARNING: {w}")
        path = writer.commit(manifest)
    seconds["total"] = time.perf_counter() - t_all
    return ExportResult(path, manifest, list(artifacts.values()), seconds, warnings)


def synthetic_faces_warning(quant: str, random_init: bool) -> str:
    """The warning an export on procedural synthetic faces (no ``--calib``) prints and records."""
    what = "int8 calibration and the parity report use" if quant == "int8" else "the parity report uses"
    why = ("" if random_init else "; a checkpoint trained on real faces sees different activations on them, so the "
           "int8 ranges and the parity measured here may not hold on real photos")
    return (f"no --calib: {what} procedural synthetic faces (udc.train.synthetic), not real photos{why}: pass --calib "
            "DIR with faces like the ones the model will see")


def _scheme(target: str, backend: str, quant: str) -> str:
    if quant == "int8" and backend == "openvino":
        return ("PT2E static (torchao prepare_pt2e/convert_pt2e), XNNPACKQuantizer with "
                "get_symmetric_quantization_config(is_per_channel=True) without output specs (an op's inputs quantized, "
                "its output float unless the next op asks), weights kept as quantize/dequantize pairs, "
                "lowered to OpenVINO's CPU plugin (its low-precision passes run the int8 GEMMs; the float parts run at "
                "OpenVINO's default inference precision of the CPU that loads the bundle: bf16 with AMX or "
                "AVX512-BF16, f32 otherwise)")
    if quant == "int8" and target == "executorch":
        return ("PT2E static (torchao prepare_pt2e/convert_pt2e), XNNPACKQuantizer with "
                "get_symmetric_quantization_config(is_per_channel=True): int8 symmetric per-channel weights (min/max "
                "observers), int8 per-tensor activations (histogram observers) on the calibration faces")
    if quant == "int8":
        return ("onnxruntime quantize_static, QDQ, int8 symmetric per-channel weights, int8 symmetric per-tensor "
                "activations (MinMax calibration)")
    if quant == "int8-weight":
        return "Core ML linear_quantize_weights: int8 linear symmetric per output channel (weights >= 2048 elements)"
    if quant == "int4-palettize":
        return "Core ML palettize_weights: 4-bit k-means palette per tensor (weights >= 2048 elements)"
    if quant == "fp16":
        return "float16 compute (weights and activations), float32 model inputs/outputs"
    return "float32, no quantization"

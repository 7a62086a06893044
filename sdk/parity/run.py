"""A bundle against its PyTorch reference on real preprocessed faces, on this host.

    report = host_parity(bundle, faces, runtime="auto")
    report["passed"], report["components"]["udcformer"]["cosine"], report["end_to_end"]["top1_agreement"]

Component by component, every exported program gets the *reference's* inputs for each face (so each
row measures that program alone); end to end, the exported components are chained as an app chains
them (so errors compound) and their logits are compared with the reference's. Metrics are those of
:func:`udc.sdk.parity.metrics.compare` (max|Δ|, mean|Δ|, cosine, PSNR, top-1 agreement for logits); pass/fail
uses the stricter of the manifest's stored thresholds and its quant mode's defaults
(:func:`udc.sdk.parity.metrics.thresholds_for`). The verdict is ``PASS`` only when every row passes on at least
:data:`udc.sdk.parity.metrics.MIN_FACES` faces; a failing row is a ``FAIL`` on any number of faces; every row passing on
fewer faces is ``INCONCLUSIVE`` (too small a sample to certify anything).

The runtime must be the bundle's own (``executorch``, ``onnxruntime``, ``coreml``): ``torch`` would compare
the reference with itself and is refused (:class:`ParityRuntimeError`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime.bundle import Bundle
from ..runtime.chain import load_chain
from ..models.components import COMPONENT_OUTPUT, LOGIT_COMPONENTS
from ..models.registry import manifest_family
from ..errors import UdcError
from .metrics import MIN_FACES, check, compare, rounded, thresholds_for
from .data import Faces, noise
from ..runtime.preprocess import normalize_crops
from ..runtime.runners import resolve_runtime

LOGITS = LOGIT_COMPONENTS
OUTPUT_KEY = COMPONENT_OUTPUT


class ParityRuntimeError(UdcError, ValueError):
    """A runtime that cannot prove parity (the PyTorch reference against itself) or a bundle apps must refuse."""


def parity_runtime(runtime: str, bundle: Bundle) -> str:
    """The runtime a parity run uses for ``bundle``: its own; ``torch`` and partial bundles are refused."""
    m = bundle.manifest
    if runtime == "torch":
        raise ParityRuntimeError("--runtime torch would compare the PyTorch reference with itself (it proves nothing): "
                                 f"use the bundle's own runtime (auto) or udc-predict --runtime torch for a smoke run")
    if m.get("partial"):
        raise ParityRuntimeError(f"{bundle.path.name} is a partial bundle (exported with --components "
                                 f"{','.join(m['partial'].get('components', []))}): there is no end-to-end chain to "
                                 "check; re-export it without --components")
    return resolve_runtime(runtime, m["target"], m.get("backend"))


def verdict(passed_rows: bool, n: int) -> str:
    """``PASS`` / ``FAIL`` / ``INCONCLUSIVE`` (every row passes but on fewer than ``MIN_FACES`` faces)."""
    if not passed_rows:
        return "FAIL"
    return "PASS" if n >= MIN_FACES else "INCONCLUSIVE"


def app_inputs(bundle: Bundle) -> tuple[str, ...]:
    """The app-side tensors a bundle's chain takes: ``image, landmarks, noise`` (LRDif) or ``image`` (DDAMFN)."""
    return ("image",) if manifest_family(bundle.manifest) == "ddamfn" else ("image", "landmarks", "noise")


def model_inputs(bundle: Bundle, faces: Faces, seed: int = 0) -> dict[str, np.ndarray]:
    """``image [N,3,S,S]``, ``landmarks [N,68,2]``, ``noise [N,C]`` with the manifest's preprocessing (a DDAMFN
    bundle has no diffusion section: ``noise`` is ``[N, 0]``, and its chain reads only ``image``)."""
    pre = bundle.manifest["preprocessing"]
    diffusion = bundle.manifest.get("diffusion")
    dim = int(diffusion["noise"]["shape"][-1]) if diffusion else 0
    return {"image": normalize_crops(faces.crops, pre.get("scale", 1 / 255), pre["mean"], pre["std"]),
            "landmarks": np.ascontiguousarray(faces.landmarks, np.float32),
            "noise": noise(len(faces), dim, seed)}


def reference_tensors(model, inputs: dict[str, np.ndarray], batch: int = 32) -> dict[str, np.ndarray]:
    """Every intermediate of the float32 PyTorch reference (batched)."""
    import torch

    from ..models.components import reference_outputs

    out: dict[str, list] = {}
    n = len(inputs["image"])
    with torch.no_grad():
        for s in range(0, n, batch):
            x = torch.from_numpy(inputs["image"][s:s + batch])
            lm = torch.from_numpy(inputs["landmarks"][s:s + batch])
            nz = torch.from_numpy(inputs["noise"][s:s + batch])
            for k, v in reference_outputs(model, x, lm, nz).items():
                out.setdefault(k, []).append(v.numpy())
    return {**inputs, **{k: np.concatenate(v) for k, v in out.items()}}


def _entry(metrics: dict[str, Any], thresholds: dict[str, Any], logits: bool) -> dict[str, Any]:
    ok, fails = check(metrics, thresholds, logits=logits)
    # rounded(): inf/NaN -> None (JSON has neither; identical outputs give an infinite PSNR)
    return {**rounded(metrics), "passed": ok, "failures": fails}


def host_parity(bundle: Bundle, faces: Faces, runtime: str = "auto", reference: str | None = None,
                threads: int | None = None, seed: int = 0, fused: bool = False, progress: bool = True) -> dict[str, Any]:
    """The parity report (a JSON-ready dict, see the module docstring)."""
    from tqdm import tqdm

    from ..runtime.reference import reference_model

    m = bundle.manifest
    name = parity_runtime(runtime, bundle)
    thresholds = thresholds_for(m["quant"], m)  # an inconsistent manifest is refused before any work
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    model, how = reference_model(bundle, reference)
    chain = load_chain(bundle, name, reference=reference, threads=threads, fused=fused)
    inputs = model_inputs(bundle, faces, seed)
    ref = reference_tensors(model, inputs)
    n = len(faces)
    per_comp: dict[str, list[np.ndarray]] = {s.name: [] for s in chain.steps}
    e2e: list[np.ndarray] = []
    from ..console.quiet import show_progress

    for i in tqdm(range(n), desc=f"parity ({name})", unit="face", disable=not (progress and show_progress()), leave=False):
        for step in chain.steps:
            feed = {k: np.ascontiguousarray(ref[k][i:i + 1]) for k in step.inputs}
            per_comp[step.name].append(np.asarray(step.runner(feed)[0]))
        one = {k: np.ascontiguousarray(inputs[k][i:i + 1]) for k in app_inputs(bundle)}
        e2e.append(np.asarray(chain.run(one)[0]))
    comps = {}
    for cname, outs in per_comp.items():
        logits = cname in LOGITS
        comps[cname] = _entry(compare(ref[OUTPUT_KEY[cname]], np.concatenate(outs), logits=logits), thresholds, logits)
    end = _entry(compare(ref["logits"], np.concatenate(e2e), logits=True), thresholds, True)
    rows_pass = all(c["passed"] for c in comps.values()) and end["passed"]
    v = verdict(rows_pass, n)
    return {
        "bundle": bundle.path.name, "path": str(bundle.path), "target": m["target"], "backend": m.get("backend"),
        "quant": m["quant"], "runtime": name, "device": "host", "reference": how,
        "inputs": {**faces.source, "n": n, "noise_seed": seed},
        "thresholds": thresholds, "min_faces": MIN_FACES, "components": comps, "end_to_end": end,
        "verdict": v, "passed": v == "PASS",
    }

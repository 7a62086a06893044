"""A bundle's components run in order on one runtime, wired as its manifest says.

    chain = load_chain(bundle, "executorch")                  # or "onnxruntime", "coreml", "torch"
    logits, ms = chain.run({"image": x, "landmarks": lm, "noise": n})   # ms: per-component milliseconds

Inputs are batch-1 float32 numpy arrays (the components are exported with static batch-1 shapes).
``runtime="torch"`` runs the PyTorch reference model (:mod:`udc.sdk.runtime.reference`) split into the same
four components, so every runtime reports the same stages. ``fused=True`` runs the bundle's
``pipeline`` component (all four in one program) when it has one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .bundle import Bundle, BundleError
from ..models.components import FAMILY_CHAIN
from ..models.registry import manifest_family

#: The app-side inputs of the chain (LRDif; a DDAMFN bundle takes only ``image``).
CHAIN_INPUTS = ("image", "landmarks", "noise")


@dataclass
class Step:
    name: str
    runner: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]
    inputs: list[str]  # input names, in the program's order
    sources: dict[str, str]  # input name -> "input:x" or "component.output"
    outputs: list[str]


@dataclass
class Chain:
    runtime: str
    steps: list[Step]
    reference: str | None = None  # where the torch reference came from (runtime "torch")
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def components(self) -> list[str]:
        return [s.name for s in self.steps]

    def run(self, inputs: Mapping[str, np.ndarray], keep: bool = False) -> tuple[np.ndarray, dict[str, float]]:
        """``(logits [1, K], {component: ms})``; with ``keep`` the intermediate outputs are in :attr:`last`."""
        values: dict[str, np.ndarray] = {}
        ms: dict[str, float] = {}
        for step in self.steps:
            feed = {}
            for name in step.inputs:
                src = step.sources.get(name, f"input:{name}")
                feed[name] = inputs[src[6:]] if src.startswith("input:") else values[src]
            t0 = time.perf_counter()
            outs = step.runner(feed)
            ms[step.name] = (time.perf_counter() - t0) * 1e3
            for out_name, arr in zip(step.outputs, outs):
                values[f"{step.name}.{out_name}"] = np.asarray(arr)
        last = self.steps[-1]
        if keep:
            self.last = values
        return values[f"{last.name}.{last.outputs[0]}"], ms


def _sources(manifest: dict[str, Any], comp: str, inputs: list[str]) -> dict[str, str]:
    """Manifest wiring (``comp.input -> 'input:x' | 'producer.x'``) resolved to producer *outputs*."""
    wiring = manifest.get("wiring", {})
    out = {}
    for name in inputs:
        src = wiring.get(f"{comp}.{name}", f"input:{name}")
        if not src.startswith("input:"):
            producer, _, what = src.partition(".")
            if producer not in manifest["components"]:
                raise BundleError(f"wiring {comp}.{name} <- {src}: the bundle has no component {producer!r}")
            outs = [o["name"] for o in manifest["components"][producer]["outputs"]]
            if what not in outs:  # never a guess: a wrong name would feed the wrong tensor
                raise BundleError(f"wiring {comp}.{name} <- {src}: {producer} has no output {what!r} (it has "
                                  f"{', '.join(outs)}): the manifest is inconsistent, re-export the bundle")
            out[name] = f"{producer}.{what}"
        else:
            out[name] = src
    return out


def chain_names(bundle: Bundle, fused: bool) -> list[str]:
    """The components to run: the manifest's ``execution.order`` (or ``execution.fused`` with ``fused``)."""
    m = bundle.manifest
    ex = m.get("execution") or {}
    if fused:
        name = ex.get("fused") or ("pipeline" if "pipeline" in m["components"] else None)
        if name is None:
            raise BundleError(f"{bundle.path.name} has no fused 'pipeline' component (export it with udc-export --fuse)")
        return [name]
    return list(ex.get("order") or FAMILY_CHAIN[manifest_family(m)])


def load_chain(bundle: Bundle, runtime: str, *, reference: str | Path | None = None, threads: int | None = None,
               fused: bool = False) -> Chain:
    """The runners of ``bundle``'s components on ``runtime`` (already checked by the caller)."""
    m = bundle.manifest
    names = chain_names(bundle, fused)
    steps: list[Step] = []
    how = None
    if runtime == "torch":
        from ..models.components import on_device_components
        from .reference import reference_model
        from .torch_runtime import from_module

        model, how = reference_model(bundle, reference)
        comps = {c.name: c for c in on_device_components(model, fuse=fused)}
        for name in names:
            c = comps[name]
            ins = list(c.inputs)
            steps.append(Step(name, from_module(c.module, ins, list(c.outputs), threads), ins,
                              _sources(m, name, ins), list(c.outputs)))
        return Chain(runtime, steps, how)
    from .runners import load

    files = {}
    for name in names:
        ins, outs = bundle.io(name)
        in_names, out_names = [i["name"] for i in ins], [o["name"] for o in outs]
        path = bundle.file(name)
        files[name] = path
        data = bundle.read_verified(name)  # the verified bytes, not a second open of the path (None: a package dir)
        steps.append(Step(name, load(path, input_names=in_names, output_names=out_names, threads=threads, data=data),
                          in_names, _sources(m, name, in_names), out_names))
    return Chain(runtime, steps, how, files)

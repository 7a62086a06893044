"""Latency, load time, memory and throughput of a bundle on this host (``udc-bench --device host``).

    report = host_bench("face.udc", runtimes=["executorch", "torch"], warmup=10, iters=100, threads=2)

Each runtime row: the bundle verified (schema + sha256) and its components loaded (``load_ms``),
then ``warmup`` untimed and ``iters`` timed inferences of one preprocessed face (an aligned crop and
its landmarks: the SDK's ``preprocess -> components -> softmax``). Per component and end to end:
p50/p90/p99/min/mean/max in ms; ``sdk_overhead`` = end to end minus the components (preprocessing
and bookkeeping, no face detection), also as a percentage of model time; throughput = 1000 / mean
end-to-end ms; peak RSS of the process while that runtime loaded and ran (Linux: the high-water
mark is reset before each runtime through ``/proc/self/clear_refs``, so rows do not inherit each
other's peak; elsewhere ``ru_maxrss``, a whole-process peak, and the report says so).
``torch`` is the PyTorch reference (eager, float32) split into the same components.

The JSON schema is ``udc-bench/1`` (see :data:`SCHEMA`); keys are only ever added.
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SCHEMA = "udc-bench/1"
STATS = ("p50", "p90", "p99", "min", "mean", "max")


def stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    if a.size == 0:
        return {k: None for k in STATS}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "min": float(a.min()), "mean": float(a.mean()),
            "max": float(a.max())}


# ------------------------------------------------------------------------------------------ memory
def _status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def host_info(threads: int | None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"kind": "host", "system": platform.system(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count(), "threads": threads, "python": platform.python_version()}


# ------------------------------------------------------------------------------------------ input
def bench_face(crop_size: int, image: str | Path | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(uint8 crop [S,S,3], landmarks [68,2] crop units, what it is)``: the face of ``image`` (detected and
    aligned) or, without one, a seeded random crop with the canonical landmarks (latency does not depend
    on the pixels)."""
    from .face_pipeline import FacePipeline
    from .landmarks import canonical_landmarks

    if image is not None:
        face = FacePipeline(crop_size)(image)
        return face.image, face.landmarks, f"face of {image}"
    rng = np.random.default_rng(seed)
    crop = rng.integers(0, 256, (crop_size, crop_size, 3), dtype=np.uint8)
    return crop, canonical_landmarks().numpy().astype(np.float32), "random crop + canonical landmarks"


# ------------------------------------------------------------------------------------------ bench
def _import_runtime(runtime: str) -> None:
    import importlib

    for mod in {"executorch": ("executorch.runtime",), "onnxruntime": ("onnxruntime",),
                "coreml": ("coremltools",), "torch": ("torch",)}.get(runtime, ()):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass  # resolve_runtime says what is missing
    if runtime == "executorch":
        try:
            from executorch.runtime import Runtime

            Runtime.get()
        except Exception:  # noqa: BLE001 - reported by the load itself
            pass


def bench_runtime(bundle_path: str | Path, runtime: str, warmup: int, iters: int, threads: int | None,
                  reference: str | None = None, fused: bool = False, image: str | Path | None = None,
                  progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from .bundle import load_bundle
    from .chain import load_chain
    from .recognizer import Recognizer, softmax
    from .runtimes import resolve_runtime

    _import_runtime(runtime)  # library import is not load time: a long-running app pays it once at start-up
    exact_peak = reset_peak_rss()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_path, verify=True)
    t1 = time.perf_counter()
    m = bundle.manifest
    name = resolve_runtime(runtime, m["target"], m.get("backend"))
    if threads and name == "torch":
        import torch

        torch.set_num_threads(int(threads))
    chain = load_chain(bundle, name, reference=reference, threads=threads, fused=fused)
    t2 = time.perf_counter()
    rec = Recognizer(bundle, chain)
    rss_loaded = rss_mb()
    crop, lm, what = bench_face(rec.crop_size, image)
    comp: dict[str, list[float]] = {s.name: [] for s in chain.steps}
    e2e, model = [], []
    for i in tqdm(range(warmup + iters), desc=f"bench {name}", unit="it", disable=not progress, leave=False):
        s = time.perf_counter()
        logits, t = rec.run_model(crop, lm)
        softmax(logits)
        total = (time.perf_counter() - s) * 1e3
        if i < warmup:
            continue
        e2e.append(total)
        model.append(t["model"])
        for k in comp:
            comp[k].append(t[k])
    overhead = [a - b for a, b in zip(e2e, model)]
    latency = {k: stats(v) for k, v in comp.items()}
    latency["model"] = stats(model)
    latency["end_to_end"] = stats(e2e)
    latency["sdk_overhead"] = stats(overhead)
    size = sum(c["size_bytes"] for n, c in m["components"].items() if n in chain.components)
    return {
        "runtime": name,
        "reference": chain.reference,
        "input": what,
        "load_ms": {"verify": (t1 - t0) * 1e3, "components": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3},
        "latency_ms": latency,
        "sdk_overhead_pct": 100.0 * float(np.mean(overhead)) / max(1e-9, float(np.mean(model))),
        "throughput_fps": 1000.0 / max(1e-9, float(np.mean(e2e))),
        "memory_mb": {"rss_before_load": rss_before, "rss_after_load": rss_loaded, "peak_rss": peak_rss_mb(),
                      "peak_is_per_runtime": exact_peak},
        "size_mb": size / 1e6 if name != "torch" else None,
        "components": chain.components,
    }


def host_bench(bundle_path: str | Path, runtimes: Sequence[str], warmup: int = 10, iters: int = 100,
               threads: int | None = None, reference: str | None = None, fused: bool = False,
               image: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    from .bundle import load_bundle

    m = load_bundle(bundle_path, verify=False).manifest
    rows = [bench_runtime(bundle_path, r, warmup, iters, threads, reference, fused, image, progress) for r in runtimes]
    ref = next((r for r in rows if r["runtime"] == "torch"), None)
    for r in rows:
        r["speedup_vs_torch"] = (ref["latency_ms"]["end_to_end"]["p50"] / r["latency_ms"]["end_to_end"]["p50"]
                                 if ref else None)
    return {"schema": SCHEMA, "bundle": Path(bundle_path).name, "path": str(bundle_path), "target": m["target"],
            "backend": m.get("backend"), "quant": m["quant"], "config": m["model"].get("config"),
            "family": m.get("family", "lrdif"),
            "device": host_info(threads), "warmup": warmup, "iters": iters, "rows": rows}

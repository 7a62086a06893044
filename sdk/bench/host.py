"""Latency, load time, memory and throughput of a bundle on this host (``udc-bench --device host``).

    report = host_bench("face.udc", runtimes=["executorch", "torch"], warmup=10, iters=100, threads=2)

Each runtime row runs in **its own Python process** (``isolate=True``, the default), so its peak RSS is
that runtime's alone (imports, load and inference; no earlier row stays resident): the bundle verified
(schema + sha256) and its components loaded (``load_ms``), then ``warmup`` untimed and ``iters`` timed
inferences of one preprocessed face (an aligned crop and its landmarks: the SDK's ``preprocess ->
components -> softmax``). Per component: the **runtime's execute call alone** (ExecuTorch
``Method.execute``, ONNX Runtime ``InferenceSession.run``, the torch module's forward, Core ML
``predict``), not the SDK's numpy/tensor conversions around it; ``model`` = their sum;
``end_to_end`` = the whole ``preprocess -> components -> softmax``; ``sdk_overhead`` = end to end minus
model (preprocessing, input/output conversion, bookkeeping; no face detection), also as a percentage of
model time; throughput = 1000 / mean end-to-end ms. Every row uses the same CPU thread count
(``threads``; default :func:`default_threads`), printed with the report. ``torch`` is the PyTorch
reference (eager, float32) split into the same components.

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


def default_threads() -> int:
    """The thread count every row uses when none is given: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


#: The CPU features that decide which matrix kernels a runtime can pick, in this order when present: x86 (AVX2, AVX-512,
#: the int8 dot products VNNI, the AMX tile units) and Arm (dot product, int8 matrix multiply, BF16, SVE, SME). The same
#: model runs at very different speeds across them (an AMX host runs a runtime's int8 GEMMs on tiles only if that
#: runtime's XNNPACK build has AMX kernels: docs/measured-facts.md), so every table names them.
MATMUL_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                   "amx_fp16", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")


def cpu_features(cpuinfo: str | None = None) -> list[str]:
    """The :data:`MATMUL_FEATURES` the CPU reports (Linux ``/proc/cpuinfo``: x86 ``flags``, Arm ``Features``; the
    first processor's line), in that order; ``[]`` where nothing says (macOS, Windows, an unreadable file)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in MATMUL_FEATURES if f in have]
    return []


def host_info(threads: int | None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"kind": "host", "system": platform.system(), "machine": platform.machine(), "cpu": cpu,
            "isa": cpu_features(cpuinfo), "cores": os.cpu_count(), "threads": threads,
            "python": platform.python_version()}


def describe_cpu(info: dict[str, Any]) -> str:
    """``'Intel(R) Xeon(R) Processor [avx2 fma avx512f avx512_vnni amx_int8]'``: the CPU and its matrix features
    (``[ISA unknown]`` where the host did not say)."""
    isa = info.get("isa")
    return f"{info.get('cpu')} [{' '.join(isa) if isa else 'ISA unknown'}]"


# ------------------------------------------------------------------------------------------ input
def bench_face(crop_size: int, image: str | Path | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """``(uint8 crop [S,S,3], landmarks [68,2] crop units, what it is)``: the face of ``image`` (detected and
    aligned) or, without one, a seeded random crop with the canonical landmarks (latency does not depend
    on the pixels)."""
    from ..faces.pipeline import FacePipeline
    from ..faces.landmarks import canonical_landmarks

    if image is not None:
        face = FacePipeline(crop_size)(image)
        return face.image, face.landmarks, f"face of {image}"
    rng = np.random.default_rng(seed)
    crop = rng.integers(0, 256, (crop_size, crop_size, 3), dtype=np.uint8)
    return crop, canonical_landmarks().numpy().astype(np.float32), "random crop + canonical landmarks"


# ------------------------------------------------------------------------------------------ bench
class _Timed:
    """Wraps the object a runner calls (``method.execute``, ``session.run``, ``model.predict``, or the
    module itself) and adds the milliseconds of each call to ``sink[name]``."""

    def __init__(self, target, attr: str | None, sink: dict[str, float], name: str):
        self._target, self._attr, self._sink, self._name = target, attr, sink, name

    def _timed(self, fn, *a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            self._sink[self._name] = self._sink.get(self._name, 0.0) + (time.perf_counter() - t0) * 1e3

    def __call__(self, *a, **k):  # a torch module
        return self._timed(self._target, *a, **k)

    def __getattr__(self, item):
        value = getattr(self._target, item)
        if item == self._attr:
            return lambda *a, **k: self._timed(value, *a, **k)
        return value


#: (runner attribute holding the runtime object, the method that runs the model; None: the object is called)
_EXECUTE_HOOKS = (("_method", "execute"), ("_session", "run"), ("_model", "predict"), ("module", None))


def instrument_execute(chain) -> tuple[dict[str, float], list[str]]:
    """Make every step of ``chain`` record its runtime's execute time alone into the returned dict (cleared
    by the caller per iteration). Returns ``(sink, steps that could not be instrumented)``: for those, the
    step's time (runner glue included) is used and the report says so."""
    sink: dict[str, float] = {}
    missing = []
    for step in chain.steps:
        runner = step.runner
        for attr, method in _EXECUTE_HOOKS:
            target = getattr(runner, attr, None)
            if target is not None and (method is None and callable(target) or method and hasattr(target, method)):
                setattr(runner, attr, _Timed(target, method, sink, step.name))
                break
        else:
            missing.append(step.name)
    return sink, missing


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

    from ..runtime.bundle import load_bundle
    from ..runtime.chain import load_chain
    from ..console.quiet import quiet_native, show_progress
    from ..runtime.recognizer import Recognizer, softmax
    from ..runtime.runners import resolve_runtime

    threads = threads or default_threads()
    with quiet_native():  # ExecuTorch prints cpuinfo lines from C++ at import/threadpool start
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
    with quiet_native():
        chain = load_chain(bundle, name, reference=reference, threads=threads, fused=fused)
    t2 = time.perf_counter()
    rec = Recognizer(bundle, chain)
    rss_loaded = rss_mb()
    crop, lm, what = bench_face(rec.crop_size, image)
    sink, glued = instrument_execute(chain)
    comp: dict[str, list[float]] = {s.name: [] for s in chain.steps}
    e2e, model = [], []
    for i in tqdm(range(warmup + iters), desc=f"bench {name}", unit="it", disable=not (progress and show_progress()),
                  leave=False):
        sink.clear()
        s = time.perf_counter()
        logits, t = rec.run_model(crop, lm)
        softmax(logits)
        total = (time.perf_counter() - s) * 1e3
        if i < warmup:
            continue
        e2e.append(total)
        per = {k: sink.get(k, t[k]) for k in comp}  # the execute call alone; the step time where not hookable
        model.append(sum(per.values()))
        for k in comp:
            comp[k].append(per[k])
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
        "threads": threads,
        "model_time": ("runtime execute only" if not glued
                       else f"runtime execute only, except {', '.join(glued)} (whole step, runner glue included)"),
        "size_mb": size / 1e6 if name != "torch" else None,
        "components": chain.components,
    }


ROW_MARK = "UDC-BENCH-ROW "


def bench_runtime_isolated(bundle_path: str | Path, runtime: str, warmup: int, iters: int, threads: int | None,
                           reference: str | None = None, fused: bool = False, image: str | Path | None = None,
                           progress: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """:func:`bench_runtime` in a fresh Python process: the row's peak RSS is its own process's high-water
    mark (imports, load, inference), with nothing of an earlier row resident. Errors come back as the
    same typed :class:`udc.sdk.errors.UdcError` line the child raised."""
    import json
    import subprocess

    from ..runtime.bundle import load_bundle
    from ..errors import UdcError

    load_bundle(bundle_path, verify=False)  # a missing or malformed bundle: its typed error here, before a process
    args = {"bundle": str(bundle_path), "runtime": runtime, "warmup": warmup, "iters": iters,
            "threads": threads or default_threads(), "reference": reference, "fused": fused,
            "image": str(image) if image else None, "progress": progress}
    env = {**os.environ, "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": os.environ.get("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")}
    res = subprocess.run([sys.executable, "-m", "udc.sdk.bench.host", json.dumps(args)], stdout=subprocess.PIPE,
                         stderr=None, text=True, env=env, timeout=timeout)
    for line in res.stdout.splitlines():
        if line.startswith(ROW_MARK):
            out = json.loads(line[len(ROW_MARK):])
            if "error" in out:
                raise UdcError(out["error"])
            out["memory_mb"]["peak_is_per_runtime"] = True
            out["memory_mb"]["process"] = "own process per row"
            return out
    raise UdcError(f"benchmark of {runtime} exited with code {res.returncode} without a result "
                   "(run with --verbose to see the runtime's own messages)")


def host_bench(bundle_path: str | Path, runtimes: Sequence[str], warmup: int = 10, iters: int = 100,
               threads: int | None = None, reference: str | None = None, fused: bool = False,
               image: str | Path | None = None, progress: bool = True, isolate: bool = True) -> dict[str, Any]:
    """Every runtime of ``runtimes`` with the same ``threads`` (default :func:`default_threads`); each row in
    its own process unless ``isolate=False``."""
    from ..runtime.bundle import load_bundle

    threads = threads or default_threads()
    m = load_bundle(bundle_path, verify=False).manifest
    run = bench_runtime_isolated if isolate else bench_runtime
    rows = [run(bundle_path, r, warmup, iters, threads, reference, fused, image, progress) for r in runtimes]
    ref = next((r for r in rows if r["runtime"] == "torch"), None)
    for r in rows:
        r["speedup_vs_torch"] = (ref["latency_ms"]["end_to_end"]["p50"] / r["latency_ms"]["end_to_end"]["p50"]
                                 if ref else None)
    return {"schema": SCHEMA, "bundle": Path(bundle_path).name, "path": str(bundle_path), "target": m["target"],
            "backend": m.get("backend"), "quant": m["quant"], "config": m["model"].get("config"),
            "family": m.get("family", "lrdif"), "isolated_rows": bool(isolate),
            "device": host_info(threads), "warmup": warmup, "iters": iters, "rows": rows}


def _child(argv: Sequence[str]) -> int:
    """``python -m udc.sdk.bench.host ARGS_JSON``: one row, printed as one ``UDC-BENCH-ROW {json}`` line."""
    import json
    import warnings

    warnings.filterwarnings("ignore")
    from ..console.quiet import setup

    setup(False)
    a = json.loads(argv[0])
    try:
        row = bench_runtime(a["bundle"], a["runtime"], a["warmup"], a["iters"], a["threads"], a["reference"],
                            a["fused"], a["image"], a["progress"])
    except Exception as e:  # noqa: BLE001 - the parent turns it into a one-line typed error
        from ..errors import UdcError

        msg = str(e) if isinstance(e, UdcError) else f"{type(e).__name__}: {e}"
        print(ROW_MARK + json.dumps({"error": msg.splitlines()[0] if msg else type(e).__name__}), flush=True)
        return 2
    from ..console.table import json_safe

    print(ROW_MARK + json.dumps(json_safe(row), allow_nan=False), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through bench_runtime_isolated
    sys.exit(_child(sys.argv[1:]))

"""Export the mobile config to every target x quant and measure size, export time, delegation and
host latency: one table, plus the checks against the export targets.

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/export_matrix.py [--out DIR] [--config mobile]

The model is a fresh random-init ``mobile`` LRDif (no checkpoint: sizes, speed and delegation do
not depend on the weights; parity numbers are those of random weights). Latency is the median of
``--runs`` calls per component on this host, ``--threads`` threads, batch 1, after warm-up; the
"total" column is the four components back to back. Core ML and the ExecuTorch Core ML delegate
cannot run on Linux: their latency is "-".

Targets checked at the end: int8 bundles <= 30 % of the fp32 size; XNNPACK int8 ``clip_image``
>= 1.5x faster than fp32; compute outside the ExecuTorch delegate < 5 %.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")

from udc.sdk.console.quiet import setup as _quiet_setup  # noqa: E402

_quiet_setup("--verbose" in sys.argv)  # before the imports below log (torchao, torch pytree)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from udc.export.exporter import ExportRequest, load_model, run_export  # noqa: E402
from udc.sdk.runtime.bundle import load_bundle  # noqa: E402
from udc.sdk.models.components import on_device_components  # noqa: E402
from udc.sdk.console.table import format_table  # noqa: E402

MATRIX = [  # (target, backend, quant)
    ("executorch", "xnnpack", "fp32"),
    ("executorch", "xnnpack", "int8"),
    ("executorch", "portable", "fp32"),
    ("executorch", "coreml", "fp16"),
    ("coreml", None, "fp32"),
    ("coreml", None, "fp16"),
    ("coreml", None, "int8-weight"),
    ("coreml", None, "int4-palettize"),
    ("onnx", None, "fp32"),
    ("onnx", None, "int8"),
]
CHAIN = ("clip_image", "fpen_s2", "denoiser", "udcformer")


def latency_ms(bundle, component: str, threads: int, runs: int, warmup: int = 3) -> float | None:
    """Median ms of the runtime's execute call alone (``udc.sdk.bench.host.instrument_execute``: not the SDK's
    numpy/tensor conversions around it), ``threads`` threads, after ``warmup`` calls."""
    from types import SimpleNamespace

    from udc.sdk.bench.host import instrument_execute
    from udc.sdk.console.quiet import quiet_native
    from udc.sdk.runtime.runners import RuntimeUnavailableError, load

    entry = bundle.manifest["components"][component]
    try:
        with quiet_native():
            run = load(bundle.file(component), input_names=[i["name"] for i in entry["inputs"]], threads=threads)
    except RuntimeUnavailableError:
        return None
    sink, glued = instrument_execute(SimpleNamespace(steps=[SimpleNamespace(name=component, runner=run)]))
    rng = np.random.default_rng(0)
    feed = {i["name"]: rng.standard_normal(i["shape"]).astype(np.float32) for i in entry["inputs"]}
    for _ in range(warmup):
        run(feed)
    times = []
    for _ in range(runs):
        sink.clear()
        t0 = time.perf_counter()
        run(feed)
        times.append(sink.get(component, (time.perf_counter() - t0) * 1e3) / 1e3)
    return 1e3 * statistics.median(times)


def eager_ms(config: str, threads: int, runs: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    model, *_ = load_model(ExportRequest(output="x.udc", target="onnx", config=config))
    out = {}
    with torch.no_grad():
        for comp in on_device_components(model):
            args = tuple(comp.inputs.values())
            for _ in range(3):
                comp.module(*args)
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                comp.module(*args)
                ts.append(time.perf_counter() - t0)
            out[comp.name] = 1e3 * statistics.median(ts)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="mobile")
    ap.add_argument("--out", default=None, help="Keep the bundles here (default: a temporary directory).")
    ap.add_argument("--calib-n", type=int, default=128)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--only", default=None, help="Comma-separated target:quant[:backend] subset, e.g. executorch:int8")
    ap.add_argument("--verbose", action="store_true", help="also show third-party log lines (ExecuTorch, absl, torchao)")
    args = ap.parse_args(argv)
    from udc.sdk.console.quiet import setup

    setup(args.verbose)

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="udc-matrix-"))
    root.mkdir(parents=True, exist_ok=True)
    matrix = MATRIX
    if args.only:
        want = [tuple(s.split(":")) for s in args.only.split(",")]
        matrix = [m for m in MATRIX if any(w[0] == m[0] and w[1] == m[2] and (len(w) < 3 or w[2] == m[1])
                                           for w in want)]
    print(f"config {args.config}, random init (no checkpoint); bundles in {root}; host latency: {args.threads} "
          f"threads for every row (runtimes and torch eager), median of {args.runs} runtime execute calls", flush=True)
    eager = eager_ms(args.config, args.threads, args.runs)
    print("PyTorch eager (reference) ms: " + ", ".join(f"{k} {v:.2f}" for k, v in eager.items()), flush=True)

    rows, results = [], {}
    for target, backend, quant in matrix:
        name = f"{target}-{backend or 'default'}-{quant}"
        out = root / f"{name}.udc"
        print(f"\n== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            from udc.sdk.console.quiet import quiet_native

            with quiet_native():  # ExecuTorch's cpuinfo lines (C++, fd 2) while the export's parity run loads it
                res = run_export(ExportRequest(output=out, target=target, backend=backend, quant=quant, config=args.config,
                                           calib_n=args.calib_n, eval_n=args.eval_n, force=True,
                                               threads=args.threads), log=lambda s: print(s, flush=True))
        except Exception as e:  # noqa: BLE001 - one failed cell must not hide the others
            print(f"   FAILED: {type(e).__name__}: {e}", flush=True)
            rows.append([target, backend or "-", quant, "-", f"{time.perf_counter() - t0:.0f}", "-", "-", "-", "-", "-",
                         "-", "-", f"FAILED: {type(e).__name__}"])
            continue
        secs = time.perf_counter() - t0
        bundle = load_bundle(res.path)
        m = bundle.manifest
        size = sum(m["components"][c]["size_bytes"] for c in CHAIN) / 1e6
        dels = [m["components"][c]["delegation"] for c in CHAIN]
        if all(d is not None for d in dels):
            nodes = sum(d["delegated_nodes"] + d["non_delegated_nodes"] for d in dels)
            deleg = f"{100 * sum(d['delegated_nodes'] for d in dels) / nodes:.1f}"
            outside = f"{max(d['non_delegated_compute_pct'] for d in dels):.2f}"
        else:
            deleg = outside = "-"
        lat = {c: latency_ms(bundle, c, args.threads, args.runs) for c in CHAIN}
        total = sum(lat.values()) if all(v is not None for v in lat.values()) else None
        e2e = m["parity"]["end_to_end"]
        met = e2e.get("metrics") or {}
        par = (f"top1 {100 * met['top1_agreement']:.1f}% cos {met['cosine']:.4f}" if met else "-")
        if e2e.get("measured_with", "").startswith("torch"):
            par += " (emul.)"
        results[(target, backend, quant)] = {"size": size, "lat": lat, "dels": dels}
        fmt = (lambda v: f"{v:.2f}" if v is not None else "-")
        rows.append([target, backend or "-", quant, f"{size:.2f}", f"{secs:.0f}", deleg, outside,
                     fmt(lat["clip_image"]), fmt(lat["fpen_s2"]), fmt(lat["denoiser"]), fmt(lat["udcformer"]),
                     fmt(total), par + (" pass" if m["parity"]["passed"] else " FAIL")])
        if not args.out:
            shutil.rmtree(res.path, ignore_errors=True)

    print()
    print(format_table(["target", "backend", "quant", "size MB", "export s", "delegated %", "outside compute %",
                        "clip ms", "fpen ms", "denoiser ms", "udcformer ms", "total ms", "parity (end-to-end)"], rows,
                       title=f"Export matrix: LRDif '{args.config}' (random init), host {os.cpu_count()} CPUs, "
                             f"{args.threads} threads for every row; ms = the runtime's execute call alone"))
    print("\nTargets:")

    def ratio(a, b):
        ra, rb = results.get(a), results.get(b)
        return None if not ra or not rb else ra["size"] / rb["size"]

    for q, f, label in ((("executorch", "xnnpack", "int8"), ("executorch", "xnnpack", "fp32"), "ExecuTorch int8"),
                        (("onnx", None, "int8"), ("onnx", None, "fp32"), "ONNX int8"),
                        (("coreml", None, "int8-weight"), ("coreml", None, "fp32"), "Core ML int8-weight"),
                        (("coreml", None, "int4-palettize"), ("coreml", None, "fp32"), "Core ML int4-palettize")):
        r = ratio(q, f)
        if r is not None:
            print(f"  {label} size = {100 * r:.1f}% of fp32 (target <= 30%): {'met' if r <= 0.30 else 'NOT met'}")
    a, b = results.get(("executorch", "xnnpack", "int8")), results.get(("executorch", "xnnpack", "fp32"))
    if a and b and a["lat"]["clip_image"] and b["lat"]["clip_image"]:
        sp = b["lat"]["clip_image"] / a["lat"]["clip_image"]
        print(f"  XNNPACK int8 clip_image {sp:.2f}x faster than fp32 (target >= 1.5x): {'met' if sp >= 1.5 else 'NOT met'}")
    for key, r in results.items():
        if key[0] == "executorch" and key[1] != "portable" and all(r["dels"]):  # portable: no delegate asked
            worst = max(d["non_delegated_compute_pct"] for d in r["dels"])
            print(f"  {key[0]}/{key[1]}/{key[2]}: outside-delegate compute {worst:.2f}% (target < 5%): "
                  f"{'met' if worst < 5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One run, one table (like Ultralytics' ``benchmark``): every runtime x quant that runs on this host,
for one model config, through the SDK exactly as an app calls it.

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/compare.py [--config mobile] [--threads 2]
        [--iters 100] [--warmup 10] [--n 200] [--out DIR] [--reuse] [--json]

Rows: torch eager fp32 (the reference), then ExecuTorch/XNNPACK fp32 and int8 and ONNX Runtime fp32 and
int8 bundles, exported here by ``udc.export`` from one random-init model (``--seed``; or
``--checkpoint``). Columns: bundle size, top-1 agreement (and cosine) of the end-to-end logits with
the PyTorch reference on ``--n`` synthetic faces (``udc.sdk.parity_run``), p50 end-to-end ms of one
preprocessed face (``udc.sdk.bench``, ``--iters`` after ``--warmup``; preprocessing + the four
components + softmax, no face detection), SDK overhead as a share of model time, and the ratio of
torch eager fp32's p50 to the row's p50, measured in the same run. Core ML rows are listed but not
run on a non-macOS host (Core ML predicts only on macOS).

Targets (issue 6), checked and printed at the end, never asserted: ExecuTorch int8 >= 2x faster than
torch eager fp32 and no slower than ONNX Runtime int8; SDK overhead < 10 % of model time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")

from udc.sdk.table import format_table  # noqa: E402

ROWS = [("executorch", "fp32"), ("executorch", "int8"), ("onnx", "fp32"), ("onnx", "int8"),
        ("coreml", "fp16"), ("coreml", "int8-weight")]


def export(out: Path, target: str, quant: str, args) -> tuple[Path | None, str | None, float]:
    """``(bundle path, why it failed, export seconds)``."""
    from udc.export.exporter import ExportRequest, run_export

    path = out / f"{args.config}-{target}-{quant}.udc"
    if args.reuse and (path / "manifest.json").is_file():
        return path, None, 0.0
    t0 = time.perf_counter()
    try:
        req = ExportRequest(output=path, target=target, quant=quant, config=None if args.checkpoint else args.config,
                            checkpoint=args.checkpoint, calib_n=args.calib_n, eval_n=args.eval_n, seed=args.seed,
                            threads=args.threads, force=True)
        run_export(req, log=lambda *_: None)
    except Exception as e:  # noqa: BLE001 - one failing row must not hide the others
        return None, f"export failed: {str(e).splitlines()[0][:120]}", time.perf_counter() - t0
    return path, None, time.perf_counter() - t0


def synthetic_faces(n: int, crop_size: int, seed: int = 0, split: str = "test"):
    """``n`` procedural synthetic faces (balanced over the 7 expressions), aligned to ``crop_size``."""
    import numpy as np

    from udc.sdk.face_align import align_face
    from udc.sdk.parity_data import Faces
    from udc.train.synthetic.dataset import generate_arrays

    images, _, points = generate_arrays(-(-n // 7), size=crop_size, seed=seed, split=split)
    crops, lms = [], []
    for rgb, lm in zip(images[:n], points[:n]):
        crop, lm_crop, _ = align_face(rgb, lm, crop_size)
        crops.append(crop)
        lms.append((lm_crop / crop_size).astype(np.float32))
    return Faces(np.stack(crops), np.stack(lms), [f"synthetic/{split}/{i:05d}" for i in range(len(crops))],
                 {"kind": "synthetic", "generator": "udc.train.synthetic", "split": split, "seed": seed})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mobile", choices=["tiny", "mobile", "paper"])
    ap.add_argument("--checkpoint", default=None, help="export this LRDif checkpoint instead of a random-init model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--n", type=int, default=200, help="faces for the top-1 agreement")
    ap.add_argument("--calib-n", type=int, default=256)
    ap.add_argument("--eval-n", type=int, default=64, help="faces for the export's own parity report")
    ap.add_argument("--out", type=Path, default=Path("runs/compare"))
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out")
    ap.add_argument("--rows", default=None,
                    help="only these target:quant rows, comma-separated (e.g. executorch:int8,onnx:int8); default all")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    wanted = ROWS if not args.rows else [tuple(r.split(":", 1)) for r in args.rows.split(",")]
    unknown = [w for w in wanted if w not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {', '.join(t + ':' + q for t, q in ROWS)}")

    import torch

    from udc.sdk.bench import bench_runtime, host_info
    from udc.sdk.bundle import load_bundle
    from udc.sdk.parity_run import host_parity
    from udc.sdk.runtimes import TARGET_RUNTIME, runtime_problem

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results, faces = [], None
    torch_row = None
    for target, quant in wanted:
        runtime = TARGET_RUNTIME[target]
        why = runtime_problem(runtime, target)
        row = {"format": target, "runtime": runtime, "quant": quant, "size_mb": None, "top1_agreement": None,
               "cosine": None, "p50_ms": None, "sdk_overhead_pct": None, "vs_torch_fp32": None, "export_s": None,
               "status": "ok"}
        results.append(row)
        if why is not None:
            row["status"] = f"not run here: {why.split(';')[0]}"
            continue
        print(f"[{target} {quant}] export{' (or reuse)' if args.reuse else ''} ...", file=sys.stderr, flush=True)
        path, err, secs = export(args.out, target, quant, args)
        row["export_s"] = round(secs, 1)
        if err:
            row["status"] = err
            continue
        b = load_bundle(path)
        if faces is None:
            faces = synthetic_faces(args.n, int(b.manifest["preprocessing"]["crop_size"]), seed=args.seed)
        print(f"[{target} {quant}] parity on {len(faces)} faces ...", file=sys.stderr, flush=True)
        par = host_parity(b, faces, runtime, threads=args.threads, seed=args.seed, progress=False)
        row["size_mb"] = sum(c["size_bytes"] for n, c in b.manifest["components"].items() if n != "pipeline") / 1e6
        row["top1_agreement"] = par["end_to_end"]["top1_agreement"]
        row["cosine"] = par["end_to_end"]["cosine"]
        row["parity_passed"] = par["passed"]
        if torch_row is None:  # the reference, measured in this same run (on the first bundle's reference model)
            print("[torch eager fp32] bench ...", file=sys.stderr, flush=True)
            tb = bench_runtime(path, "torch", args.warmup, args.iters, args.threads, progress=False)
            torch_row = {"format": "pytorch (eager)", "runtime": "torch", "quant": "fp32", "size_mb": None,
                         "top1_agreement": 1.0, "cosine": 1.0, "p50_ms": tb["latency_ms"]["end_to_end"]["p50"],
                         "sdk_overhead_pct": tb["sdk_overhead_pct"], "vs_torch_fp32": 1.0, "export_s": None,
                         "status": "reference"}
        print(f"[{target} {quant}] bench ...", file=sys.stderr, flush=True)
        rb = bench_runtime(path, runtime, args.warmup, args.iters, args.threads, progress=False)
        row["p50_ms"] = rb["latency_ms"]["end_to_end"]["p50"]
        row["sdk_overhead_pct"] = rb["sdk_overhead_pct"]
    rows = ([torch_row] if torch_row else []) + results
    ref = torch_row["p50_ms"] if torch_row else None
    for r in rows:
        if ref and r["p50_ms"]:
            r["vs_torch_fp32"] = ref / r["p50_ms"]

    def find(fmt, q):
        return next((r for r in rows if r["format"] == fmt and r["quant"] == q and r["p50_ms"]), None)

    checks = []
    et8, ort8 = find("executorch", "int8"), find("onnx", "int8")
    if et8 and ref:
        checks.append(("ExecuTorch int8 >= 2x faster than torch eager fp32", et8["vs_torch_fp32"] >= 2.0,
                       f"{et8['vs_torch_fp32']:.2f}x"))
    if et8 and ort8:
        checks.append(("ExecuTorch int8 no slower than ONNX Runtime int8", et8["p50_ms"] <= ort8["p50_ms"],
                       f"{et8['p50_ms']:.2f} vs {ort8['p50_ms']:.2f} ms"))
    worst = max((r["sdk_overhead_pct"] for r in rows if r["sdk_overhead_pct"] is not None), default=None)
    if worst is not None:
        checks.append(("SDK overhead < 10 % of model time (worst row)", worst < 10.0, f"{worst:.1f} %"))
    info = host_info(args.threads)
    report = {"config": args.config, "checkpoint": args.checkpoint, "host": info, "warmup": args.warmup,
              "iters": args.iters, "faces": len(faces) if faces is not None else 0, "rows": rows,
              "checks": [{"target": t, "met": ok, "measured": m} for t, ok, m in checks]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    table = format_table(
        ["format", "runtime", "quant", "size MB", "top-1 agree", "cosine", "p50 ms", "SDK ovh %", "vs torch fp32",
         "status"],
        [[r["format"], r["runtime"], r["quant"], f(r["size_mb"], ".2f"),
          f(None if r["top1_agreement"] is None else 100 * r["top1_agreement"], ".1f"), f(r["cosine"], ".5f"),
          f(r["p50_ms"], ".2f"), f(r["sdk_overhead_pct"], ".1f"), f(r["vs_torch_fp32"], ".2f") + ("x" if r["vs_torch_fp32"] else ""),
          r["status"]] for r in rows],
        title=(f"udc compare: {args.config} config ({'checkpoint ' + args.checkpoint if args.checkpoint else 'random init, seed %d' % args.seed}), "
               f"{info['cpu']}, {args.threads} thread(s), {platform.system()}; p50 of {args.iters} runs after "
               f"{args.warmup} warm-up; top-1 agreement on {report['faces']} synthetic faces"))
    print(table)
    for t, ok, m in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {t}: {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

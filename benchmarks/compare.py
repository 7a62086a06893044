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

DDAMFN rows (issue 8): ``--ddamfn tiny|paper`` adds a second table, the same runtimes x quants for a DDAMFN
bundle (one component, image only), exported from a random init or from ``--ddamfn-checkpoint CKPT``. Both
tables carry the model's parameters and MACs (meta device, batch 1). ``--accuracy-data DIR`` (a dataset udc
reads, e.g. the synthetic UDC set ``udc-data synthetic`` + ``udc-synth`` writes) adds the accuracy of every
bundle on DIR's test split (each face aligned from its stored landmarks, run through the bundle as an app runs
it); only for checkpoints: a random init's accuracy means nothing. Nothing is trained here.

    .venv/bin/python benchmarks/compare.py --config mobile --ddamfn paper \
        --ddamfn-checkpoint runs/ddamfn-paper/best.pt --accuracy-data /data/faces-udc
    .venv/bin/python benchmarks/compare.py --only-ddamfn --ddamfn tiny --iters 5 --n 14   # smoke run
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


def export(out: Path, target: str, quant: str, args, family: str = "lrdif", config: str | None = None,
           checkpoint: str | None = None) -> tuple[Path | None, str | None, float]:
    """``(bundle path, why it failed, export seconds)``."""
    from udc.export.exporter import ExportRequest, run_export

    config = config or args.config
    prefix = config if family == "lrdif" else f"ddamfn-{config}"
    path = out / f"{prefix}-{target}-{quant}.udc"
    if args.reuse and (path / "manifest.json").is_file():
        return path, None, 0.0
    t0 = time.perf_counter()
    try:
        req = ExportRequest(output=path, target=target, quant=quant, config=None if checkpoint else config,
                            family=None if checkpoint else family, checkpoint=checkpoint, calib_n=args.calib_n,
                            eval_n=args.eval_n, seed=args.seed, threads=args.threads, force=True)
        from udc.sdk.quiet import quiet_native

        with quiet_native():  # the export's own parity run loads ExecuTorch (cpuinfo lines from C++)
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


def model_size(family: str, config: str, checkpoint: str | None) -> tuple[int, int]:
    """``(parameters, MACs)`` of the on-device model at batch 1 (meta device; LRDif: the four components)."""
    import torch

    from udc.sdk.profiling import count_macs, count_params

    if checkpoint:
        from udc.sdk.checkpoint import read_checkpoint
        from udc.sdk.model_registry import checkpoint_family, config_from_dict

        payload = read_checkpoint(checkpoint)
        family = checkpoint_family(payload)
        cfg = config_from_dict(family, payload["config"])
    else:
        from udc.sdk.model_registry import get_model_config

        cfg = get_model_config(family, config)
    if family == "lrdif":
        from udc.sdk.profiling import profile_config

        total = next(r for r in profile_config(cfg) if r.component == "on-device total")
        return total.params, total.macs
    from udc.sdk.models.ddamfn import DDAMFN

    with torch.device("meta"):
        m = DDAMFN(cfg).eval()
        image = torch.empty(1, 3, cfg.image_size, cfg.image_size)
    return count_params(m), count_macs(m, image)


def labelled_faces(root: str, crop_size: int, n: int | None, split: str = "test"):
    """``(Faces, labels, missed, paths)``: the ``split`` faces of a dataset udc reads, aligned from their stored
    landmarks. Every face is scored (issue 13): face crops MediaPipe misses take the landmark cache's
    fallback (``fallback="auto"``: upscaled, then canonical landmarks over the crop); a face that still has
    no landmarks or cannot be read is not in ``Faces`` but its label is in ``missed`` (scored as wrong).
    ``paths``: faces per landmark path (dataset / detected / upscaled / canonical / failed)."""
    import numpy as np

    from udc.sdk.errors import UdcError
    from udc.sdk.face_align import align_face
    from udc.sdk.images import load_image
    from udc.sdk.parity_data import Faces
    from udc.train.datasets import open_dataset
    from udc.train.datasets.base import DatasetIndex
    from udc.train.datasets.landmark_cache import PATHS, ensure_landmarks

    index = open_dataset(Path(root))
    recs = sorted((r for r in index.records if r.split == split), key=lambda r: r.key)[:n]
    if not recs:
        raise SystemExit(f"--accuracy-data {root}: no '{split}' faces")
    cached = None
    if any(r.landmarks is None for r in recs):  # only these records (the cache file keeps every other entry)
        sub = DatasetIndex(index.name, index.root, recs, index.label_map, index.dropped)
        cached = ensure_landmarks(sub, progress=False, fallback="auto")
    crops, lms, labels, names, missed = [], [], [], [], []
    paths = dict.fromkeys(PATHS, 0)
    for r in recs:
        lm = r.landmarks if r.landmarks is not None else cached.get(r.key)
        path = "dataset" if r.landmarks is not None else cached.sources.get(r.key, "failed")
        try:
            if lm is None:
                raise UdcError("no landmarks")
            rgb = load_image(r.pixels if r.pixels is not None else r.path)
            crop, lm_crop, _ = align_face(rgb, np.asarray(lm, np.float32), crop_size)  # NaN -> LandmarksError
        except UdcError:
            paths["failed"] += 1
            missed.append(int(r.label))
            continue
        paths[path] += 1
        crops.append(crop)
        lms.append((lm_crop / crop_size).astype(np.float32))
        labels.append(int(r.label))
        names.append(r.key)
    s = crop_size
    faces = Faces(np.stack(crops) if crops else np.zeros((0, s, s, 3), np.uint8),
                  np.stack(lms) if lms else np.zeros((0, 68, 2), np.float32), names,
                  {"kind": "dataset", "root": str(root), "split": split, "landmark_paths": paths})
    return faces, np.asarray(labels, np.int64), np.asarray(missed, np.int64), paths


def scores(pred, labels, missed) -> tuple[float, float]:
    """``(accuracy, UAR)`` over every face: ``pred`` for the scored faces, ``missed`` faces count as wrong."""
    import numpy as np

    pred, labels, missed = np.asarray(pred), np.asarray(labels), np.asarray(missed)
    total = len(labels) + len(missed)
    if total == 0:
        return float("nan"), float("nan")
    correct = pred == labels
    recalls = []
    for k in np.unique(np.concatenate([labels, missed])):
        n_k = int((labels == k).sum() + (missed == k).sum())
        recalls.append(float(correct[labels == k].sum()) / n_k)
    return float(correct.sum()) / total, float(np.mean(recalls))


def bundle_accuracy(path: Path, runtime: str, faces, labels, missed, threads: int) -> tuple[float, float]:
    """``(accuracy, UAR)`` of the bundle on ``faces`` (the chain as an app runs it, one face at a time); the
    ``missed`` faces (no landmarks, unreadable) are in the denominator, scored as wrong."""
    import numpy as np

    from udc.sdk.recognizer import Recognizer

    rec = Recognizer.load(path, runtime, threads=threads)
    pred = np.asarray([int(np.argmax(rec.run_model(c, lm)[0])) for c, lm in zip(faces.crops, faces.landmarks)],
                      np.int64)
    return scores(pred, labels, missed)


def run_rows(wanted, args, family: str, config: str, checkpoint: str | None, acc_faces=None):
    """Export, parity, bench (and accuracy) of every wanted row for one model; ``(rows incl. the torch row, faces)``."""
    import torch  # noqa: F401

    from udc.sdk.bench import bench_runtime_isolated as bench_runtime  # each row in its own process
    from udc.sdk.bundle import load_bundle
    from udc.sdk.quiet import quiet_native
    from udc.sdk.parity_run import host_parity
    from udc.sdk.runtimes import TARGET_RUNTIME, runtime_problem

    results, faces, torch_row = [], None, None
    name = f"{family} {config}" if not checkpoint else f"{family} {checkpoint}"
    for target, quant in wanted:
        runtime = TARGET_RUNTIME[target]
        why = runtime_problem(runtime, target)
        row = {"family": family, "format": target, "runtime": runtime, "quant": quant, "size_mb": None,
               "top1_agreement": None, "cosine": None, "p50_ms": None, "sdk_overhead_pct": None,
               "vs_torch_fp32": None, "export_s": None, "accuracy": None, "uar": None, "peak_rss_mb": None,
               "status": "ok"}
        results.append(row)
        if why is not None:
            row["status"] = f"not run here: {why.split(';')[0]}"
            continue
        print(f"[{name} {target} {quant}] export{' (or reuse)' if args.reuse else ''} ...", file=sys.stderr, flush=True)
        path, err, secs = export(args.out, target, quant, args, family, config, checkpoint)
        row["export_s"] = round(secs, 1)
        if err:
            row["status"] = err
            continue
        b = load_bundle(path)
        if faces is None:
            faces = synthetic_faces(args.n, int(b.manifest["preprocessing"]["crop_size"]), seed=args.seed)
        print(f"[{name} {target} {quant}] parity on {len(faces)} faces ...", file=sys.stderr, flush=True)
        with quiet_native():  # ExecuTorch's cpuinfo lines while the runtime loads
            par = host_parity(b, faces, runtime, threads=args.threads, seed=args.seed, progress=False)
        row["size_mb"] = sum(c["size_bytes"] for n, c in b.manifest["components"].items() if n != "pipeline") / 1e6
        row["top1_agreement"] = par["end_to_end"]["top1_agreement"]
        row["cosine"] = par["end_to_end"]["cosine"]
        row["parity_passed"] = par["passed"]
        if torch_row is None:  # the reference, measured in this same run (on the first bundle's reference model)
            print(f"[{name} torch eager fp32] bench ...", file=sys.stderr, flush=True)
            tb = bench_runtime(path, "torch", args.warmup, args.iters, args.threads, progress=False)
            torch_row = {"family": family, "format": "pytorch (eager)", "runtime": "torch", "quant": "fp32",
                         "size_mb": None, "top1_agreement": 1.0, "cosine": 1.0,
                         "p50_ms": tb["latency_ms"]["end_to_end"]["p50"], "sdk_overhead_pct": tb["sdk_overhead_pct"],
                         "peak_rss_mb": tb["memory_mb"]["peak_rss"],
                         "vs_torch_fp32": 1.0, "export_s": None, "accuracy": None, "uar": None, "status": "reference"}
            if acc_faces is not None:
                torch_row["accuracy"], torch_row["uar"] = bundle_accuracy(path, "torch", *acc_faces[:3],
                                                                           args.threads)
        print(f"[{name} {target} {quant}] bench ...", file=sys.stderr, flush=True)
        rb = bench_runtime(path, runtime, args.warmup, args.iters, args.threads, progress=False)
        row["p50_ms"] = rb["latency_ms"]["end_to_end"]["p50"]
        row["sdk_overhead_pct"] = rb["sdk_overhead_pct"]
        row["peak_rss_mb"] = rb["memory_mb"]["peak_rss"]
        if acc_faces is not None:
            print(f"[{name} {target} {quant}] accuracy on {len(acc_faces[1]) + len(acc_faces[2])} faces ...",
                  file=sys.stderr, flush=True)
            row["accuracy"], row["uar"] = bundle_accuracy(path, runtime, *acc_faces[:3], args.threads)
    rows = ([torch_row] if torch_row else []) + results
    ref = torch_row["p50_ms"] if torch_row else None
    for r in rows:
        if ref and r["p50_ms"]:
            r["vs_torch_fp32"] = ref / r["p50_ms"]
    return rows, faces


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
    ap.add_argument("--ddamfn", default=None, choices=["tiny", "paper"],
                    help="also benchmark DDAMFN of this config (a second table)")
    ap.add_argument("--ddamfn-checkpoint", default=None, help="export this DDAMFN checkpoint instead of a random init")
    ap.add_argument("--only-ddamfn", action="store_true", help="skip the LRDif table")
    ap.add_argument("--accuracy-data", default=None,
                    help="dataset (e.g. the synthetic UDC set) whose test split gives each checkpoint's bundle accuracy")
    ap.add_argument("--accuracy-n", type=int, default=None, help="at most this many test faces for --accuracy-data")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="also show third-party log lines (ExecuTorch, absl, torchao)")
    args = ap.parse_args()
    from udc.sdk.quiet import setup

    setup(args.verbose)
    if args.ddamfn_checkpoint and not args.ddamfn:
        args.ddamfn = "paper"  # the table label only: the checkpoint carries its config
    if args.only_ddamfn and not args.ddamfn:
        ap.error("--only-ddamfn needs --ddamfn tiny|paper (or --ddamfn-checkpoint)")
    wanted = ROWS if not args.rows else [tuple(r.split(":", 1)) for r in args.rows.split(",")]
    unknown = [w for w in wanted if w not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; known: {', '.join(t + ':' + q for t, q in ROWS)}")

    import torch

    from udc.sdk.bench import host_info

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    models = [] if args.only_ddamfn else [("lrdif", args.config, args.checkpoint)]
    if args.ddamfn:
        models.append(("ddamfn", args.ddamfn, args.ddamfn_checkpoint))
    tables = []
    for family, config, ckpt in models:
        params, macs = model_size(family, config, ckpt)
        acc = None
        if args.accuracy_data and ckpt:
            from udc.sdk.checkpoint import load_checkpoint

            crop = load_checkpoint(ckpt).cfg.image_size
            acc = labelled_faces(args.accuracy_data, crop, args.accuracy_n)
        rows, faces = run_rows(wanted, args, family, config, ckpt, acc)
        tables.append({"family": family, "config": config, "checkpoint": ckpt, "params": params, "macs": macs,
                       "faces": len(faces) if faces is not None else 0,
                       "accuracy_faces": len(acc[1]) + len(acc[2]) if acc is not None else 0,
                       "accuracy_landmark_paths": acc[3] if acc is not None else None, "rows": rows})
    def find(rows, fmt, q):
        return next((r for r in rows if r["format"] == fmt and r["quant"] == q and r["p50_ms"]), None)

    info = host_info(args.threads)
    for t in tables:
        checks, rows = [], t["rows"]
        ref = next((r["p50_ms"] for r in rows if r["status"] == "reference"), None)
        et8, ort8 = find(rows, "executorch", "int8"), find(rows, "onnx", "int8")
        if et8 and ref:
            checks.append(("ExecuTorch int8 >= 2x faster than torch eager fp32", et8["vs_torch_fp32"] >= 2.0,
                           f"{et8['vs_torch_fp32']:.2f}x"))
        if et8 and ort8:
            checks.append(("ExecuTorch int8 no slower than ONNX Runtime int8", et8["p50_ms"] <= ort8["p50_ms"],
                           f"{et8['p50_ms']:.2f} vs {ort8['p50_ms']:.2f} ms"))
        worst = max((r["sdk_overhead_pct"] for r in rows if r["sdk_overhead_pct"] is not None), default=None)
        if worst is not None:
            checks.append(("SDK overhead < 10 % of model time (worst row)", worst < 10.0, f"{worst:.1f} %"))
        t["checks"] = [{"target": c, "met": ok, "measured": m} for c, ok, m in checks]
    report = {"host": info, "warmup": args.warmup, "iters": args.iters, "tables": tables}
    if not args.only_ddamfn:  # the keys of the LRDif-only report, kept
        first = tables[0]
        report.update({"config": args.config, "checkpoint": args.checkpoint, "faces": first["faces"],
                       "rows": first["rows"], "checks": first["checks"]})
    if args.json:
        from udc.sdk.table import dumps_json

        print(dumps_json(report))
        return 0

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    for t in tables:
        acc = t["accuracy_faces"] > 0
        cols = ["format", "runtime", "quant", "size MB", "top-1 agree", "cosine", "p50 ms", "SDK ovh %", "vs torch fp32",
                "peak RSS MB"]
        cols += ["accuracy %", "UAR %"] if acc else []
        body = []
        for r in t["rows"]:
            row = [r["format"], r["runtime"], r["quant"], f(r["size_mb"], ".2f"),
                   f(None if r["top1_agreement"] is None else 100 * r["top1_agreement"], ".1f"), f(r["cosine"], ".5f"),
                   f(r["p50_ms"], ".2f"), f(r["sdk_overhead_pct"], ".1f"),
                   f(r["vs_torch_fp32"], ".2f") + ("x" if r["vs_torch_fp32"] else ""), f(r.get("peak_rss_mb"), ".0f")]
            if acc:
                row += [f(None if r["accuracy"] is None else 100 * r["accuracy"], ".1f"),
                        f(None if r["uar"] is None else 100 * r["uar"], ".1f")]
            body.append(row + [r["status"]])
        src = "checkpoint " + t["checkpoint"] if t["checkpoint"] else "random init, seed %d" % args.seed
        title = (f"udc compare: {t['family']} {t['config']} ({src}), {t['params'] / 1e6:.3f} M params, "
                 f"{t['macs'] / 1e6:.1f} M MACs; {info['cpu']}, {args.threads} thread(s) for every row, each row's bench "
                 f"in its own process (peak RSS its own), model time = the runtime's execute alone, {platform.system()}; p50 of "
                 f"{args.iters} runs after {args.warmup} warm-up; top-1 agreement on {t['faces']} synthetic faces"
                 + (f"; accuracy on all {t['accuracy_faces']} test faces of {args.accuracy_data} (landmarks: "
                    + ", ".join(f"{v} {k}" for k, v in t["accuracy_landmark_paths"].items() if v or k == "failed")
                    + "; failed faces scored as wrong)" if acc else ""))
        print(format_table(cols + ["status"], body, title=title))
        for c in t["checks"]:
            print(f"  [{'met' if c['met'] else 'NOT met'}] {c['target']}: {c['measured']}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One run, one table (like Ultralytics' ``benchmark``): the LRDif chain on every runtime a user would pick
instead, each configured as its own documentation recommends, same thread count, each row in its own process.

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/compare.py [--config mobile] [--threads 2]
        [--checkpoint CKPT] [--accuracy-data DIR] [--calib DIR] [--iters 100] [--warmup 10] [--out DIR] [--reuse]

Rows (``--rows`` picks some; the reference always runs):

* ``torch`` eager fp32, the reference; ``torch-compile`` fp32 (``torch.compile`` of each component, inductor,
  default mode; its compile time is the first call, shown as its export time);
* ``executorch`` XNNPACK fp32 and int8 (PT2E, the export's own recipe), each as four programs and ``--fuse``d
  into one (``executorch:int8:fused``): the bundle is exported once with ``--fuse`` and run both ways;
* ``onnx`` (ONNX Runtime) fp32 and int8 (QDQ ``quantize_static``), *tuned*: ``ORT_ENABLE_ALL``, intra-op
  threads = ``--threads``, sequential, spinning on, the transformer optimizer on the fp32 graphs where it
  fuses anything (:data:`udc.sdk.runtime.onnx_runtime.TUNED`; the row says what it fused);
* ``litert`` (ex-TensorFlow Lite) fp32 and int8 through ``litert-torch`` (PT2E int8, litert-torch's own
  quantizer, the ExecuTorch export's calibration faces) run by ``ai-edge-litert``'s interpreter (XNNPACK,
  ``num_threads``). ``litert-torch`` cannot co-install with the pinned toolchain (README), so these rows run in
  a second environment, ``make litert-env`` (``--litert-python``); without it the rows say "not installed";
* ``coreml`` rows are listed, run only on macOS;
* ``host compute floor``: the model's MACs / the fp32 GEMM peak measured on this CPU at ``--threads`` (the faster
  of ``torch.mm`` and XNNPACK's GEMM through ExecuTorch: torch's BLAS path is not the fastest on every CPU),
  measured before the rows, after each ``--repeats`` round and after the rows, the best of those
  (:func:`best_peak`). An ExecuTorch fp32 row faster than that floor means the peak was under-measured: the fp32
  target then reads "not measured", never "met".

Columns: size, export time, top-1 agreement and logit cosine with torch eager fp32, accuracy and UAR (with
``--checkpoint`` and ``--accuracy-data``), p50 / p90 end-to-end ms of one preprocessed face (preprocessing +
the model + softmax, no face detection), peak RSS of the row's process, and torch eager fp32's p50 / the row's
p50, all from this run. Agreement is on ``--accuracy-data``'s test faces (real faces, aligned from their
landmarks) when given, else on ``--n`` synthetic faces (the table says which). Without ``--checkpoint`` the
model is a random init (``--seed``), labelled so. Checks fail closed: a NaN or missing number is a miss.
``--repeats N`` times each row in N processes (faces scored in the first) and shows the fastest p50, every
process's p50 in the row's notes: on a small shared VM one process's batch-1 latency can be 1.7x another's. The
processes after the first are taken in turn, row after row (every row's 2nd before any row's 3rd), so a slow spell
of the host falls on all rows alike; the int8 target's line adds the ratio of each such round.

Targets (issue 16), printed, never asserted: ExecuTorch int8 >= 1.2x faster than the best tuned peer with top-1
agreement >= 99 % on real faces; ExecuTorch fp32 within 1.5x of the host compute floor; the int8 bundle <= 30 %
of fp32; ``--fuse`` >= 1.2x faster than four programs, judged on the pair timed alternately in one process
(``compare_etdump.py``; rows in separate processes differ by more than fusing saves on a noisy host); the int8
bundle's export <= 5 min (``--jobs``, ``--recipes-from``: as ``udc-export``'s, the line says which were used).

DDAMFN (issue 8): ``--ddamfn tiny|paper`` adds a second table for a DDAMFN bundle (one program; no fused rows),
from a random init or ``--ddamfn-checkpoint CKPT``.

    .venv/bin/python benchmarks/compare.py --config mobile --checkpoint runs/fer/stage2/best.pt \
        --accuracy-data /data/fer2013-udc --calib /data/fer2013-udc
    .venv/bin/python benchmarks/compare.py --config tiny --iters 5 --warmup 1 --n 7   # smoke run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")

from udc.sdk.console.table import format_table  # noqa: E402

HERE = Path(__file__).resolve().parent
CHILD = HERE / "compare_child.py"
CHILD_MARK = "UDC-COMPARE-ROW "
ETDUMP = HERE / "compare_etdump.py"
LITERT_ENV = HERE.parent / ".venv-litert"
LITERT_INSTALL = "make litert-env"

#: every row: key -> (label, runtime, target of the bundle it runs, quant, options)
PEERS = {
    "torch:fp32": ("pytorch eager", "torch", "executorch", "fp32", {}),
    "torch-compile:fp32": ("torch.compile", "torch", "executorch", "fp32", {"compile": True}),
    "executorch:fp32": ("executorch xnnpack", "executorch", "executorch", "fp32", {}),
    "executorch:fp32:fused": ("executorch xnnpack --fuse", "executorch", "executorch", "fp32", {"fused": True}),
    "executorch:int8": ("executorch xnnpack", "executorch", "executorch", "int8", {}),
    "executorch:int8:fused": ("executorch xnnpack --fuse", "executorch", "executorch", "int8", {"fused": True}),
    # ExecuTorch's OpenVINO delegate (Intel CPUs; phones run XNNPACK): its own target line, never the XNNPACK one
    "executorch-openvino:int8": ("executorch openvino", "executorch", "executorch", "int8", {"backend": "openvino"}),
    "onnx:fp32": ("onnxruntime (tuned)", "onnxruntime", "onnx", "fp32", {"ort_tuning": True}),
    "onnx:int8": ("onnxruntime (tuned)", "onnxruntime", "onnx", "int8", {"ort_tuning": True}),
    "litert:fp32": ("litert (litert-torch)", "litert", "executorch", "fp32", {"litert": True}),
    "litert:int8": ("litert (litert-torch)", "litert", "executorch", "int8", {"litert": True}),
    "coreml:fp16": ("coreml", "coreml", "coreml", "fp16", {}),
    "coreml:int8-weight": ("coreml", "coreml", "coreml", "int8-weight", {}),
}
REFERENCE = "torch:fp32"
#: the peers ExecuTorch int8 must beat by 1.2x (each tuned as its documentation says)
TUNED_PEERS = ("torch:fp32", "torch-compile:fp32", "onnx:fp32", "onnx:int8", "litert:fp32", "litert:int8")
#: The peers the int8 speed target names ("ORT int8 or LiteRT int8"): without both, it is not measured (a run of a
#: few rows once printed "met" against torch eager alone).
INT8_PEERS = ("onnx:int8", "litert:int8")
#: kept for callers of the old ``target:quant`` keys
ROWS = [tuple(k.split(":")[:2]) for k in PEERS if k.startswith(("executorch", "onnx", "coreml")) and "fused" not in k
        and not PEERS[k][4].get("backend")]
#: the note an OpenVINO row carries: its delegate takes no thread setting
OPENVINO_THREADS = ("OpenVINO's CPU plugin picks its own threads (ExecuTorch's OpenVINO delegate takes no setting; "
                    "{cpus} CPUs here, --threads {threads})")


def export(out: Path, target: str, quant: str, args, family: str = "lrdif", config: str | None = None,
           checkpoint: str | None = None, fuse: bool = False, backend: str | None = None
           ) -> tuple[Path | None, str | None, float | None]:
    """``(bundle path, why it failed, export seconds)``; seconds ``None`` when a bundle was reused (not measured).
    ``backend``: an ExecuTorch delegate other than the default (its name goes in the bundle's)."""
    from udc.export.exporter import ExportRequest, run_export

    config = config or args.config
    prefix = config if family == "lrdif" else f"ddamfn-{config}"
    path = out / f"{prefix}-{target}{'-' + backend if backend else ''}-{quant}{'-fused' if fuse else ''}.udc"
    if args.reuse and (path / "manifest.json").is_file():
        return path, None, None
    t0 = time.perf_counter()
    try:
        hint = recipes_from(args.recipes_from, target) if quant == "int8" else None
        req = ExportRequest(output=path, target=target, backend=backend, quant=quant,
                            config=None if checkpoint else config,
                            family=None if checkpoint else family, checkpoint=checkpoint, calib_n=args.calib_n,
                            calib=args.calib, eval_n=args.eval_n, seed=args.seed, threads=args.threads, fuse=fuse,
                            force=True, jobs=args.jobs, recipes_from=hint)
        from udc.sdk.console.quiet import quiet_native

        log_path = out / f"{path.name}.export.log"  # the export's own lines, timestamped (where its time went)
        with quiet_native(), open(log_path, "w") as fh:  # its parity run loads ExecuTorch (cpuinfo lines from C++)
            def log(*parts):
                fh.write(f"{time.perf_counter() - t0:8.1f} s  {' '.join(str(p) for p in parts)}\n")
                fh.flush()

            run_export(req, log=log)
    except Exception as e:  # noqa: BLE001 - one failing row must not hide the others
        return None, f"export failed: {str(e).splitlines()[0][:120]}", time.perf_counter() - t0
    return path, None, time.perf_counter() - t0


def recipes_from(bundle: str | None, target: str) -> str | None:
    """``--recipes-from``: the bundle, for an int8 export of its own target (an ONNX bundle's recipes do not guide
    the ExecuTorch export, nor the other way round)."""
    if bundle is None:
        return None
    from udc.sdk.runtime.bundle import read_manifest

    return bundle if read_manifest(bundle).get("target") == target else None


def export_how(args, target: str, quant: str, fuse: bool, backend: str | None = None) -> str:
    """How an export ran, for the export-time target line."""
    parts = ([f"--backend {backend}"] if backend else []) + ["with --fuse" if fuse else "four programs",
                                                             f"--jobs {args.jobs}"]
    if quant == "int8" and recipes_from(args.recipes_from, target):
        parts.append(f"--recipes-from {Path(args.recipes_from).name}")
    return ", ".join(parts)


def synthetic_faces(n: int, crop_size: int, seed: int = 0, split: str = "test"):
    """``n`` procedural synthetic faces (balanced over the 7 expressions), aligned to ``crop_size``."""
    import numpy as np

    from udc.sdk.faces.align import align_face
    from udc.sdk.parity.data import Faces
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

    from udc.sdk.models.profiling import count_macs, count_params

    if checkpoint:
        from udc.sdk.models.checkpoint import read_checkpoint
        from udc.sdk.models.registry import checkpoint_family, config_from_dict

        payload = read_checkpoint(checkpoint)
        family = checkpoint_family(payload)
        cfg = config_from_dict(family, payload["config"])
    else:
        from udc.sdk.models.registry import get_model_config

        cfg = get_model_config(family, config)
    if family == "lrdif":
        from udc.sdk.models.profiling import profile_config

        total = next(r for r in profile_config(cfg) if r.component == "on-device total")
        return total.params, total.macs
    from udc.sdk.models.ddamfn.model import DDAMFN

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
    from udc.sdk.faces.align import align_face
    from udc.sdk.faces.images import load_image
    from udc.sdk.parity.data import Faces
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


# ------------------------------------------------------------------------------------------ scoring (fail closed)
def top1_agreement(logits, ref) -> float:
    """Share of faces whose top-1 class equals the reference's. A face with any non-finite logit (either side)
    disagrees; no faces, or logits of different shapes, is an error, never a number."""
    import numpy as np

    a, b = np.asarray(logits, np.float64), np.asarray(ref, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"logits {a.shape} vs reference {b.shape}: not the same faces x classes")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError("no faces (or no classes) to compare")
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    return float((ok & (a.argmax(1) == b.argmax(1))).sum()) / a.shape[0]


def mean_cosine(logits, ref) -> float:
    """Mean per-face cosine of the logits with the reference's (NaN when any is non-finite: a check then misses)."""
    import numpy as np

    a, b = np.asarray(logits, np.float64), np.asarray(ref, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"logits {a.shape} vs reference {b.shape}: nothing to compare")
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(1) / np.where(den > 0, den, np.nan)))


def predictions(logits):
    """argmax per face; a face with a non-finite logit predicts -1 (always wrong)."""
    import numpy as np

    a = np.asarray(logits, np.float64)
    return np.where(np.isfinite(a).all(1), a.argmax(1), -1)


# ------------------------------------------------------------------------------------------ host compute floor
def torch_mm_peak(threads: int, sizes=(512, 1024, 2048), reps: int = 5) -> tuple[float, int]:
    """``(GMAC/s, size)``: the best fp32 rate of ``torch.mm`` at ``threads`` (best of ``reps`` per square size)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    best = (0.0, None)
    try:
        for n in sizes:
            a, b = torch.randn(n, n), torch.randn(n, n)
            torch.mm(a, b)  # warm-up (packing buffers, thread pool)
            best = max(best, (_gemm_rate(lambda: torch.mm(a, b), n, reps), n), key=lambda r: r[0])
    finally:
        torch.set_num_threads(old)
    return best


def _gemm_rate(call, n: int, reps: int) -> float:
    """The best GMAC/s of ``reps`` timed calls of an ``[n, n] @ [n, n]`` product."""
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        best = max(best, n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def xnnpack_peak(threads: int, sizes=(512, 1024, 2048), reps: int = 5) -> tuple[float, int]:
    """``(GMAC/s, size)``: the best fp32 rate of XNNPACK's GEMM through the ExecuTorch runtime at ``threads``: one
    ``[n, n] @ [n, n]`` linear lowered to XNNPACK per size, timed like :func:`torch_mm_peak`.

    Why both: on a CPU with AVX-512 whose vendor BLAS path torch takes is not the fastest (measured on an AVX-512
    AMD EPYC, 2026-12-02: torch.mm ~102 GMAC/s while the ``paper`` ExecuTorch fp32 chain ran its 11.3 G MACs at
    135 GMAC/s), ``torch.mm`` alone under-measures the peak and the "floor" is not a floor."""
    import tempfile

    import torch

    from udc.export.targets.executorch_export import lower
    from udc.sdk.console.quiet import quiet_native
    from udc.sdk.runtime.runners import load

    best = (0.0, None)
    with tempfile.TemporaryDirectory(prefix="udc-gemm-") as tmp:
        for n in sizes:
            lin = torch.nn.Linear(n, n, bias=False).eval()
            x = torch.randn(n, n)
            _, et = lower(torch.export.export(lin, (x,), strict=False), "xnnpack", "fp32")
            path = Path(tmp) / f"gemm{n}.pte"
            path.write_bytes(et.buffer)
            with quiet_native():  # the runtime's cpuinfo lines
                run = load(path, input_names=["x"], threads=threads)
                feed = {"x": x.numpy()}
                run(feed)  # warm-up (weight packing, thread pool)
            best = max(best, (_gemm_rate(lambda: run(feed), n, reps), n), key=lambda r: r[0])
            del run
    return best


def gemm_peak(threads: int, sizes=(512, 1024, 2048), reps: int = 5, xnnpack: bool = True) -> dict:
    """The best fp32 GEMM rate this CPU reaches at ``threads``: the faster of ``torch.mm`` and XNNPACK's GEMM
    (``xnnpack=False``: torch.mm only). ``{"gmacs": 1e9 multiply-adds / s, "gflops", "size", "by", "threads",
    "torch_mm_gmacs", "xnnpack_gmacs"}``; a rate that is not a positive finite number is never the peak."""
    if threads < 1 or reps < 1 or not sizes:
        raise ValueError("gemm_peak needs threads >= 1, reps >= 1 and at least one size")
    rates = {"torch.mm": torch_mm_peak(threads, sizes, reps)}
    if xnnpack:
        rates["xnnpack"] = xnnpack_peak(threads, sizes, reps)
    ok = {k: v for k, v in rates.items() if v[0] > 0 and math.isfinite(v[0])}
    by = max(ok, key=lambda k: ok[k][0]) if ok else None
    best, best_n = ok[by] if by else (float("nan"), None)
    return {"gmacs": best, "gflops": 2 * best, "size": best_n, "by": by, "threads": int(threads), "dtype": "fp32",
            "torch_mm_gmacs": rates["torch.mm"][0], "xnnpack_gmacs": rates["xnnpack"][0] if xnnpack else None}


def best_peak(*peaks: dict) -> dict:
    """The fastest of several :func:`gemm_peak` measurements (a rate that is not a positive finite number never
    wins), with every measurement's rate in ``"measured_gmacs"``. The peak is measured before the rows and again
    after them: a slow moment of a shared host at one of the two can no longer lower the floor, and with it make
    the fp32 target easier (measured 2026-12-03: 154.7 GMAC/s at one run's start on a host type that measured
    194-201 the day before)."""
    if not peaks:
        raise ValueError("best_peak needs at least one measurement")
    rates = [_num(p.get("gmacs")) for p in peaks]
    ok = [(r, i) for i, r in enumerate(rates) if r is not None and r > 0]
    best = dict(peaks[max(ok)[1]] if ok else peaks[0])
    if not ok:
        best.update({"gmacs": float("nan"), "gflops": float("nan")})
    best["measured_gmacs"] = [p.get("gmacs") for p in peaks]
    return best


def compute_floor_ms(macs: float, gmacs: float) -> float:
    """Milliseconds the model's MACs take at the measured GEMM peak; refuses what cannot be a floor."""
    if not (macs and macs > 0 and math.isfinite(macs)):
        raise ValueError(f"MACs {macs!r}: a compute floor needs a positive count")
    if not (gmacs and gmacs > 0 and math.isfinite(gmacs)):
        raise ValueError(f"GEMM peak {gmacs!r} GMAC/s: not a measured rate")
    return macs / (gmacs * 1e9) * 1e3


# ------------------------------------------------------------------------------------------ targets (fail closed)
def _num(v) -> float | None:
    return None if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) else float(v)


def check(target: str, ok: bool | None, measured: str) -> dict:
    """One target line; ``ok`` None (not measurable) is a miss, never a pass."""
    return {"target": target, "met": bool(ok) if ok is not None else False, "measured": measured}


def int8_vs_peers(by: dict, p50, et_keys: tuple[str, ...], real_faces: bool, name: str) -> dict:
    """The int8 speed target for the fastest of ``et_keys`` against :data:`TUNED_PEERS` (fail closed: no row, no
    peer, an int8 peer the target names missing, agreement under 99 % or NaN, synthetic faces)."""
    ets = [(k, p50(k)) for k in et_keys if p50(k) is not None]
    et8_key, et8 = min(ets, key=lambda kv: kv[1]) if ets else (None, None)
    peers = [(k, p50(k)) for k in TUNED_PEERS if p50(k) is not None]
    missing = [k for k in TUNED_PEERS if p50(k) is None]
    if et8 is None or not peers:
        return check(name, None, "not measured: " + ("no ExecuTorch int8 row" if et8 is None else "no peer ran"))
    bk, bp = min(peers, key=lambda kv: kv[1])
    agree = _num(by[et8_key].get("top1_agreement"))
    speed = bp / et8
    why = [f"{et8_key} {et8:.2f} ms vs best peer {bk} {bp:.2f} ms = {speed:.2f}x",
           f"agreement {'NaN' if agree is None else f'{100 * agree:.1f} %'}"
           + ("" if real_faces else " (synthetic faces: not the real-face check)")]
    good = [(k, v) for k, v in peers if (_num(by[k].get("top1_agreement")) or 0.0) >= 0.99]
    if good:  # information only: a peer that does not agree with the reference is no real alternative
        gk, gp = min(good, key=lambda kv: kv[1])
        why.append(f"best peer at >= 99 % agreement: {gk} {gp:.2f} ms = {gp / et8:.2f}x")
    else:
        why.append("no peer at >= 99 % agreement")
    rounds = paired_ratios(by[bk], by[et8_key])
    if len(rounds) > 1:  # information only: the verdict stays on each row's fastest process
        why.append(f"per round of processes taken in turn: {' / '.join(f'{x:.2f}x' for x in rounds)} "
                   f"(median {statistics.median(rounds):.2f}x)")
    if missing:
        why.append("peers not run: " + ", ".join(missing))
    absent = [k for k in INT8_PEERS if k in missing]
    if absent:
        why.append(f"not measured: the int8 peers the target names did not run ({', '.join(absent)})")
    return check(name, speed >= 1.2 and agree is not None and agree >= 0.99 and real_faces and not absent,
                 "; ".join(why))


def evaluate_targets(rows: list[dict], floor_ms: float | None, real_faces: bool) -> list[dict]:
    """The issue-16 targets over one table's rows (keyed by ``row["key"]``). Missing rows, NaN or missing
    numbers, agreement on synthetic faces: the target is *not met*, and the line says why."""
    by = {r["key"]: r for r in rows}

    def p50(key):
        r = by.get(key)
        return _num(r["p50_ms"]) if r else None

    out = [int8_vs_peers(by, p50, ("executorch:int8", "executorch:int8:fused"), real_faces,
                         "ExecuTorch int8 >= 1.2x faster than the best tuned peer, top-1 agreement >= 99 % on real "
                         "faces")]
    if "executorch-openvino:int8" in by:  # asked for: its own line (phones run XNNPACK, the line above)
        out.append(int8_vs_peers(by, p50, ("executorch-openvino:int8",), real_faces,
                                 "ExecuTorch int8 through its OpenVINO delegate (Intel CPUs, not phones) >= 1.2x "
                                 "faster than the best tuned peer, top-1 agreement >= 99 % on real faces"))
    et32 = min((v for v in (p50("executorch:fp32"), p50("executorch:fp32:fused")) if v is not None), default=None)
    name = "ExecuTorch fp32 within 1.5x of the host compute floor"
    fl = _num(floor_ms)
    if et32 is None or fl is None:
        out.append(check(name, None, "not measured"))
    elif not (et32 >= fl):  # faster than MACs / peak: the peak was under-measured, the floor is no floor
        out.append(check(name, None, f"not measured: ExecuTorch fp32 ran {et32:.2f} ms, below the floor {fl:.2f} ms "
                                     f"({et32 / fl:.2f}x), so the measured GEMM peak understates this CPU"))
    else:
        out.append(check(name, et32 <= 1.5 * fl, f"{et32:.2f} ms = {et32 / fl:.2f}x the floor {fl:.2f} ms"))
    s8, s32 = (_num(by[k]["size_mb"]) if k in by else None for k in ("executorch:int8", "executorch:fp32"))
    name = "int8 bundle <= 30 % of fp32"
    out.append(check(name, None if s8 is None or not s32 else s8 <= 0.30 * s32,
                     "not measured" if s8 is None or not s32 else f"{s8:.2f} / {s32:.2f} MB = {100 * s8 / s32:.1f} %"))
    # the two rows run in separate processes: on a noisy host their p50s differ by more than fusing can save
    why = (" (rows timed in separate processes, noisy for a ratio near 1: time the pair interleaved, and see where "
           "the time goes, with benchmarks/compare_etdump.py)")
    for q in ("int8", "fp32"):
        sep, fus = p50(f"executorch:{q}"), p50(f"executorch:{q}:fused")
        name = f"--fuse >= 1.2x faster than four programs (ExecuTorch {q})"
        inter = (by.get(f"executorch:{q}:fused") or {}).get("interleaved")
        if inter is not None:  # the pair timed alternately in one process decides; the rows are shown beside
            c, f = _num(inter.get("chain_ms")), _num(inter.get("fused_ms"))
            rows_txt = "" if sep is None or fus is None else f"; rows in separate processes {sep:.2f} vs {fus:.2f} ms"
            if c is None or f is None or c <= 0 or f <= 0:
                out.append(check(name, None, f"interleaved timing not measured ({inter.get('error') or inter})"
                                             + rows_txt))
            else:
                out.append(check(name, c / f >= 1.2, f"interleaved in one process: four programs {c:.2f} vs fused "
                                                      f"{f:.2f} ms = {c / f:.2f}x{rows_txt}"))
            continue
        out.append(check(name, None if sep is None or fus is None else sep / fus >= 1.2,
                         "not measured" if sep is None or fus is None else
                         f"{sep:.2f} vs {fus:.2f} ms = {sep / fus:.2f}x" + ("" if sep / fus >= 1.2 else why)))
    ex = _num(by["executorch:int8"]["export_s"]) if "executorch:int8" in by else None
    how = by["executorch:int8"].get("export_how") if "executorch:int8" in by else None
    out.append(check("export of the int8 bundle <= 5 min", None if ex is None else ex <= 300,
                     "not measured (reused bundle or export failed)" if ex is None else f"{ex:.0f} s ({how})"))
    return out


# ------------------------------------------------------------------------------------------ children
def wants_fused(keys, target: str, quant: str, family: str = "lrdif", backend: str | None = None) -> bool:
    """Whether the ``target``/``quant`` bundle must also hold the fused program: only when a fused row *of that
    quant* is asked for (an ``executorch:fp32:fused`` row once made the int8 export search the fused program's
    recipe too: over an hour more for ``mobile``), and never for a bundle of another ``backend`` (the fused rows
    are XNNPACK's)."""
    return (backend is None and target == "executorch" and family == "lrdif"
            and f"{target}:{quant}:fused" in keys)


def litert_python(arg: str | None) -> Path:
    return Path(arg or os.environ.get("UDC_LITERT_PYTHON") or LITERT_ENV / "bin" / "python")


def litert_problem(python: Path) -> str | None:
    """Why the LiteRT rows cannot run (``None``: they can): the second environment is missing or broken."""
    if not python.is_file():
        return f"not installed: {LITERT_INSTALL} (litert-torch cannot co-install with the pins; {python} missing)"
    res = subprocess.run([str(python), "-c", "import litert_torch, ai_edge_litert.interpreter, udc.sdk"],
                         capture_output=True, text=True, env={**os.environ, "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1"})
    if res.returncode:
        last = (res.stderr.strip().splitlines() or ["import failed"])[-1][:120]
        return f"not installed: {LITERT_INSTALL} ({python}: {last})"
    return None


def run_child(spec: dict, python: str | Path | None = None, timeout: float | None = None) -> dict:
    """One row in its own process; ``{"error": ...}`` when it failed (the row's status, never a crash)."""
    env = {**os.environ, "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1"}
    try:
        res = subprocess.run([str(python or sys.executable), str(CHILD), json.dumps(spec)], stdout=subprocess.PIPE,
                             stderr=None, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in res.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            return json.loads(line[len(CHILD_MARK):])
    return {"error": f"exited with code {res.returncode} without a result (--verbose shows why)"}


def combine_runs(runs: list[dict], repeats: int | None = None) -> dict:
    """One row's processes (the first scored the faces) -> the row: the process with the lowest p50 (its p90 with
    it), the largest peak RSS, and every process's p50 in ``p50_runs``. Batch-1 latency on a small shared VM is not
    one number: the same `paper` int8 bundle measured 39-44 ms in some processes and 68-73 ms in others (README
    "Benchmarks"), so one process per row can misorder rows. Fails closed: any failed process fails the row, and any
    process whose p50 is not a finite number makes the row's p50 NaN (the targets read it as a miss), never a faster
    process's number."""
    if not runs:
        return {"error": "no process ran"}
    n = repeats or len(runs)
    for i, r in enumerate(runs):
        if "error" in r:
            return r if i == 0 else {"error": f"repeat {i + 1} of {n}: {r['error']}"}
    first = runs[0]
    if len(runs) == 1:
        return first
    if all(_num(r.get("p50_ms")) is not None for r in runs):
        best = min(runs, key=lambda r: r["p50_ms"])
    else:
        best = {"p50_ms": math.nan, "p90_ms": math.nan, "sdk_overhead_pct": math.nan}
    rss = [r.get("peak_rss_mb") for r in runs if isinstance(r.get("peak_rss_mb"), (int, float))]
    return {**first, "p50_ms": best.get("p50_ms"), "p90_ms": best.get("p90_ms"),
            "sdk_overhead_pct": best.get("sdk_overhead_pct"), "peak_rss_mb": max(rss) if rss else None,
            "p50_runs": [r.get("p50_ms") for r in runs]}


def round_robin(pending: dict[str, tuple[dict, Any]], repeats: int, run=None, after_round=None
                ) -> dict[str, list[dict]]:
    """``{row key: (timing spec, python)}`` -> ``{row key: [result of each repeat]}``: ``repeats`` processes per
    row, taken in turn (every row's 2nd process before any row's 3rd), so a slow spell of a shared host lands on
    every row alike instead of on the rows that happened to run then. A row whose process failed runs no more.
    ``after_round()`` runs after each round (compare.py measures the GEMM peak again there: :func:`best_peak`)."""
    run = run or run_child
    out: dict[str, list[dict]] = {k: [] for k in pending}
    for _ in range(repeats):
        for key, (spec, python) in pending.items():
            if out[key] and "error" in out[key][-1]:
                continue
            out[key].append(run(spec, python))
        if after_round is not None:
            after_round()
    return out


def paired_ratios(slow: dict, fast: dict) -> list[float]:
    """Per round of :func:`round_robin`, ``slow``'s p50 / ``fast``'s p50 (the rows' ``p50_runs``; round 1 also scored
    the faces in both). Empty when the rows do not have the same number of finite, positive p50s."""
    a, b = slow.get("p50_runs") or [], fast.get("p50_runs") or []
    if len(a) != len(b) or not a or any(_num(x) is None or not x > 0 for x in (*a, *b)):
        return []
    return [x / y for x, y in zip(a, b)]


def apply_result(row: dict, res: dict, opt: dict) -> bool:
    """A row's combined processes (:func:`combine_runs`) into its table fields; False (the row's status says why)
    when a process failed."""
    if "error" in res:
        row["status"] = f"failed: {res['error']}"
        return False
    row.update({k: res.get(k) for k in ("p50_ms", "p90_ms", "sdk_overhead_pct", "peak_rss_mb", "p50_runs")})
    if opt.get("compile"):
        row["export_s"] = round(res["first_call_ms"] / 1e3, 1) if res.get("first_call_ms") else None
        row["notes"] = "export s = compile (first call)"
    if res.get("ort"):
        graphs = res["ort"].get("graphs") or {}
        row["notes"] = "; ".join(f"{g}: {v['transformer_optimizer']}" for g, v in graphs.items()) or None
    if res.get("p50_runs"):
        runs = " / ".join("nan" if not isinstance(v, (int, float)) else f"{v:.2f}" for v in res["p50_runs"])
        row["notes"] = "; ".join(x for x in (row.get("notes"), f"p50 of {len(res['p50_runs'])} processes: "
                                             f"{runs} ms (the fastest shown; the rows' processes taken in turn)") if x)
    return True


def save_faces(path: Path, faces) -> Path:
    import numpy as np

    if len(faces.crops) == 0:
        raise ValueError("no faces to score agreement on")
    np.savez(path, crops=faces.crops, landmarks=faces.landmarks)
    return path


def _new_row(key: str, family: str) -> dict:
    label, runtime, _, quant, _ = PEERS[key]
    return {"key": key, "family": family, "format": label, "runtime": runtime, "quant": quant, "size_mb": None,
            "export_s": None, "export_how": None, "top1_agreement": None, "cosine": None, "accuracy": None, "uar": None,
            "p50_ms": None, "p90_ms": None, "sdk_overhead_pct": None, "peak_rss_mb": None, "vs_torch_fp32": None,
            "status": "ok", "notes": None}


def run_rows(wanted: list[str], args, family: str, config: str, checkpoint: str | None, faces, acc=None,
             after_round=None) -> list[dict]:
    """Every wanted row (the torch eager reference first) for one model; agreement/accuracy scored here from the
    logits each row's process wrote for ``faces``; ``after_round`` as :func:`round_robin`'s."""
    import numpy as np

    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.runners import runtime_problem

    name = f"{family} {config}" if not checkpoint else f"{family} {checkpoint}"
    work = args.out / f"{family}-{config if not checkpoint else Path(checkpoint).stem}"
    work.mkdir(parents=True, exist_ok=True)
    faces_npz = save_faces(work / "faces.npz", faces)
    keys = [REFERENCE] + [k for k in wanted if k != REFERENCE]
    if family != "lrdif":  # one program already: no fused rows
        keys = [k for k in keys if not k.endswith(":fused")]
    bundles: dict[tuple[str, str, str | None], tuple[Path | None, str | None, float | None]] = {}

    def bundle(target: str, quant: str, backend: str | None = None):
        if (target, quant, backend) not in bundles:
            print(f"[{name} {target}{' ' + backend if backend else ''} {quant}] export"
                  f"{' (or reuse)' if args.reuse else ''} ...", file=sys.stderr, flush=True)
            # one bundle, run as four programs and fused; without a fused row of this quant asked for, the four
            # only (the fused program is one more lowering of the whole chain: int8 mobile ~165 s more)
            fuse = wants_fused(keys, target, quant, family, backend)
            bundles[(target, quant, backend)] = export(args.out, target, quant, args, family, config, checkpoint, fuse,
                                                       backend)
        return bundles[(target, quant, backend)]

    lit_py = litert_python(args.litert_python)
    lit_why = None
    if any(PEERS[k][4].get("litert") for k in keys):
        lit_why = litert_problem(lit_py)
    rows, logits = [], {}

    def one(key: str, row: dict) -> None:
        _, runtime, target, quant, opt = PEERS[key]
        backend = opt.get("backend")
        if key == REFERENCE:
            row["status"] = "reference"
        why = lit_why if opt.get("litert") else runtime_problem(runtime, target, backend)
        if why is not None:
            row["status"] = why if why.startswith("not installed") else f"not run here: {why.split(';')[0]}"
            return
        src_quant = "fp32" if runtime in ("torch", "litert") else quant  # torch/LiteRT: the fp32 bundle's model
        path, err, secs = bundle(target, src_quant, backend)
        if err:
            row["status"] = err
            return
        m = load_bundle(path, verify=False).manifest
        comps = m["components"]
        if runtime not in ("torch", "litert"):
            row["export_s"] = None if secs is None else round(secs, 1)
            fused = wants_fused(keys, target, src_quant, family, backend)
            row["export_how"] = export_how(args, target, src_quant, fused, backend)
            if opt.get("fused") and "pipeline" not in comps:
                row["status"] = f"{path.name} has no fused 'pipeline' program (export it with --fuse)"
                return
            picked = ["pipeline"] if opt.get("fused") else [n for n in comps if n != "pipeline"]
            row["size_mb"] = sum(comps[n]["size_bytes"] for n in picked) / 1e6
        out_logits = work / f"logits-{key.replace(':', '-')}.npy"
        base = {"bundle": str(path), "threads": args.threads, "warmup": args.warmup, "iters": args.iters,
                "faces": str(faces_npz), "logits_out": str(out_logits), "quant": quant}
        if opt.get("litert"):
            tfl = work / f"litert-{quant}.tflite"
            print(f"[{name} {key}] litert-torch convert ...", file=sys.stderr, flush=True)
            ex = run_child({**base, "kind": "litert-export", "checkpoint": checkpoint, "tflite": str(tfl),
                            "calib": args.calib, "calib_n": args.calib_n, "eval_n": args.eval_n, "seed": args.seed},
                           lit_py)
            if "error" in ex:
                row["status"] = f"convert failed: {ex['error']}"
                return
            row["export_s"], row["size_mb"], row["notes"] = round(ex["export_s"], 1), ex["size_mb"], ex["how"]
            print(f"[{name} {key}] bench ...", file=sys.stderr, flush=True)
            spec, py = {**base, "kind": "litert", "tflite": str(tfl), "inputs": ex["inputs"]}, lit_py
        else:
            print(f"[{name} {key}] bench ...", file=sys.stderr, flush=True)
            spec, py = {**base, "kind": "sdk", "runtime": runtime, "fused": bool(opt.get("fused")),
                        "compile": bool(opt.get("compile")), "ort_tuning": bool(opt.get("ort_tuning"))}, None
        first = run_child(spec, py)  # scores the faces; --repeats' timing-only processes run in turn after every row
        if "error" in first:
            row["status"] = f"failed: {first['error']}"
            return
        if backend == "openvino":
            row["notes"] = OPENVINO_THREADS.format(cpus=os.cpu_count(), threads=args.threads)
        firsts[key] = (row, first, {**spec, "faces": None}, py, out_logits)
    if getattr(args, "export_only", False):  # the bundles only (a later --reuse run benches them)
        for key in keys:
            _, runtime, target, quant, opt = PEERS[key]
            if opt.get("litert") or runtime_problem(runtime, target, opt.get("backend")) is not None:
                continue
            path, err, secs = bundle(target, "fp32" if runtime == "torch" else quant, opt.get("backend"))
            print(f"[{name} {key}] {path.name if path else ''} {err or ('reused' if secs is None else f'{secs:.0f} s')}",
                  file=sys.stderr, flush=True)
        return []
    firsts: dict[str, tuple] = {}
    for key in keys:
        row = _new_row(key, family)
        rows.append(row)
        try:
            one(key, row)
        except Exception as e:  # noqa: BLE001 - one failing row must not hide the others
            row["status"] = f"failed: {type(e).__name__}: {e}".splitlines()[0][:160]
    reps = max(1, int(getattr(args, "repeats", 1)))
    if reps > 1 and firsts:
        print(f"[{name}] {reps - 1} more timing process(es) per row, the rows in turn ...", file=sys.stderr,
              flush=True)
    more = round_robin({k: (v[2], v[3]) for k, v in firsts.items()}, reps - 1, after_round=after_round)
    for key, (row, first, _, _, out_logits) in firsts.items():
        try:
            if apply_result(row, combine_runs([first, *more.get(key, [])], reps), PEERS[key][4]):
                logits[key] = np.load(out_logits)
        except Exception as e:  # noqa: BLE001
            row["status"] = f"failed: {type(e).__name__}: {e}".splitlines()[0][:160]
    ref = logits.get(REFERENCE)
    ref_p50 = _num(rows[0]["p50_ms"])
    for row in rows:
        lg = logits.get(row["key"])
        if lg is not None and ref is not None:
            row["top1_agreement"] = top1_agreement(lg, ref)
            row["cosine"] = mean_cosine(lg, ref)
        if lg is not None and acc is not None:
            row["accuracy"], row["uar"] = scores(predictions(lg), acc[1], acc[2])
        p = _num(row["p50_ms"])
        if ref_p50 and p:
            row["vs_torch_fp32"] = ref_p50 / p
    by = {r["key"]: r for r in rows}
    for q in ("fp32", "int8"):  # the --fuse verdict: the pair timed alternately in one process
        four, fused = by.get(f"executorch:{q}"), by.get(f"executorch:{q}:fused")
        if four and fused and _num(four["p50_ms"]) and _num(fused["p50_ms"]):
            fused["interleaved"] = interleaved_fuse(bundle("executorch", q)[0], args)
    return rows


def interleaved_fuse(path: Path, args) -> dict:
    """The four programs chained and the fused program, timed alternately in one process
    (``compare_etdump.py``): ``{"chain_ms", "fused_ms"}`` (medians), or ``{"error"}``. Rows timed in separate
    processes differ by more than fusing saves on this host (bimodal batch-1 latencies), so the ``--fuse``
    target is judged on this pair."""
    cmd = [sys.executable, str(ETDUMP), str(path), "--threads", str(args.threads), "--iters", str(args.iters),
           "--warmup", str(args.warmup), "--json"]
    env = {**os.environ, "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1"}
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.DEVNULL,
                             text=True, env=env, timeout=3600)
        r = json.loads(res.stdout)
        return {"chain_ms": r["separate"]["chain_wall_ms"], "fused_ms": r["fused"]["wall_ms"]}
    except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as e:
        return {"error": f"compare_etdump.py failed: {type(e).__name__}"}


def floor_row(family: str, floor_ms: float | None, peak: dict, ref_p50: float | None) -> dict:
    row = _new_row(REFERENCE, family)
    row.update({"key": "floor", "format": "host compute floor", "runtime": "-", "quant": "fp32", "p50_ms": floor_ms,
                "vs_torch_fp32": (ref_p50 / floor_ms) if ref_p50 and floor_ms else None,
                "status": f"MACs / fp32 GEMM peak {peak['gmacs']:.1f} GMAC/s ({peak.get('by', 'torch.mm')} "
                          f"{peak['size']}^2, {peak['threads']} thr)"})
    return row


def peak_by(peak: dict) -> str:
    """``, <which GEMM>; torch.mm X, XNNPACK Y`` for the table title (empty for a peak without the split)."""
    if not peak.get("by"):
        return ""
    parts = [f"{k} {peak[v]:.1f}" for k, v in (("torch.mm", "torch_mm_gmacs"), ("XNNPACK", "xnnpack_gmacs"))
             if _num(peak.get(v)) is not None]
    runs = [g for g in peak.get("measured_gmacs") or [] if _num(g) is not None]
    seen = f"; best of {len(runs)} measurements: {' / '.join(f'{g:.1f}' for g in runs)}" if len(runs) > 1 else ""
    return f", {peak['by']}" + (f"; {', '.join(parts)} GMAC/s" if len(parts) > 1 else "") + seen


def format_tables(report: dict) -> str:
    from udc.sdk.bench.host import describe_cpu

    def f(v, spec, scale=1.0):
        v = _num(v) if v is not None else None
        return "-" if v is None else format(v * scale, spec)

    info, peak, out = report["host"], report["gemm_peak"], []
    for t in report["tables"]:
        cols = ["row", "quant", "size MB", "export s", "top-1 agree %", "cosine", "accuracy %", "UAR %", "p50 ms",
                "p90 ms", "peak RSS MB", "vs torch fp32", "status"]
        body = [[r["format"], r["quant"], f(r["size_mb"], ".2f"), f(r["export_s"], ".1f"),
                 f(r["top1_agreement"], ".1f", 100), f(r["cosine"], ".5f"), f(r["accuracy"], ".1f", 100),
                 f(r["uar"], ".1f", 100), f(r["p50_ms"], ".2f"), f(r["p90_ms"], ".2f"), f(r["peak_rss_mb"], ".0f"),
                 f(r["vs_torch_fp32"], ".2f") + ("x" if _num(r["vs_torch_fp32"]) else ""), r["status"]]
                for r in t["rows"]]
        src = f"checkpoint {t['checkpoint']}" if t["checkpoint"] else f"RANDOM INIT (seed {report['seed']})"
        title = (f"udc compare: {t['family']} {t['config']} ({src}), {t['params'] / 1e6:.3f} M params, "
                 f"{t['macs'] / 1e6:.1f} M MACs | host: {describe_cpu(info)}, {info['system']}, fp32 GEMM peak "
                 f"{peak['gmacs']:.1f} GMAC/s ({peak['gflops']:.1f} GFLOP/s{peak_by(peak)}) at {report['threads']} "
                 f"thread(s) | every "
                 f"row {report['threads']} thread(s), own process | p50/p90 of {report['iters']} runs after "
                 f"{report['warmup']} warm-up"
                 + (f", the fastest of {report['repeats']} processes" if report.get("repeats", 1) > 1 else "")
                 + f" | agreement with torch eager fp32 on {t['faces']} {t['faces_kind']}"
                 + (f" | accuracy on all {t['accuracy_faces']} test faces (failed faces scored wrong)"
                    if t["accuracy_faces"] else ""))
        out.append(format_table(cols, body, title=title))
        for r in t["rows"]:
            if r.get("notes"):
                out.append(f"  {r['key']}: {r['notes']}")
        for c in t["checks"]:
            out.append(f"  [{'met' if c['met'] else 'NOT met'}] {c['target']}: {c['measured']}")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="mobile", choices=["tiny", "mobile", "paper", "fer"])
    ap.add_argument("--checkpoint", default=None, help="a trained LRDif checkpoint (else a random init, labelled so)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1,
                    help="time each row in this many processes and show the fastest p50 (all in the row's notes); the "
                         "processes after the first are taken in turn across the rows; batch-1 latency on a small "
                         "shared VM varies between processes by up to ~1.7x")
    ap.add_argument("--n", type=int, default=200, help="synthetic faces for the agreement when no --accuracy-data")
    ap.add_argument("--calib", default=None, help="dataset whose train faces calibrate the int8 exports (else synthetic)")
    ap.add_argument("--calib-n", type=int, default=256)
    ap.add_argument("--eval-n", type=int, default=64, help="faces for the export's own parity report")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes per export (udc-export --jobs)")
    ap.add_argument("--recipes-from", default=None, metavar="BUNDLE",
                    help="an earlier int8 bundle of the same config: the int8 export of its target starts from its "
                         "recipes (udc-export --recipes-from); the export-time line says so")
    ap.add_argument("--out", type=Path, default=Path("runs/compare"))
    ap.add_argument("--reuse", action="store_true", help="reuse bundles already in --out (export time: not measured)")
    ap.add_argument("--export-only", action="store_true",
                    help="export the wanted rows' bundles into --out and stop (bench them later with --reuse)")
    ap.add_argument("--rows", default=None, help=f"only these rows, comma-separated; known: {', '.join(PEERS)}")
    ap.add_argument("--litert-python", default=None,
                    help=f"python of the LiteRT environment (default $UDC_LITERT_PYTHON or {LITERT_ENV}/bin/python)")
    ap.add_argument("--ddamfn", default=None, choices=["tiny", "paper"],
                    help="also benchmark DDAMFN of this config (a second table)")
    ap.add_argument("--ddamfn-checkpoint", default=None, help="export this DDAMFN checkpoint instead of a random init")
    ap.add_argument("--only-ddamfn", action="store_true", help="skip the LRDif table")
    ap.add_argument("--accuracy-data", default=None,
                    help="a dataset udc reads (e.g. FER2013 layout): its test faces give agreement (and, with a "
                         "checkpoint, accuracy)")
    ap.add_argument("--accuracy-n", type=int, default=None, help="at most this many test faces of --accuracy-data")
    ap.add_argument("--gemm-sizes", default="512,1024,2048",
                    help="square fp32 GEMM sizes for the host's peak (the best of 5 runs each is the peak)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="also show third-party log lines (ExecuTorch, absl, torchao)")
    args = ap.parse_args(argv)
    from udc.sdk.console.quiet import setup

    setup(args.verbose)
    if args.ddamfn_checkpoint and not args.ddamfn:
        args.ddamfn = "paper"  # the table label only: the checkpoint carries its config
    if args.only_ddamfn and not args.ddamfn:
        ap.error("--only-ddamfn needs --ddamfn tiny|paper (or --ddamfn-checkpoint)")
    if args.threads < 1 or args.iters < 1 or args.warmup < 0 or args.n < 1 or args.repeats < 1:
        ap.error("--threads, --iters, --repeats and --n must be >= 1, --warmup >= 0")
    wanted = list(PEERS) if not args.rows else [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [w for w in wanted if w not in PEERS]
    if unknown or not wanted:
        ap.error(f"unknown rows {unknown}; known: {', '.join(PEERS)}")

    import torch

    from udc.sdk.bench.host import host_info

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"[host] fp32 GEMM peak at {args.threads} thread(s) ...", file=sys.stderr, flush=True)
    gemm_sizes = tuple(int(v) for v in args.gemm_sizes.split(",") if v.strip())
    peaks = [gemm_peak(args.threads, sizes=gemm_sizes)]  # again after each --repeats round and each model: best_peak

    def peak_again() -> None:
        print(f"[host] fp32 GEMM peak at {args.threads} thread(s), again ...", file=sys.stderr,
              flush=True)
        peaks.append(gemm_peak(args.threads, sizes=gemm_sizes))

    models = [] if args.only_ddamfn else [("lrdif", args.config, args.checkpoint)]
    if args.ddamfn:
        models.append(("ddamfn", args.ddamfn, args.ddamfn_checkpoint))
    tables = []
    for family, config, ckpt in models:
        params, macs = model_size(family, config, ckpt)
        if ckpt:
            from udc.sdk.models.checkpoint import load_checkpoint

            crop = load_checkpoint(ckpt).cfg.image_size
        else:
            from udc.sdk.models.registry import get_model_config

            crop = get_model_config(family, config).image_size
        acc = None
        if args.accuracy_data:
            acc = labelled_faces(args.accuracy_data, crop, args.accuracy_n)
            faces, kind = acc[0], f"real test faces of {args.accuracy_data}"
            if len(faces) == 0:
                raise SystemExit(f"--accuracy-data {args.accuracy_data}: no test face could be aligned")
        else:
            faces, kind = synthetic_faces(args.n, crop, seed=args.seed), "SYNTHETIC faces (not real)"
        rows = run_rows(wanted, args, family, config, ckpt, faces, acc if ckpt else None, after_round=peak_again)
        if args.export_only:
            continue
        if args.repeats <= 1:  # with --repeats, the last round's measurement (peak_again) is the one after the rows
            peak_again()
        tables.append({"family": family, "config": config, "checkpoint": ckpt, "params": params, "macs": macs,
                       "faces": len(faces), "faces_kind": kind, "real_faces": acc is not None,
                       "accuracy_faces": (len(acc[1]) + len(acc[2])) if (acc is not None and ckpt) else 0,
                       "accuracy_landmark_paths": acc[3] if acc is not None else None, "rows": rows})
    peak = best_peak(*peaks)
    for t in tables:  # every table's floor from the same peak, the one in the title
        try:
            fl = compute_floor_ms(t["macs"], peak["gmacs"])
        except ValueError:
            fl = None
        t["rows"].append(floor_row(t["family"], fl, peak, _num(t["rows"][0]["p50_ms"])))
        t.update({"floor_ms": fl, "checks": evaluate_targets(t["rows"], fl, t["real_faces"])})
    report = {"host": host_info(args.threads), "gemm_peak": peak, "threads": args.threads, "seed": args.seed,
              "warmup": args.warmup, "iters": args.iters, "repeats": getattr(args, "repeats", 1), "tables": tables}
    if args.json:
        from udc.sdk.console.table import dumps_json

        print(dumps_json(report))
    else:
        print(format_tables(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

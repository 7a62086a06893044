"""Where the time of an LRDif ExecuTorch bundle goes, four programs vs the ``--fuse``d one, from ETDump
(issue 16's ``--fuse`` target: "≥ 1.2x faster than four programs, or an explanation measured with ETDump").

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/compare_etdump.py BUNDLE.udc \
        [--threads 2] [--iters 50] [--warmup 5] [--json]

``BUNDLE`` must be exported with ``--fuse`` (it then holds the four programs and ``pipeline``). Each program is
loaded with ``executorch.runtime.Runtime.load_program(..., enable_etdump=True)`` (the pip wheel's runtime
records ETDump events on the host), run on one face's inputs (the SDK's preprocessing of a seeded random crop
with the canonical landmarks and the bundle's fixed noise; latency does not depend on the pixels) exactly as
the chain runs it (the four wired through the manifest's ``wiring``), and per iteration the table reports
the medians of:

* ``wall``: ``time.perf_counter`` around ``method.execute`` (what the app sees for that program, including the
  Python binding's tensor conversion);
* ``Method::execute``: the runtime's own event (the program's time inside ExecuTorch);
* ``delegate``: the ``DELEGATE_CALL`` events (time inside XNNPACK);
* ``ops``: the sum of XNNPACK's per-operator events (``delegate - ops``: XNNPACK's own setup / dispatch);
* per operator class (``Fully Connected``, ``Convolution``, ``Transpose``, ...): the ops' summed time.

Event times are the runtime's ticks (nanoseconds on this host; the tool checks that by comparing
``Method::execute`` with the wall time, and says so if they disagree).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

FOUR = ("clip_image", "fpen_s2", "denoiser", "udcformer")


# ------------------------------------------------------------------------------------------ event aggregation
def op_class(name: str) -> str:
    """``'Fully Connected (NC, QD8, F32, QC8W) GEMM #57'`` -> ``'Fully Connected (NC, QD8, F32, QC8W) GEMM'``."""
    return re.sub(r"\s*#\d+$", "", str(name)).strip() or "?"


def summarize_run(events) -> dict:
    """One ETDump run (its events: ``(name, delegate_debug_id_str, start, end)`` tuples) -> ``{"execute",
    "delegate", "ops", "by_class": {class: ticks}}``. Refuses what cannot be a measurement: no events, no
    ``Method::execute``, a non-finite or negative duration."""
    out = {"execute": 0.0, "delegate": 0.0, "ops": 0.0, "by_class": defaultdict(float)}
    seen_execute = False
    n = 0
    for name, dbg, start, end in events:
        n += 1
        d = float(end) - float(start)
        if not math.isfinite(d) or d < 0:
            raise ValueError(f"event {name or dbg!r}: duration {d!r} is not a measurement")
        if name == "Method::execute":
            out["execute"] += d
            seen_execute = True
        elif name == "DELEGATE_CALL":
            out["delegate"] += d
        elif name is None and dbg:
            out["ops"] += d
            out["by_class"][op_class(dbg)] += d
    if n == 0:
        raise ValueError("no ETDump events in this run")
    if not seen_execute:
        raise ValueError("no Method::execute event in this run (not a forward pass)")
    out["by_class"] = dict(out["by_class"])
    return out


def median_runs(runs: list[dict]) -> dict:
    """Median over runs of every field (classes absent from a run count as 0)."""
    if not runs:
        raise ValueError("no runs to summarize")
    classes = sorted({c for r in runs for c in r["by_class"]})
    med = {k: statistics.median(r[k] for r in runs) for k in ("execute", "delegate", "ops")}
    med["by_class"] = {c: statistics.median(r["by_class"].get(c, 0.0) for r in runs) for c in classes}
    return med


def compare_split(separate_ms: float, fused_ms: float) -> dict:
    """``{"speedup", "saved_ms"}`` of the fused program over the four; refuses NaN, zero or negative times."""
    for v in (separate_ms, fused_ms):
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"time {v!r} ms: not a measurement")
    return {"speedup": separate_ms / fused_ms, "saved_ms": separate_ms - fused_ms}


# ------------------------------------------------------------------------------------------ running
def _inputs(bundle, threads: int, seed: int = 0) -> dict:
    from udc.sdk.bench.host import bench_face
    from udc.sdk.runtime.chain import load_chain
    from udc.sdk.runtime.recognizer import Recognizer

    # the chain is loaded only for its preprocessing; its threads are the timed ones (the threadpool is process-wide)
    rec = Recognizer(bundle, load_chain(bundle, "executorch", threads=threads))
    crop, lm, _ = bench_face(rec.crop_size, seed=seed)
    import numpy as np

    return {"image": rec.preprocess(crop), "landmarks": np.ascontiguousarray(lm, np.float32).reshape(1, 68, 2),
            "noise": rec.noise}


def require_threads(n: int, when: str = "before timing") -> None:
    """The table says how many threads ran: refuse to time (or report) with an XNNPACK threadpool of another size
    (it is process-wide: loading any chain resizes it)."""
    from executorch.extension.pybindings import portable_lib

    got = int(portable_lib._threadpool_get_thread_count())
    if got != n:
        raise SystemExit(f"the XNNPACK threadpool has {got} thread(s) {when}, not the {n} asked for")


def profile(bundle_path: str | Path, threads: int = 2, iters: int = 50, warmup: int = 5) -> dict:
    import torch
    from executorch.devtools.etdump.serialize import deserialize_from_etdump_flatcc
    from executorch.runtime import Runtime, Verification

    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.executorch_runtime import set_threads

    b = load_bundle(bundle_path, verify=True)
    m = b.manifest
    comps, wiring = m["components"], m["wiring"]
    if "pipeline" not in comps:
        raise SystemExit(f"{bundle_path}: no fused 'pipeline' program (export it with --fuse)")
    feed = _inputs(b, threads)
    set_threads(threads)
    require_threads(threads)
    rt = Runtime.get()
    progs = {}
    for name in (*FOUR, "pipeline"):
        progs[name] = rt.load_program(str(Path(bundle_path) / comps[name]["file"]), verification=Verification.Minimal,
                                      enable_etdump=True, debug_buffer_size=0)
    methods = {n: p.load_method("forward") for n, p in progs.items()}

    def args_of(name, values):
        return [torch.from_numpy(values[wiring[f"{name}.{i['name']}"].removeprefix("input:")]
                                 if wiring[f"{name}.{i['name']}"].startswith("input:")
                                 else values[wiring[f"{name}.{i['name']}"]]) for i in comps[name]["inputs"]]

    wall = {n: [] for n in progs}
    chain_wall, fused_wall = [], []
    for i in range(warmup + iters):
        vals = dict(feed)
        t_chain = time.perf_counter()
        for name in FOUR:
            a = args_of(name, vals)
            t0 = time.perf_counter()
            outs = methods[name].execute(a)
            dt = (time.perf_counter() - t0) * 1e3
            for o, spec in zip(outs, comps[name]["outputs"]):
                vals[f"{name}.{spec['name']}"] = o.detach().numpy().copy()
            if i >= warmup:
                wall[name].append(dt)
        t1 = time.perf_counter()
        a = args_of("pipeline", vals)
        t2 = time.perf_counter()
        methods["pipeline"].execute(a)
        t3 = time.perf_counter()
        if i >= warmup:
            chain_wall.append((t1 - t_chain) * 1e3)
            wall["pipeline"].append((t3 - t2) * 1e3)
            fused_wall.append((t3 - t2) * 1e3)
    require_threads(threads, "after timing")
    res = {"bundle": str(bundle_path), "quant": m.get("quant"), "threads": threads, "iters": iters,
           "warmup": warmup, "programs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, p in progs.items():
            et, dbg = Path(tmp) / f"{name}.etdp", Path(tmp) / f"{name}.bin"
            p.write_etdump_result_to_file(str(et), str(dbg))
            dump = deserialize_from_etdump_flatcc(et.read_bytes())
            runs = []
            for rd in dump.run_data:
                evs = [(e.profile_event.name, e.profile_event.delegate_debug_id_str, e.profile_event.start_time,
                        e.profile_event.end_time) for e in rd.events if e.profile_event is not None]
                if any(n == "Method::execute" for n, *_ in evs):
                    runs.append(summarize_run(evs))
            runs = runs[warmup:]  # the runs of the timed iterations (load/init events carry no execute)
            med = median_runs(runs)
            res["programs"][name] = {"wall_ms": statistics.median(wall[name]), "runs": len(runs),
                                     "execute_ms": med["execute"] / 1e6, "delegate_ms": med["delegate"] / 1e6,
                                     "ops_ms": med["ops"] / 1e6,
                                     "by_class_ms": {c: v / 1e6 for c, v in med["by_class"].items()},
                                     "size_mb": comps[name]["size_bytes"] / 1e6}
    sep = {k: sum(res["programs"][n][k] for n in FOUR) for k in ("wall_ms", "execute_ms", "delegate_ms", "ops_ms")}
    res["separate"] = {**sep, "chain_wall_ms": statistics.median(chain_wall)}
    res["fused"] = {k: res["programs"]["pipeline"][k] for k in ("wall_ms", "execute_ms", "delegate_ms", "ops_ms")}
    res["speedup_wall"] = compare_split(res["separate"]["chain_wall_ms"], statistics.median(fused_wall))
    res["speedup_execute"] = compare_split(sep["execute_ms"], res["fused"]["execute_ms"])
    classes = defaultdict(lambda: [0.0, 0.0])
    for n in FOUR:
        for c, v in res["programs"][n]["by_class_ms"].items():
            classes[c][0] += v
    for c, v in res["programs"]["pipeline"]["by_class_ms"].items():
        classes[c][1] += v
    res["by_class_ms"] = {c: {"separate": s, "fused": f} for c, (s, f) in
                          sorted(classes.items(), key=lambda kv: -max(kv[1]))}
    ratio = res["programs"]["pipeline"]["execute_ms"] / max(1e-9, res["programs"]["pipeline"]["wall_ms"])
    res["tick_check"] = (f"Method::execute / wall = {ratio:.2f} for the fused program "
                         + ("(ticks read as ns agree with the wall clock)" if 0.5 < ratio <= 1.05 else
                            "(ticks are NOT ns here: read the *_ms event columns as relative only)"))
    return res


def format_report(r: dict, top: int = 12) -> str:
    from udc.sdk.console.table import format_table

    cols = ["program", "size MB", "wall ms", "Method::execute ms", "in XNNPACK ms", "XNNPACK ops ms",
            "outside delegate ms"]
    body = []
    for n, p in r["programs"].items():
        body.append([n, f"{p['size_mb']:.2f}", f"{p['wall_ms']:.3f}", f"{p['execute_ms']:.3f}",
                     f"{p['delegate_ms']:.3f}", f"{p['ops_ms']:.3f}", f"{p['execute_ms'] - p['delegate_ms']:.3f}"])
    s, f = r["separate"], r["fused"]
    body.append(["four programs (sum)", "", f"{s['wall_ms']:.3f} (chain {s['chain_wall_ms']:.3f})",
                 f"{s['execute_ms']:.3f}", f"{s['delegate_ms']:.3f}", f"{s['ops_ms']:.3f}",
                 f"{s['execute_ms'] - s['delegate_ms']:.3f}"])
    out = [format_table(cols, body, title=f"ETDump: {r['bundle']} ({r['quant']}), {r['threads']} thread(s), medians "
                                            f"of {r['iters']} runs after {r['warmup']} warm-up")]
    out.append(f"  fused vs four programs: wall {r['speedup_wall']['speedup']:.3f}x "
               f"({r['speedup_wall']['saved_ms']:+.3f} ms saved), Method::execute "
               f"{r['speedup_execute']['speedup']:.3f}x ({r['speedup_execute']['saved_ms']:+.3f} ms saved)")
    out.append(f"  {r['tick_check']}")
    body = [[c, f"{v['separate']:.3f}", f"{v['fused']:.3f}", f"{v['separate'] - v['fused']:+.3f}"]
            for c, v in list(r["by_class_ms"].items())[:top]]
    out.append(format_table(["XNNPACK op class", "four programs ms", "fused ms", "four - fused ms"], body,
                            title=f"where the time goes (top {top} op classes, medians)"))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--threads and --iters must be >= 1, --warmup >= 0")
    from udc.sdk.console.quiet import quiet_native, setup

    setup(False)
    with quiet_native():
        r = profile(args.bundle, args.threads, args.iters, args.warmup)
    print(json.dumps(r, indent=1) if args.json else format_report(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())

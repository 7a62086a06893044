"""``udc-bench``: how fast a bundle runs, here or on a phone.

    udc-bench face.udc                                   # this host: the bundle's runtime + torch eager reference
    udc-bench face.udc --runtime onnxruntime --iters 200 --threads 2 --json
    udc-bench face.udc --device android --runner executor_runner [--serial S] [--etdump out/]
    udc-bench face.udc --device ios --team TEAMID        # macOS + Xcode, Core ML bundles

Exit codes: 0 done, 2 cannot run here (no adb, no device, no macOS, runtime not on this host, bad bundle).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from ..console.table import dumps_json, format_table  # noqa: E402


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(report: dict[str, Any]) -> str:
    rows = []
    for r in report["rows"]:
        lat = r["latency_ms"]
        names = [n for n in lat if n not in ("model", "end_to_end", "sdk_overhead")]
        for i, n in enumerate([*names, "end_to_end", "sdk_overhead"]):
            if n not in lat:
                continue
            s = lat[n]
            first = i == 0
            mem = r.get("memory_mb") or {}
            rows.append([r["runtime"] if first else "", n, _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]), _ms(s["min"]),
                         _ms(s["mean"]),
                         _ms(r["load_ms"]["total"]) if first and r.get("load_ms") else "",
                         f"{mem['peak_rss']:.0f}" if first and mem.get("peak_rss") is not None else "",
                         f"{r['throughput_fps']:.1f}" if n == "end_to_end" and r.get("throughput_fps") else "",
                         f"{r['speedup_vs_torch']:.2f}x" if n == "end_to_end" and r.get("speedup_vs_torch") else ""])
    from ..bench.host import describe_cpu

    d = report["device"]
    where = (f"{describe_cpu(d)} ({d.get('cores')} cores, {d.get('threads') or 'default'} thread(s) for every row"
             + (", each row in its own process" if report.get("isolated_rows") else "") + ")" if d["kind"] == "host"
             else f"{d.get('model') or d.get('name')} ({d['kind']})")
    title = (f"{report['bundle']}: {report['target']}/{report.get('backend')} {report['quant']} "
             f"({report.get('family', 'lrdif')} {report.get('config')}) on {where}; {report['warmup']} warm-up + {report['iters']} timed runs, ms")
    out = format_table(["runtime", "stage", "p50", "p90", "p99", "min", "mean", "load ms", "peak RSS MB", "faces/s",
                        "vs torch"], rows, title)
    notes = [f"{r['runtime']}: SDK overhead {r['sdk_overhead_pct']:.1f}% of model time"
             for r in report["rows"] if r.get("sdk_overhead_pct") is not None]
    notes += [f"{r['runtime']}: component and model times are the {r['model_time']}"
              for r in report["rows"] if r.get("model_time")]
    notes += [r["note"] for r in report["rows"] if r.get("note")]
    if report.get("backend") == "openvino" and d["kind"] == "host":
        notes.append("executorch: OpenVINO's CPU plugin picks its own threads (ExecuTorch's OpenVINO delegate takes "
                     "no setting) and computes the float parts at its default precision for this CPU (`udc doctor`)")
    return out + ("\n" + "\n".join(notes) if notes else "")


def _device_row(runtime: str, comps: dict[str, dict[str, Any]], note: str) -> dict[str, Any]:
    from ..bench.host import stats

    lat = {n: stats(c["iteration_ms"] if "iteration_ms" in c else c["samples"]) for n, c in comps.items()}
    chain = [n for n in comps if n != "pipeline"]
    per_iter = [comps[n].get("iteration_ms", comps[n].get("samples")) for n in chain]
    k = min(len(v) for v in per_iter) if per_iter else 0
    sums = [sum(v[i] for v in per_iter) for i in range(k)]
    lat["model"] = stats(sums)
    lat["end_to_end"] = stats(comps["pipeline"]["iteration_ms"]) if "pipeline" in comps else stats(sums)
    loads = [c.get("load_ms") for c in comps.values()]
    mean = lat["end_to_end"]["mean"]
    return {"runtime": runtime, "latency_ms": lat,
            "load_ms": {"components": sum(v for v in loads if v is not None) if any(v is not None for v in loads) else None,
                        "total": sum(v for v in loads if v is not None) if any(v is not None for v in loads) else None},
            "throughput_fps": 1000.0 / mean if mean else None, "memory_mb": None, "sdk_overhead_pct": None,
            "speedup_vs_torch": None, "note": note, "per_component": comps}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("bundle", type=click.Path())
@click.option("--device", type=click.Choice(["host", "android", "ios"]), default="host", show_default=True,
              help="host: runtimes here; android: executor_runner over adb; ios: Core ML on a device from macOS.")
@click.option("--runtime", "runtimes", multiple=True,
              type=click.Choice(["auto", "executorch", "onnxruntime", "coreml", "torch"]),
              help="Host runtime(s), repeatable. Default: the bundle's own (auto) plus torch eager as the reference row.")
@click.option("--no-reference", is_flag=True, help="Host: skip the torch eager reference row.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="The checkpoint the bundle was exported from, if the manifest's path is gone (torch row).")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed runs first.")
@click.option("--iters", type=click.IntRange(min=1), default=100, show_default=True, help="Timed runs.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads of every runtime (the same for every row). Default: the CPUs available here.")
@click.option("--image", type=click.Path(dir_okay=False), default=None,
              help="Host: time the face of this photo (detected once) instead of a random crop.")
@click.option("--fused", is_flag=True, help="Host: run the fused 'pipeline' component instead of the four.")
@click.option("--serial", default=None, help="Android serial / iOS device name or UDID, when several are connected.")
@click.option("--runner", type=click.Path(), default=None, help="Android: executor_runner built for the phone.")
@click.option("--etdump", "etdump_dir", type=click.Path(file_okay=False), default=None,
              help="Android: pull each program's ETDump into this folder and summarise it.")
@click.option("--team", default=None, help="iOS: Apple development team ID that signs coremltools' modelrunner app.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (schema udc-bench/1).")
@click.option("--verbose", is_flag=True, help="Also show third-party log lines (ExecuTorch, absl, torchao).")
def main(bundle, device, runtimes, no_reference, reference, warmup, iters, threads, image, fused, serial, runner,
         etdump_dir, team, as_json, verbose):
    """Benchmark BUNDLE (a NAME.udc directory): load time, latency p50/p90/p99/min/mean per component and end
    to end, SDK overhead, peak RSS and throughput, as a table or JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    from ..console.quiet import setup

    setup(verbose)
    from ..bench.host import SCHEMA, host_bench
    from ..runtime.bundle import load_bundle
    from ..errors import UdcError

    try:
        b = load_bundle(bundle)
        m = b.manifest
        head = {"schema": SCHEMA, "bundle": b.path.name, "path": str(b.path), "target": m["target"],
                "backend": m.get("backend"), "quant": m["quant"], "config": m["model"].get("config"),
                "warmup": warmup, "iters": iters}
        if device == "android":
            from ..bench.android import android_bench

            res = android_bench(b, serial, runner, warmup, iters, threads, Path(etdump_dir) if etdump_dir else None)
            report = {**head, "device": {**res["device"], "threads": threads}, "rows": [_device_row(
                "executorch (executor_runner)", res["components"],
                "each program in its own runner process; end_to_end = per-iteration sum of the components; "
                "memory not measured on the phone")]}
        elif device == "ios":
            from ..bench.ios import ios_bench

            res = ios_bench(b, warmup, iters, team, serial)
            report = {**head, "device": res["device"], "rows": [_device_row(
                "coreml (device)", res["components"], "Core ML predict durations reported by coremltools' modelrunner")]}
        else:
            from ..runtime.runners import resolve_runtime

            names = list(dict.fromkeys(runtimes or ["auto"]))
            names = [resolve_runtime(r, m["target"], m.get("backend")) for r in names]  # fail before any work
            if not runtimes and not no_reference and "torch" not in names:
                names.append("torch")
            names = list(dict.fromkeys(names))
            report = host_bench(b.path, names, warmup, iters, threads, reference, fused, image)
    except UdcError as e:
        click.echo(f"udc-bench: {e}", err=True)
        sys.exit(2)
    click.echo(dumps_json(report) if as_json else table(report))


if __name__ == "__main__":  # pragma: no cover
    main()

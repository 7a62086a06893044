"""``udc-parity``: prove that a bundle computes what its PyTorch reference computes.

    udc-parity face.udc                          # synthetic faces, 200 of them, on this host
    udc-parity face.udc --data ~/photos --n 500 --json
    udc-parity face.udc --device android --runner executor_runner [--serial SERIAL]

Exit codes: 0 every row passes, 1 a row fails the thresholds (the manifest's, per quant mode),
2 the check could not run (bad bundle, runtime not on this host, no adb/device, no data).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from .table import format_table  # noqa: E402


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return "inf" if spec == "psnr" else "-"
    if spec == "psnr":
        return f"{v:.1f}"
    if spec == "pct":
        return f"{100 * v:.1f}%"
    if spec == "cos":
        return f"{v:.6f}"
    return f"{v:.3g}"


def host_table(r: dict[str, Any]) -> str:
    rows = []
    for name, e in [*r["components"].items(), ("end-to-end", r["end_to_end"])]:
        rows.append([name, e["n"], _fmt(e["max_abs"], "g"), _fmt(e["mean_abs"], "g"), _fmt(e["cosine"], "cos"),
                     _fmt(e["psnr"], "psnr"), _fmt(e.get("top1_agreement"), "pct"),
                     "pass" if e["passed"] else "FAIL: " + "; ".join(e["failures"])])
    t = r["thresholds"]
    title = (f"{r['bundle']}: {r['target']}/{r.get('backend')} {r['quant']} on {r['runtime']} vs the PyTorch reference, "
             f"{r['inputs']['n']} {r['inputs'].get('kind', '')} faces\nthresholds ({t.get('mode', r['quant'])}): "
             + ", ".join(f"{k} {v}" for k, v in t.items() if k != "mode"))
    return format_table(["component", "n", "max|d|", "mean|d|", "cosine", "PSNR dB", "top-1", "result"], rows, title)


def android_table(r: dict[str, Any]) -> str:
    rows = [[c["component"], c["program"], _fmt(c["error_stats"].get("max_absolute_error"), "g"),
             _fmt(c["error_stats"].get("mean_absolute_error"), "g"), f"{c['atol']:g}/{c['rtol']:g}",
             c["verdict"] or "-"] for c in r["components"]]
    title = (f"{r['bundle']} on {r['device']['model'] or r['device']['serial']} (Android {r['device']['android']}): "
             "bundled test case 0 of each component vs its PyTorch reference output")
    return format_table(["component", "program", "max|d|", "mean|d|", "atol/rtol", "verdict"], rows, title)


def android_parity(bundle, serial: str | None, runner: str | None, threads: int | None) -> dict[str, Any]:
    from .android import Adb, AndroidSession, DeviceUnavailable

    m = bundle.manifest
    if m["target"] != "executorch":
        raise DeviceUnavailable(f"--device android runs ExecuTorch bundles; {bundle.path.name} is a {m['target']} bundle")
    progs = [(n, c) for n, c in m["components"].items() if c.get("bundled_program")]
    if not progs:
        raise DeviceUnavailable(f"{bundle.path.name} has no bundled programs (.bpte): re-export it with udc-export "
                                "--target executorch")
    adb = Adb.connect(serial)
    if runner is None:
        raise DeviceUnavailable("--device android needs --runner PATH: ExecuTorch's executor_runner built for Android "
                                "(arm64-v8a) with bundled-IO support")
    rows = []
    with AndroidSession(adb, runner) as s:
        info = s.device_info()
        for name, c in progs:
            bp = c["bundled_program"]
            atol, rtol = float(bp.get("atol", 1e-4)), float(bp.get("rtol", 1e-4))
            res = s.run(bundle.path / bp["file"], warmup=0, iters=1, threads=threads, atol=atol, rtol=rtol)
            rows.append({"component": name, "program": bp["file"], "atol": atol, "rtol": rtol, **res.to_dict()})
    passed = all(r["verdict"] == "PASS" for r in rows)
    return {"bundle": bundle.path.name, "path": str(bundle.path), "device": info, "components": rows, "passed": passed,
            "note": "executor_runner verifies test case 0 of each .bpte against the PyTorch outputs recorded at export"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("bundle", type=click.Path())
@click.option("--data", type=click.Path(), default=None,
              help="Folder of face photos (recursive; DIR/landmarks68.npz used when present, else MediaPipe). "
                   "Required on the host (e.g. a set made by `udc-data synthetic DIR`).")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, help="Faces to compare on.")
@click.option("--runtime", type=click.Choice(["auto", "executorch", "onnxruntime", "coreml", "torch"]), default="auto",
              show_default=True, help="Host runtime for the exported programs (auto: the bundle's own).")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="The checkpoint the bundle was exported from, if the manifest's path is gone (sha256 checked).")
@click.option("--device", type=click.Choice(["host", "android"]), default="host", show_default=True,
              help="host: every metric here; android: the .bpte bundled programs with executor_runner over adb.")
@click.option("--serial", default=None, help="Android device serial (adb devices), when several are connected.")
@click.option("--runner", type=click.Path(), default=None, help="executor_runner built for Android (--device android).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of the runtimes.")
@click.option("--seed", default=0, show_default=True, help="Seed of the face pick and of the denoiser's noise.")
@click.option("--fused", is_flag=True, help="Check the fused 'pipeline' component instead of the four.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
def main(bundle, data, n, runtime, reference, device, serial, runner, threads, seed, fused, as_json):
    """Compare BUNDLE (a NAME.udc directory) with its PyTorch reference, component by component and end to
    end, on real preprocessed faces: max|d|, mean|d|, cosine, PSNR, top-1 agreement, against the
    pass/fail thresholds its manifest stores for its quant mode. Exit 1 when a row fails, 2 when the
    check cannot run here."""
    import warnings

    warnings.filterwarnings("ignore")
    from .bundle import load_bundle
    from .errors import UdcError

    try:
        b = load_bundle(bundle)
        if device == "android":
            report = android_parity(b, serial, runner, threads)
            text = android_table(report)
        else:
            from .parity_data import ParityDataError, folder_faces
            from .parity_run import host_parity
            from .runtimes import resolve_runtime

            m = b.manifest
            resolve_runtime(runtime, m["target"], m.get("backend"))  # fail before any face work
            size = int(m["preprocessing"]["crop_size"])
            if not data:
                raise ParityDataError("no --data: pass a folder of face photos or a dataset split, e.g. one made by "
                                      "`udc-data synthetic DIR` (then --data DIR/test)")
            faces = folder_faces(data, n, size, seed)
            report = host_parity(b, faces, runtime, reference, threads, seed, fused)
            text = host_table(report)
    except UdcError as e:
        click.echo(f"udc-parity: {e}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(text)
        click.echo(("PASS" if report["passed"] else "FAIL") + f": {report['bundle']}")
    sys.exit(0 if report["passed"] else 1)


if __name__ == "__main__":  # pragma: no cover
    main()

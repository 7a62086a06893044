"""``udc-parity``: prove that a bundle computes what its PyTorch reference computes.

    udc-parity face.udc                          # synthetic faces, 200 of them, on this host
    udc-parity face.udc --data ~/photos --n 500 --json
    udc-parity face.udc --device android --runner executor_runner [--serial SERIAL]

Exit codes: 0 PASS (every row passes, on at least 32 faces), 1 FAIL (a row fails the thresholds: the
stricter of the manifest's and the quant mode's), 2 the check could not run or cannot conclude (bad or
partial bundle, ``--runtime torch``, runtime not on this host, no adb/device, no data, fewer than 32 usable
faces with every row passing: INCONCLUSIVE).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from ..console.table import format_table  # noqa: E402


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
        bad = bool(e.get("nonfinite") or e.get("ref_nonfinite"))  # None then means NaN, not an infinite PSNR
        rows.append([name, e["n"], _fmt(e["max_abs"], "g") if not bad else "nan", _fmt(e["mean_abs"], "g")
                     if not bad else "nan", _fmt(e["cosine"], "cos") if e["cosine"] is not None else "nan",
                     _fmt(e["psnr"], "psnr") if not bad else "nan", _fmt(e.get("top1_agreement"), "pct"),
                     "pass" if e["passed"] else "FAIL: " + "; ".join(e["failures"])])
    t = r["thresholds"]
    title = (f"{r['bundle']}: {r['target']}/{r.get('backend')} {r['quant']} on {r['runtime']} vs the PyTorch reference, "
             f"{r['inputs']['n']} {r['inputs'].get('kind', '')} faces\nthresholds ({t.get('mode', r['quant'])}): "
             + ", ".join(f"{k} {v}" for k, v in t.items() if k != "mode"))
    return format_table(["component", "n", "max|d|", "mean|d|", "cosine", "PSNR dB", "top-1", "result"], rows, title)


def expected_kind(bp: dict[str, Any]) -> str:
    """What a ``.bpte``'s expected outputs are, from its manifest entry: ``PyTorch reference`` (the float32
    model) or ``host ExecuTorch`` (an int8 program's own host run: the device check is then host-vs-device,
    not parity with PyTorch)."""
    what = str(bp.get("expected_outputs", ""))
    if what.startswith("PyTorch"):
        return "PyTorch reference"
    if "host" in what.lower():
        return "host ExecuTorch"
    return what or "unknown (older bundle)"


def android_table(r: dict[str, Any]) -> str:
    rows = [[c["component"], c["program"], c.get("expected", "?"), _fmt(c["error_stats"].get("max_absolute_error"), "g"),
             _fmt(c["error_stats"].get("mean_absolute_error"), "g"), f"{c['atol']:g}/{c['rtol']:g}",
             c["verdict"] or "-"] for c in r["components"]]
    kinds = sorted({c.get("expected", "?") for c in r["components"]})
    what = ("vs its PyTorch reference output" if kinds == ["PyTorch reference"] else
            "vs this program's own host ExecuTorch run (host-vs-device agreement, not parity with PyTorch)"
            if kinds == ["host ExecuTorch"] else "vs the expected outputs recorded at export (see 'expected')")
    title = (f"{r['bundle']} on {r['device']['model'] or r['device']['serial']} (Android {r['device']['android']}): "
             f"bundled test case 0 of each component {what}")
    return format_table(["component", "program", "expected", "max|d|", "mean|d|", "atol/rtol", "verdict"], rows, title)


def android_parity(bundle, serial: str | None, runner: str | None, threads: int | None) -> dict[str, Any]:
    from ..bench.android import Adb, AndroidSession, DeviceUnavailable
    from ..runtime.bundle import member_path

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
            res = s.run(member_path(bundle.path, bp["file"]), warmup=0, iters=1, threads=threads, atol=atol, rtol=rtol)
            rows.append({"component": name, "program": bp["file"], "expected": expected_kind(bp),
                         "expected_outputs": bp.get("expected_outputs"), "atol": atol, "rtol": rtol, **res.to_dict()})
    passed = bool(rows) and all(r["verdict"] == "PASS" for r in rows)
    host_ref = sorted(r["component"] for r in rows if r["expected"] != "PyTorch reference")
    note = "executor_runner verifies test case 0 of each .bpte against the outputs recorded at export"
    if host_ref:
        note += (f"; for {', '.join(host_ref)} those are the program's own host ExecuTorch run (int8): this is "
                 "host-vs-device agreement, not parity with the PyTorch reference (udc-parity on the host measures that)")
    return {"bundle": bundle.path.name, "path": str(bundle.path), "device": info, "components": rows, "passed": passed,
            "verdict": "PASS" if passed else "FAIL", "note": note}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("bundle", type=click.Path())
@click.option("--data", type=click.Path(), default=None,
              help="Folder of face photos (recursive; DIR/landmarks68.npz used when present, else MediaPipe). "
                   "Required on the host (e.g. a set made by `udc-data synthetic DIR`).")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True,
              help="Faces to compare on (a PASS needs at least 32; fewer can only FAIL or be INCONCLUSIVE).")
@click.option("--runtime", type=click.Choice(["auto", "executorch", "onnxruntime", "coreml", "torch"]), default="auto",
              show_default=True, help="Host runtime for the exported programs (auto: the bundle's own; torch is refused: "
                                      "it would compare the reference with itself).")
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
@click.option("--verbose", is_flag=True, help="Also show third-party log lines (ExecuTorch, MediaPipe/absl, torchao).")
def main(bundle, data, n, runtime, reference, device, serial, runner, threads, seed, fused, as_json, verbose):
    """Compare BUNDLE (a NAME.udc directory) with its PyTorch reference, component by component and end to
    end, on real preprocessed faces: max|d|, mean|d|, cosine, PSNR, top-1 agreement, against the
    pass/fail thresholds its manifest stores for its quant mode. Exit 1 when a row fails, 2 when the
    check cannot run here."""
    import warnings

    warnings.filterwarnings("ignore")
    from ..runtime.bundle import load_bundle
    from ..console.quiet import setup

    setup(verbose)
    from ..errors import UdcError

    try:
        b = load_bundle(bundle)
        if device == "android":
            report = android_parity(b, serial, runner, threads)
            text = android_table(report)
        else:
            from ..parity.metrics import thresholds_for
            from ..parity.data import ParityDataError, folder_faces
            from ..parity.run import host_parity, parity_runtime

            m = b.manifest
            parity_runtime(runtime, b)  # fail before any face work: torch, partial bundle, runtime not here
            thresholds_for(m["quant"], m)  # and an inconsistent manifest
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
    v = report.get("verdict", "PASS" if report["passed"] else "FAIL")
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    else:
        click.echo(text)
        if v == "INCONCLUSIVE":
            from ..parity.metrics import MIN_FACES

            click.echo(f"INCONCLUSIVE: {report['bundle']}: every row passes, but on {report['inputs']['n']} faces; a PASS "
                       f"needs at least {MIN_FACES} (use --n {MIN_FACES} or more with a --data folder that has them)")
        else:
            click.echo(f"{v}: {report['bundle']}")
    sys.exit({"PASS": 0, "FAIL": 1}.get(v, 2))


if __name__ == "__main__":  # pragma: no cover
    main()

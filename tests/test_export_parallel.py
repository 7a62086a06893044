"""``udc-export --jobs N`` (udc.export.parallel): the components exported side by side in worker processes give
the bundle a serial export gives, byte for byte; a worker's error or death stops the export with nothing left on
disk; exports that cannot be split run serially and say why."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner

from udc.export.exporter import ExportRequest, run_export
from udc.export.parallel import parallel_reason, split

pytestmark = pytest.mark.slow  # each export spawns processes that import torch and ExecuTorch (seconds each)

TWO = ("fpen_s2", "denoiser")


def _req(out, **kw):
    base = dict(output=out, target="executorch", config="tiny", eval_n=8, threads=1, components=TWO)
    return ExportRequest(**{**base, **kw})


def test_jobs_2_writes_what_jobs_1_writes(tmp_path):
    logs: list[str] = []
    serial = run_export(_req(tmp_path / "serial.udc"), log=lambda s: None)
    parallel = run_export(_req(tmp_path / "parallel.udc", jobs=2), log=logs.append)
    assert any("in 2 worker processes" in line for line in logs), logs
    assert sum(line.startswith("  fpen_s2: fpen_s2.pte") for line in logs) == 1  # the worker's line came back
    for name in ("fpen_s2.pte", "denoiser.pte", "fpen_s2.bpte", "denoiser.bpte"):
        assert (serial.path / name).read_bytes() == (parallel.path / name).read_bytes(), name
    ms, mp_ = serial.manifest, parallel.manifest
    assert list(mp_["components"]) == list(ms["components"]) == list(TWO)  # chain order, not finishing order
    assert mp_["parity"] == ms["parity"] and mp_["parity"]["passed"] is True
    for name in TWO:  # the parent measured the workers' programs itself
        assert mp_["parity"]["components"][name]["measured_with"].startswith("executorch runtime")
        assert mp_["components"][name] == ms["components"][name]


def test_a_worker_error_stops_the_export_and_leaves_nothing(tmp_path):
    """The udcformer worker refuses the hint (a layer this model lacks); the error reaches the CLI as its usage
    error and the other worker is stopped. A hint bundle: a real bundle's manifest turned int8."""
    from sdk_bundles import export_bundle
    from test_recipe_hints import _as_int8
    from udc.export.cli import main

    old = _as_int8(export_bundle(tmp_path / "src", "onnx"), tmp_path / "old.udc",
                   {"udcformer": ("gemm-int8-sensitive-1", ("no.such.layer",)), "fpen_s2": ("all-int8", ())})
    out = tmp_path / "out.udc"
    t0 = time.monotonic()
    res = CliRunner().invoke(main, ["--config", "tiny", "--target", "executorch", "--quant", "int8", "--components",
                                    "fpen_s2,udcformer", "--calib-n", "8", "--eval-n", "8", "--jobs", "2",
                                    "--recipes-from", str(old), "-o", str(out)])
    assert res.exit_code == 2 and "no.such.layer" in res.output and "does not have" in res.output, res.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.udc")]
    assert time.monotonic() - t0 < 120  # the fpen_s2 worker was stopped, not waited for


def test_a_worker_that_dies_fails_the_export(tmp_path):
    import multiprocessing as mp

    out = tmp_path / "x.udc"
    err: list[BaseException] = []

    def run():
        try:
            run_export(_req(out, jobs=2, quant="int8", calib_n=8), log=lambda s: None)
        except BaseException as e:  # noqa: BLE001 - the test looks at it
            err.append(e)

    th = threading.Thread(target=run)
    th.start()
    deadline = time.monotonic() + 60
    while not mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.2)
    kids = mp.active_children()
    assert kids, "no worker started"
    os.kill(kids[0].pid, signal.SIGKILL)
    th.join(timeout=300)
    assert not th.is_alive()
    assert err and isinstance(err[0], RuntimeError) and "died (exit code -9)" in str(err[0]), err
    assert not out.exists()


def test_what_runs_serially_says_why():
    assert "Core ML" in parallel_reason(None, True, ["a", "b"])
    assert "one component" in parallel_reason(None, False, ["udcformer"])
    assert parallel_reason(None, False, ["a", "b"]) is None
    assert split(2, 2) == 1 and split(2, 4) == 1 and split(8, 2) == 4


def test_cli_jobs_help_and_serial_fallback(tmp_path):
    from udc.export.cli import main

    res = CliRunner().invoke(main, ["--help"])
    assert "--jobs" in res.output and res.exit_code == 0
    logs: list[str] = []
    r = run_export(_req(tmp_path / "one.udc", components=("fpen_s2",), jobs=2), log=logs.append)
    assert any("only one component to export; exporting one component at a time" in line for line in logs), logs
    assert json.loads((r.path / "manifest.json").read_text())["parity"]["passed"] is True


def test_cli_stderr_has_only_udc_lines(tmp_path):
    """ExecuTorch's runtime prints cpuinfo/threadpool lines from C++ when its threadpool first starts, in the
    parent's lowered-program checks and in each worker; without --verbose none reach the terminal (measured on the
    AMD EPYC host before the fix: 5 lines from the parent, 6 from a worker)."""
    import subprocess
    import sys

    out = tmp_path / "q.udc"
    res = subprocess.run([sys.executable, "-m", "udc.export.cli", "--config", "tiny", "--target", "executorch",
                          "--components", "fpen_s2,denoiser", "--eval-n", "8", "--jobs", "2", "-o", str(out)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1", "UDC_VERBOSE": ""})
    assert res.returncode == 0, res.stderr[-2000:]
    native = [ln for ln in res.stderr.splitlines() if ".cpp:" in ln]
    assert native == [], native

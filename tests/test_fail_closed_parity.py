"""Parity checks that fail closed (issue 14, items 1-8) and the parity checker shown failing (issue 19):
non-finite outputs, ``--runtime torch``, the Core ML emulation precision, thresholds a bundle cannot
loosen, the labels of the Android check, the minimum number of faces, the synthetic-faces warning,
partial and parity-failed bundles in ``Recognizer.load``, and a perturbed int8-mode bundle through
``udc-parity``."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sdk_bundles import copy_bundle, export_bundle, perturb_onnx_weights, tiny_reference, write_face_folder
from udc.sdk.parity import metrics as parity
from udc.sdk.parity.metrics import MIN_FACES, THRESHOLDS, ParityThresholdError, check, compare, thresholds_for


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("fail-closed-bundles")


@pytest.fixture(scope="module")
def onnx_fp32(root):
    return export_bundle(root, "onnx")


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    return write_face_folder(tmp_path_factory.mktemp("fc-faces"), -(-MIN_FACES // 7))  # 35 faces


def _cli(*args):
    from udc.sdk.cli.parity import main

    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


def _edit_manifest(bundle, fn):
    mf = bundle / "manifest.json"
    m = json.loads(mf.read_text())
    fn(m)
    mf.write_text(json.dumps(m, indent=2))


def _logits(n=64, k=7, seed=0):
    return np.random.default_rng(seed).normal(size=(n, k)) * 3


# ------------------------------------------------------------------------------- 1. non-finite numbers
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("mode", sorted(THRESHOLDS))
def test_nonfinite_output_fails_every_mode(mode, bad):
    ref = _logits()
    out = ref.copy()
    out[3, 2] = bad  # one value of one face
    m = compare(ref, out, logits=True)
    assert m["nonfinite"] == 1 and m["ref_nonfinite"] == 0
    assert m["top1_agreement"] == pytest.approx(63 / 64)  # the broken face disagrees, whatever its argmax
    assert m["unexplained_flips"] == 1  # and no near-tie excuses it
    ok, fails = check(m, mode, logits=True)
    assert not ok and any("non-finite" in f for f in fails), fails
    ok, fails = check(m, mode, logits=True, margin_aware=True)
    assert not ok
    # the same metrics as a manifest stores them (inf/NaN -> None) still fail, and are valid JSON
    r = parity.rounded(m)
    json.dumps(r, allow_nan=False)
    assert not check(r, mode, logits=True)[0]
    assert "non-finite" in parity.summary(r)


def test_nan_everywhere_fails_and_nothing_crashes():
    ref = _logits(8)
    out = np.full_like(ref, np.nan)
    m = compare(ref, out, logits=True)
    assert m["nonfinite"] == out.size and m["top1_agreement"] == 0.0
    assert math.isnan(m["psnr"]) and math.isnan(m["cosine"])
    ok, fails = check(m, "int8", logits=True)
    assert not ok and len(fails) >= 3  # non-finite, cosine (NaN < thr is False: must still fail), top-1
    # a NaN reference fails too (nothing can be certified against it)
    m = compare(out, ref, logits=True)
    assert m["ref_nonfinite"] == out.size and not check(m, "int4-palettize", logits=True)[0]


def test_psnr_and_rounded_survive_inf():
    ref = np.ones((4, 3))
    big = ref.copy()
    big[0, 0] = np.inf
    assert math.isnan(parity.psnr(ref, big))  # not a math domain error
    assert parity.psnr(ref, ref) == math.inf
    assert parity.psnr(np.full((2, 2), 1e300), np.full((2, 2), -1e300)) == -math.inf  # squared error overflows
    r = parity.rounded({"a": math.inf, "b": np.float32(np.nan), "c": np.float64(1.23456789), "d": np.int64(3)})
    assert r == {"a": None, "b": None, "c": 1.23457, "d": 3}
    json.dumps(r, allow_nan=False)


@pytest.mark.parametrize("metric", ["cosine", "max_abs", "top1_agreement"])
def test_missing_or_none_metric_fails(metric):
    m = compare(_logits(), _logits(), logits=True)
    assert check(m, "fp32", logits=True)[0]
    m[metric] = None
    ok, fails = check(m, "fp32", logits=True)
    assert not ok and fails
    del m[metric]
    assert not check(m, "fp32", logits=True)[0]


def test_fp16_overflow_is_a_failure_not_a_traceback():
    """The Core ML fp16 emulation of a component whose activations overflow fp16: it used to crash the export
    (psnr's log10(0), then ``None < threshold``); now it is a failed row."""
    from udc.export.quant import fp16
    from udc.export.exporter import _parity_entry

    class Big(torch.nn.Module):
        def forward(self, x):
            return x * 1e5

    x = torch.randn(8, 4)
    res = fp16.check(Big(), {"x": x}, x * 1e5)
    res.pop("emulated_output")
    assert not res["passed"]
    assert res["emulation"]["nonfinite"] > 0
    entry = _parity_entry(res["emulation"], "fp16", False, "torch fp16 emulation")
    assert entry["passed"] is False and any("non-finite" in f for f in entry["failures"])
    json.dumps(entry, allow_nan=False)


# ------------------------------------------------------------------------------- 2. --runtime torch
def test_runtime_torch_is_refused(onnx_fp32, faces_dir):
    res = _cli(onnx_fp32, "--runtime", "torch", "--data", faces_dir, "--n", "32")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "itself" in lines[0] and "PASS" not in res.output


# ------------------------------------------------------------------------------- 3. Core ML emulation precision
@pytest.fixture(scope="module")
def tiny_ref():
    return tiny_reference(8)


def _coreml_row(model, ref, quant, monkeypatch=None):
    from udc.export.artifact import Artifact
    from udc.export.targets.coreml_export import COREML_NOT_HERE
    from udc.export.exporter import _precision_for, parity_report
    from udc.sdk.models.components import on_device_components

    comp = next(c for c in on_device_components(model) if c.name == "fpen_s2")
    precision, record, emu = _precision_for(comp, model, quant, ref, lambda *_: None)
    a = Artifact(component="fpen_s2", file="fpen_s2.mlpackage", format="mlpackage", inputs=[], outputs=[],
                 quantization={"compute_precision": "float16" if precision == "fp16" else "float32"},
                 skip_reason=COREML_NOT_HERE)
    rep = parity_report({"fpen_s2": a}, model, ref, quant, {"fpen_s2": record}, quant, {"fpen_s2": emu})
    return precision, rep


@pytest.mark.parametrize("quant,range_check_fails,want", [
    ("fp32", False, "fp32"),  # --quant fp32: the package computes in float32
    ("fp16", True, "fp32"),  # fp16 range check failed: float32 compute
    ("fp16", False, "fp16"),
])
def test_coreml_parity_emulates_the_precision_the_package_uses(tiny_ref, monkeypatch, quant, range_check_fails, want):
    from udc.export.quant import fp16

    model, ref = tiny_ref
    if range_check_fails:
        monkeypatch.setattr(fp16, "HEADROOM", 1e12)  # every activation is "too close" to the fp16 maximum
    precision, rep = _coreml_row(model, ref, quant)
    assert precision == want
    row = rep["components"]["fpen_s2"]
    other = "fp16" if want == "fp32" else "float32"
    assert ("float32" if want == "fp32" else "fp16") in row["measured_with"] and other not in row["measured_with"]
    if want == "fp32":  # float32 compute, float32 weights: the emulation is the reference itself, and says so
        assert row["metrics"]["max_abs"] == 0.0 and row["passed"] is True
        assert "identical to the reference by construction" in row["measured_with"]
    else:  # fp16 rounding shows
        assert row["metrics"]["max_abs"] > 0.0
    assert f"fpen_s2 {want}" in rep["end_to_end"]["measured_with"]


def test_coreml_fp32_export_reports_float32_parity(tmp_path):
    """A real Core ML export (one small component): --quant fp32 gives a float32 emulation row that passes
    the fp32 thresholds (it was an fp16 emulation labelled float32, failing max|d|)."""
    from udc.export.exporter import ExportRequest, run_export

    r = run_export(ExportRequest(output=tmp_path / "cm.udc", target="coreml", config="tiny", quant="fp32", eval_n=8,
                                 threads=1, components=("fpen_s2",)), log=lambda *_: None)
    row = r.manifest["parity"]["components"]["fpen_s2"]
    assert "float32" in row["measured_with"] and "fp16" not in row["measured_with"]
    assert row["passed"] is True and row["metrics"]["max_abs"] == 0.0
    assert r.manifest["components"]["fpen_s2"]["quantization"]["compute_precision"] == "float32"


# ------------------------------------------------------------------------------- 4. thresholds
@pytest.mark.parametrize("mode", sorted(THRESHOLDS))
def test_stored_thresholds_cannot_loosen_the_mode(mode):
    loose = {"parity": {"thresholds": {"mode": mode, "cosine": -1, "top1": 0, "max_abs": 1e9}}}
    # a stored max_abs bound is kept only where the mode has none (any bound is stricter than none)
    assert thresholds_for(mode, loose) == {"mode": mode, **THRESHOLDS[mode],
                                           "max_abs": THRESHOLDS[mode].get("max_abs", 1e9)}
    nan = {"parity": {"thresholds": {"mode": mode, "cosine": float("nan"), "top1": "x"}}}
    assert thresholds_for(mode, nan) == {"mode": mode, **THRESHOLDS[mode]}
    strict = {"parity": {"thresholds": {"mode": mode, "cosine": 0.999999, "top1": 1.0, "max_abs": 1e-6}}}
    t = thresholds_for(mode, strict)
    assert t["cosine"] == 0.999999 and t["top1"] == 1.0 and t["max_abs"] == 1e-6  # stricter values are kept
    other = next(k for k in THRESHOLDS if k != mode)
    with pytest.raises(ParityThresholdError, match=f"mode {other!r} but the bundle's quant is {mode!r}"):
        thresholds_for(mode, {"parity": {"thresholds": {"mode": other, "cosine": 0.9, "top1": 0.9}}})
    with pytest.raises(ParityThresholdError, match="no parity thresholds"):
        thresholds_for("int3", {})


def test_loose_manifest_thresholds_fail_a_perturbed_bundle(onnx_fp32, faces_dir, tmp_path):
    b = copy_bundle(onnx_fp32, tmp_path / "loose.udc")
    perturb_onnx_weights(b, "udcformer")

    def loosen(m):
        m["parity"]["thresholds"].update(cosine=-1, top1=0, max_abs=1e9)

    _edit_manifest(b, loosen)
    res = _cli(b, "--data", faces_dir, "--n", "32", "--json")
    assert res.exit_code == 1, res.output
    r = json.loads(res.stdout)
    assert r["thresholds"]["cosine"] == THRESHOLDS["fp32"]["cosine"] and not r["components"]["udcformer"]["passed"]

    def relabel(m):
        m["parity"]["thresholds"]["mode"] = "int8"

    _edit_manifest(b, relabel)
    res = _cli(b, "--data", faces_dir, "--n", "32")
    assert res.exit_code == 2 and "mode 'int8'" in res.output and len(res.output.strip().splitlines()) == 1


# ------------------------------------------------------------------------------- issue 19: the checker, table-driven
@pytest.mark.parametrize("mode", sorted(THRESHOLDS))
def test_cosine_only_failure_per_mode(mode):
    t = THRESHOLDS[mode]
    base = {"n": 64, "nonfinite": 0, "ref_nonfinite": 0, "max_abs": 0.0, "ref_abs_max": 1.0, "cosine": t["cosine"],
            "top1_agreement": 1.0, "top1_agreement_margin_aware": 1.0}
    assert check(base, mode, logits=True) == (True, [])  # at the threshold: pass
    below = {**base, "cosine": t["cosine"] - 1e-7}
    ok, fails = check(below, mode, logits=True)
    assert not ok and len(fails) == 1 and fails[0].startswith("cosine"), fails
    assert check(below, mode, logits=True, margin_aware=True) == (ok, fails)  # margin-awareness excuses no cosine
    assert not check({**base, "cosine": float("nan")}, mode)[0]


def test_margin_aware_path():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 7)) * 3
    out = ref + rng.normal(size=ref.shape) * 0.01
    for i in range(5):  # five near-ties, each flipped by an error of the program's typical size
        ref[i] = [1.0, 0.999, 0, 0, 0, 0, 0]
        out[i] = ref[i]
        out[i, :2] = [0.999, 1.0]
    m = compare(ref, out, logits=True)
    assert m["flips"] == 5 and m["unexplained_flips"] == 0
    t = {"cosine": 0.9, "top1": 0.97}
    ok, fails = check(m, t, logits=True)
    assert not ok and fails == ["top-1 agreement 0.9500 < 0.97"]
    assert check(m, t, logits=True, margin_aware=True) == (True, [])
    for i in range(5, 9):  # four decisive faces flipped by a large error: no margin explains them
        out[i, np.argsort(ref[i])[-2]] += 50
    m = compare(ref, out, logits=True)
    assert m["unexplained_flips"] == 4
    ok, fails = check(m, t, logits=True, margin_aware=True)
    assert not ok and fails[0].startswith("margin-aware top-1 agreement 0.96")


def test_thresholds_dict():
    ref = _logits()
    out = ref + np.random.default_rng(1).normal(size=ref.shape) * 0.5
    m = compare(ref, out, logits=True)
    assert not check(m, "int8", logits=True)[0]
    assert check(m, {"cosine": 0.9, "top1": 0.5}, logits=True)[0]
    ok, fails = check(m, {"cosine": 0.9, "top1": 0.5, "max_abs": 1e-3}, logits=True)
    assert not ok and fails[0].startswith("max|d|")
    with pytest.raises(ParityThresholdError, match="top1"):
        check(m, {"cosine": 0.9})
    with pytest.raises(ParityThresholdError, match="cosine"):
        check(m, {"cosine": float("nan"), "top1": 0.5})


def test_perturbed_int8_bundle_fails_through_udc_parity(onnx_fp32, faces_dir, tmp_path):
    """An int8-mode bundle (the tiny fp32 ONNX export labelled int8: a real int8 export takes minutes here)
    passes udc-parity under the int8 thresholds, then fails with exit 1 once its udcformer weights are
    perturbed (checksums re-written, so only parity can notice)."""
    b = copy_bundle(onnx_fp32, tmp_path / "int8.udc")

    def as_int8(m):
        m["quant"] = m["quantization"]["mode"] = "int8"
        m["parity"]["thresholds"] = {"mode": "int8", **THRESHOLDS["int8"]}

    _edit_manifest(b, as_int8)
    res = _cli(b, "--data", faces_dir, "--n", "32", "--json")
    assert res.exit_code == 0, res.output  # the control: unperturbed, it passes
    perturb_onnx_weights(b, "udcformer", scale=0.5)
    res = _cli(b, "--data", faces_dir, "--n", "32", "--json")
    assert res.exit_code == 1, res.output
    r = json.loads(res.stdout)
    assert r["quant"] == "int8" and r["thresholds"]["mode"] == "int8" and r["verdict"] == "FAIL"
    assert r["components"]["clip_image"]["passed"] and not r["components"]["udcformer"]["passed"]
    assert not r["end_to_end"]["passed"]


# ------------------------------------------------------------------------------- 5. the Android check's label
def _fake_android(monkeypatch):
    from udc.sdk.bench import android

    class Result:
        def to_dict(self):
            return {"verdict": "PASS", "error_stats": {"max_absolute_error": 0.0, "mean_absolute_error": 0.0}}

    class Session:
        def __init__(self, adb, runner):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def device_info(self):
            return {"model": "Pixel Fake", "serial": "X", "android": "14"}

        def run(self, program, **kw):
            return Result()

    monkeypatch.setattr(android.Adb, "connect", classmethod(lambda cls, serial=None: object()))
    monkeypatch.setattr(android, "AndroidSession", Session)


@pytest.mark.parametrize("expected,title", [
    ("host ExecuTorch run of this int8 program", "host-vs-device"),
    ("PyTorch float32 reference", "vs its PyTorch reference output"),
])
def test_android_check_says_what_its_expected_outputs_are(monkeypatch, tmp_path, expected, title):
    from udc.sdk.runtime.bundle import Bundle
    from udc.sdk.cli.parity import android_parity, android_table

    _fake_android(monkeypatch)
    comps = {n: {"file": f"{n}.pte", "bundled_program": {"file": f"{n}.bpte", "expected_outputs": expected,
                                                           "atol": 0.02, "rtol": 0.02}}
             for n in ("fpen_s2", "denoiser")}
    b = Bundle(tmp_path / "x.udc", {"target": "executorch", "components": comps})
    r = android_parity(b, None, "executor_runner", None)
    text = android_table(r)
    assert title in text.splitlines()[0]
    host = expected.startswith("host")
    assert ("PyTorch reference" in text.splitlines()[0]) is (not host)
    assert all(c["expected"] == ("host ExecuTorch" if host else "PyTorch reference") for c in r["components"])
    assert ("host-vs-device" in r["note"]) is host


# ------------------------------------------------------------------------------- 6. minimum number of faces
def test_verdict_needs_min_faces():
    from udc.sdk.parity.run import verdict

    assert MIN_FACES == 32
    assert verdict(True, MIN_FACES) == "PASS" and verdict(True, MIN_FACES - 1) == "INCONCLUSIVE"
    assert verdict(False, 1) == "FAIL" and verdict(False, 500) == "FAIL"


def test_one_usable_face_is_not_a_pass(onnx_fp32, faces_dir):
    res = _cli(onnx_fp32, "--data", faces_dir, "--n", "1", "--json")
    assert res.exit_code == 2, res.output
    r = json.loads(res.stdout)
    assert r["verdict"] == "INCONCLUSIVE" and r["passed"] is False and r["end_to_end"]["passed"] is True


# ------------------------------------------------------------------------------- 7, 8. exports: synthetic faces, --force
@pytest.fixture(scope="module")
def partial_export(tmp_path_factory):
    from udc.export.exporter import ExportRequest, run_export

    lines: list[str] = []
    out = tmp_path_factory.mktemp("partial") / "part.udc"
    r = run_export(ExportRequest(output=out, target="onnx", config="tiny", quant="int8", eval_n=8, calib_n=8,
                                 threads=1, components=("fpen_s2",)), log=lines.append)
    return r, lines


def test_synthetic_faces_are_warned_about_and_recorded(partial_export):
    r, lines = partial_export
    m = r.manifest
    assert any(s.startswith("WARNING: no --calib: int8 calibration and the parity report use procedural synthetic")
               for s in lines), lines
    assert any("fewer than the 32" in s for s in lines)
    assert m["quantization"]["calibration_source"] == "synthetic"
    assert m["quantization"]["calibration"]["kind"] == "synthetic" and m["parity"]["inputs"]["kind"] == "synthetic"
    assert any("synthetic" in w for w in m["warnings"]) and r.warnings == m["warnings"]
    assert m["parity"]["conclusive"] is False and m["parity"]["min_faces"] == MIN_FACES
    from udc.sdk.runtime.bundle import load_bundle

    load_bundle(r.path)  # the new fields fit the schema


def test_synthetic_warning_for_a_checkpoint_says_why():
    from udc.export.exporter import synthetic_faces_warning

    assert "trained on real faces" in synthetic_faces_warning("int8", random_init=False)
    assert "int8 calibration" not in synthetic_faces_warning("fp32", random_init=True)


def test_recognizer_refuses_a_partial_bundle(partial_export):
    from udc.sdk.runtime.bundle import BundleError
    from udc.sdk.runtime.recognizer import Recognizer

    with pytest.raises(BundleError, match="partial bundle .*apps refuse it"):
        Recognizer.load(partial_export[0].path)
    res = _cli(partial_export[0].path, "--data", ".", "--n", "32")
    assert res.exit_code == 2 and "partial bundle" in res.output


def test_recognizer_warns_or_refuses_a_failed_parity_bundle(onnx_fp32, tmp_path):
    from udc.sdk.runtime.bundle import BundleError
    from udc.sdk.runtime.recognizer import ParityWarning, Recognizer

    b = copy_bundle(onnx_fp32, tmp_path / "failed.udc")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParityWarning)
        Recognizer.load(b)  # parity passed: no warning

    def fail(m):
        m["parity"]["passed"] = False

    _edit_manifest(b, fail)
    with pytest.warns(ParityWarning, match="failed its export parity check"):
        Recognizer.load(b)
    with pytest.raises(BundleError, match="failed its export parity check.*refused"):
        Recognizer.load(b, allow_failed_parity=False)


def test_force_says_when_a_failed_export_replaces_a_passing_bundle(tmp_path, monkeypatch):
    from udc.export.exporter import ExportRequest, run_export

    def export(log):
        return run_export(ExportRequest(output=tmp_path / "f.udc", target="onnx", config="tiny", eval_n=4, threads=1,
                                        components=("fpen_s2",), force=True), log=log)

    first = export(lambda *_: None)
    assert first.passed and not any("replacing" in w for w in first.warnings)
    monkeypatch.setitem(THRESHOLDS, "fp32", {"max_abs": 1e-4, "cosine": 2.0, "top1": 1.0})  # nothing can pass
    lines: list[str] = []
    second = export(lines.append)
    assert not second.passed
    assert any("whose parity PASSED" in w and "FAILED" in w for w in second.warnings)
    assert any(s.startswith("WARNING: replacing f.udc") for s in lines)


def test_compare_refuses_empty_and_mismatched_outputs():
    """An empty batch compares nothing (a typed one-line error, not numpy's bare ValueError from max());
    different shapes likewise."""
    from udc.sdk.parity.metrics import ParityInputError, compare

    with pytest.raises(ParityInputError, match="nothing to compare"):
        compare(np.zeros((0, 7), np.float32), np.zeros((0, 7), np.float32), logits=True)
    with pytest.raises(ParityInputError, match="shape mismatch"):
        compare(np.zeros((2, 7), np.float32), np.zeros((3, 7), np.float32))

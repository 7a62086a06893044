"""ExecuTorch's OpenVINO delegate (``udc-export --target executorch --backend openvino``, int8 only): the options,
where the runtime finds OpenVINO (``udc.sdk.runtime.openvino_env``), the clear errors when it cannot, the unfolded
int8 weights the delegate needs, and a tiny bundle end to end (slow). Measured speed: docs/measured-facts.md."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from udc.export.options import ExportOptionError, resolve
from udc.sdk.errors import MissingDependencyError
from udc.sdk.runtime import openvino_env as ov
from udc.sdk.runtime.runners import RuntimeUnavailableError, check_runtime, runtime_problem

pytestmark = pytest.mark.filterwarnings("ignore")


# ------------------------------------------------------------------------------------------ options
def test_openvino_is_int8_only_and_says_why():
    assert resolve("executorch", "openvino", None) == ("openvino", "int8")
    assert resolve("executorch", "openvino", "int8") == ("openvino", "int8")
    with pytest.raises(ExportOptionError, match="--backend openvino is int8 only .*bf16"):
        resolve("executorch", "openvino", "fp32")
    with pytest.raises(ExportOptionError, match="does not apply to --target onnx"):
        resolve("onnx", "openvino", "int8")


# ------------------------------------------------------------------------------------------ finding the library
def _package(tmp_path, *names):
    libs = tmp_path / "openvino" / "libs"
    libs.mkdir(parents=True)
    for n in names:
        (libs / n).write_bytes(b"")
    return tmp_path / "openvino"


@pytest.mark.skipif(sys.platform != "linux", reason="the Linux library names")
def test_library_takes_the_plain_name_else_the_highest_version(tmp_path):
    assert ov.library(_package(tmp_path / "a", "libopenvino_c.so.2541", "libopenvino_c.so.2540",
                               "libopenvino.so.2541")).name == "libopenvino_c.so.2541"
    assert ov.library(_package(tmp_path / "b", "libopenvino_c.so", "libopenvino_c.so.2541")).name == "libopenvino_c.so"
    assert ov.library(_package(tmp_path / "d", "libopenvino_c.so.999", "libopenvino_c.so.2541")).name.endswith("2541")
    assert ov.library(_package(tmp_path / "c", "libopenvino.so.2541")) is None  # no C library in it
    assert ov.library(tmp_path / "missing") is None


def test_the_users_path_is_left_alone_and_an_unset_one_is_filled(monkeypatch, tmp_path):
    monkeypatch.setenv(ov.ENV, "/opt/intel/openvino/libopenvino_c.so")
    monkeypatch.setattr(ov, "library", lambda package_dir=None: tmp_path / "libopenvino_c.so")
    assert ov.point_executorch_at_openvino() == "/opt/intel/openvino/libopenvino_c.so"
    monkeypatch.delenv(ov.ENV)
    assert ov.point_executorch_at_openvino() == str(tmp_path / "libopenvino_c.so")
    assert os.environ[ov.ENV] == str(tmp_path / "libopenvino_c.so")
    monkeypatch.delenv(ov.ENV)
    monkeypatch.setattr(ov, "library", lambda package_dir=None: None)
    assert ov.point_executorch_at_openvino() is None and ov.ENV not in os.environ


def test_missing_openvino_is_a_missing_dependency_with_one_command(monkeypatch, tmp_path):
    monkeypatch.setattr(ov, "library", lambda package_dir=None: None)
    why = runtime_problem("executorch", "executorch", "openvino")
    assert "delegated to OpenVINO, which is not installed" in why and ov.EXTRA in why
    with pytest.raises(MissingDependencyError, match="openvino"):
        check_runtime("executorch", "executorch", "openvino")
    assert runtime_problem("executorch", "executorch", "xnnpack") is None  # other bundles are not affected
    monkeypatch.delenv(ov.ENV, raising=False)
    assert "OpenVINO is not installed" in ov.missing_hint()
    monkeypatch.setenv(ov.ENV, str(tmp_path / "nowhere.so"))
    assert "is not a file" in ov.missing_hint()


def test_a_program_that_cannot_load_names_openvino_only_when_it_is_delegated_to_it():
    from udc.sdk.runtime.executorch_runtime import ExecuTorchRunner

    with pytest.raises(RuntimeUnavailableError, match="delegated to OpenVINO"):
        ExecuTorchRunner("x.pte", data=b"\0" * 64 + b"OpenvinoBackend" + b"\0" * 64)
    with pytest.raises(RuntimeUnavailableError) as e:
        ExecuTorchRunner("x.pte", data=b"\0" * 64 + b"XnnpackBackend" + b"\0" * 64)
    assert "OpenVINO" not in str(e.value)


# ------------------------------------------------------------------------------------------ unfolded weights
def test_unfolded_weights_compute_the_same_numbers_as_int8_constants():
    """OpenVINO's frontend needs each int8 weight as a float quantize -> dequantize pair (``fold_weights=False``);
    the converted module computes exactly what the folded one (int8 constants, XNNPACK) does."""
    from udc.export.quant.recipes import PT2E

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 7))
    ex = (torch.randn(1, 3, 8, 8),)
    samples = [(torch.randn(1, 3, 8, 8),) for _ in range(4)]
    outs, weights = {}, {}
    for fold in (True, False):
        q = PT2E(m, ex, fold_weights=fold)
        cq = q.convert(q.calibrate("all-int8", samples)[0])
        with torch.no_grad():
            outs[fold] = cq(*ex)
        weights[fold] = sorted({p.dtype for p in list(cq.parameters()) + list(cq.buffers())}, key=str)
    assert torch.equal(outs[True], outs[False])
    assert torch.int8 in weights[True] and torch.int8 not in weights[False]


def test_without_output_specs_only_the_inputs_are_quantized():
    """``quantize_outputs=False`` (OpenVINO): a linear layer's input and weight are quantized, its output is not,
    so fewer quantize ops than with XNNPACK's config and the output stays float; the backend table asks for it."""
    from udc.export.quant.recipes import PT2E
    from udc.export.targets.executorch_export import QUANTIZE_OUTPUTS, pt2e_for

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.Linear(16, 4))
    ex = (torch.randn(1, 16),)
    counts = {}
    for outs in (True, False):
        q = PT2E(m, ex, fold_weights=False, quantize_outputs=outs)
        cq = q.convert(q.calibrate("gemm-int8", [ex])[0])
        counts[outs] = sum(1 for n in cq.graph.nodes if "quantize_per_tensor" in str(n.target)
                           and "dequantize" not in str(n.target))
        last = [n for n in cq.graph.nodes if n.op == "output"][0].args[0]
        last = last[0] if isinstance(last, (tuple, list)) else last
        assert ("dequantize" in str(last.target)) is outs  # XNNPACK's output is requantized, OpenVINO's is not
    assert counts[False] < counts[True]
    assert QUANTIZE_OUTPUTS == {"openvino": False}
    assert pt2e_for(m, ex, "openvino").quantize_outputs is False and pt2e_for(m, ex, "xnnpack").quantize_outputs


# ------------------------------------------------------------------------------------------ end to end (slow)
@pytest.mark.slow
def test_openvino_int8_bundle_end_to_end(tmp_path):
    """A tiny int8 bundle through the OpenVINO delegate: every node delegated, the backend's recipe order
    (gemm-int8 first), each lowered program checked on the calibration faces, parity passed, and the programs
    run here through the SDK (which points ExecuTorch at the installed OpenVINO). In a fresh process with
    ``OPENVINO_LIB_PATH`` at a missing file, loading fails with the sentence that says so."""
    from udc.export.exporter import ExportRequest, run_export
    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.chain import load_chain

    if ov.library() is None:
        pytest.skip("the openvino extra is not installed")
    out = tmp_path / "ov.udc"
    run_export(ExportRequest(output=out, target="executorch", backend="openvino", config="tiny", calib_n=16,
                             eval_n=16, threads=1), log=lambda s: None)
    b = load_bundle(out, verify=True)
    m = b.manifest
    assert (m["backend"], m["quant"]) == ("openvino", "int8") and m["parity"]["passed"] is True
    assert "OpenVINO's CPU plugin" in m["quantization"]["scheme"]
    for name, c in m["components"].items():
        q = c["quantization"]
        assert q["candidates"][0]["recipe"] == "gemm-int8", name  # the first that passes wins
        assert q["lowered_checks"] and q["lowered_checks"][-1]["passed"] is True, name
        assert c["delegation"]["delegated_pct"] == 100.0 and c["delegation"]["backend"] == "openvino", name
        assert b"OpenvinoBackend" in (out / c["file"]).read_bytes()
        assert "OpenvinoBackend" in m["parity"]["components"][name]["measured_with"]
    from udc.sdk.models.components import example_inputs
    from udc.sdk.models.registry import random_init_model
    from udc.sdk.parity.metrics import compare

    model = random_init_model("lrdif", "tiny", 0).eval()  # the bundle's model (no checkpoint: seed 0)
    ex = example_inputs(model)
    with torch.no_grad():
        want = model(ex["image"], ex["landmarks"], noise=ex["noise"])
    got, _ = load_chain(b, "executorch", threads=1).run({k: v.numpy() for k, v in ex.items()})
    assert compare(want, got, logits=True)["cosine"] >= 0.99
    code = ("import sys; from udc.sdk.runtime.runners import load\n"
            f"try:\n    load({str(out / m['components']['fpen_s2']['file'])!r})\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
    env = {**os.environ, ov.ENV: str(tmp_path / "missing" / "libopenvino_c.so"),
           "TORCHAO_FORCE_SKIP_LOADING_SO_FILES": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "RuntimeUnavailableError" in r.stdout and "is not a file" in r.stdout, r.stdout

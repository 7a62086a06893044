"""udc-export end to end on the tiny config: every target, the parity of every exported file against
the PyTorch reference (re-measured here through udc.sdk.runtime.runners, not read back from the manifest),
the manifest, checksums, determinism, and the one-line errors. The int8 exports are in
tests/test_export_int8.py; the checkpoint fixture, why it is what it is, and the shared checks: tests/export_checks.py.
"""
import json
import platform
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from udc.export.cli import main
from udc.sdk.runtime import bundle as B
from udc.sdk.models.config import tiny
from udc.sdk.parity.metrics import THRESHOLDS, compare

# the module fixtures (checkpoint, held_faces, reference) are imported to be registered here
from export_checks import (  # noqa: F401
    EVAL_N, FOUR, _api_export, _chain, _check_manifest, _checksums_match, _cli_export, _fp32_matches, _runner,
    checkpoint, held_faces, reference,
)

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def et_fp32(tmp_path_factory, checkpoint):
    """The full ExecuTorch/XNNPACK fp32 bundle of ``checkpoint``, through the CLI: the session's one export
    (tests/sdk_bundles.py), shared with the SDK tests."""
    from sdk_bundles import SHARED_EVAL_N, executorch_fp32_cli

    assert SHARED_EVAL_N == EVAL_N
    return executorch_fp32_cli(tmp_path_factory.mktemp("et32"))


@pytest.fixture(scope="module")
def coreml_fp16(tmp_path_factory, checkpoint):
    return _api_export(tmp_path_factory.mktemp("cm16") / "c.udc", checkpoint, target="coreml", quant="fp16")


# ------------------------------------------------------------------------------------------ ExecuTorch
@pytest.mark.slow
def test_executorch_xnnpack_fp32(et_fp32, reference):
    model, ref = reference
    out, output = et_fp32
    assert "Delegation report" in output
    assert re.search(r"component\s+format\s+quant\s+size MB\s+delegated %\s+parity vs reference\s+result", output)
    assert "end-to-end" in output and "FAIL" not in output
    bundle = B.load_bundle(out)
    _check_manifest(bundle, "executorch", "fp32")
    assert bundle.manifest["source"]["checkpoint_sha256"] and bundle.manifest["model"]["random_init"] is False
    for comp in FOUR:
        d = bundle.manifest["components"][comp]["delegation"]
        assert d["non_delegated_compute_pct"] < 5 and d["partitions"] >= 1
        assert all(f["reason"] for f in d["fallback_ops"])
    _fp32_matches(bundle, ref, FOUR)
    logits = _chain(bundle, ref, model)
    assert float((logits - ref.tensors["logits"]).abs().max()) <= 1e-4
    assert _checksums_match(out) == 8  # four .pte + four .bpte


@pytest.mark.slow
def test_executorch_bundled_program_checks_itself(et_fp32):
    from executorch.extension.pybindings import portable_lib

    out, _ = et_fp32
    manifest = json.loads((out / "manifest.json").read_text())
    for comp in ("denoiser", "udcformer"):
        bp = manifest["components"][comp]["bundled_program"]
        assert bp["test_cases"] >= 1
        prog = portable_lib._load_bundled_program_from_buffer((out / bp["file"]).read_bytes())
        for i in range(bp["test_cases"]):
            prog.verify_result_with_bundled_expected_output("forward", i, bp["rtol"], bp["atol"])



# ------------------------------------------------------------------------------------------ ONNX
@pytest.mark.slow
def test_onnx_fp32_fused(tmp_path, held_faces):
    """The fused pipeline (one program, the four components inside) from the end-to-end fixtures' model: its
    logits depend on the noise input (positive control, first), and match the reference's."""
    from sdk_bundles import assert_upstream_reaches_logits, chain_upstream_deltas, e2e_checkpoint
    from udc.export.reference import reference_io
    from udc.sdk.runtime.chain import load_chain
    from udc.sdk.models.checkpoint import load_checkpoint

    ckpt = e2e_checkpoint(tmp_path)
    comps = ["clip_image", "fpen_s2", "denoiser", "pipeline"]
    out, output = _cli_export(tmp_path / "f.udc", str(ckpt), "--target", "onnx", "--fuse",
                              "--components", ",".join(comps))
    bundle = B.load_bundle(out)
    fused = load_chain(bundle, "onnxruntime", threads=1, fused=True)
    assert fused.components == ["pipeline"]
    assert_upstream_reaches_logits(chain_upstream_deltas(fused), "fused pipeline", expect=("noise",))
    assert "Delegation report" not in output and "pipeline" in output
    _check_manifest(bundle, "onnx", "fp32", comps)
    ref = reference_io(load_checkpoint(ckpt).eval(), held_faces)
    _fp32_matches(bundle, ref, comps)  # pipeline: the logits, max|d| <= 1e-4
    assert bundle.manifest["wiring"]["fpen_s2.image_features"] == "clip_image.image_features"
    assert bundle.manifest["wiring"]["pipeline.noise"] == "input:noise"
    assert _checksums_match(out) == 4


@pytest.mark.slow
def test_onnx_from_a_fresh_model(tmp_path):
    """No checkpoint (--config tiny): a fresh random-init model, said so in the output and the manifest."""
    from udc.export.exporter import ExportRequest, load_model

    out, output = _cli_export(tmp_path / "r.udc", "--config", "tiny", "--target", "onnx", "--components",
                              "fpen_s2", eval_n=16)
    assert "random-init" in output
    bundle = B.load_bundle(out)
    assert bundle.manifest["model"]["random_init"] is True and bundle.manifest["source"]["checkpoint"] is None
    model = load_model(ExportRequest(output=out, target="onnx", config="tiny"))[0]  # the same seed: the same model
    shape = bundle.manifest["components"]["fpen_s2"]["inputs"][0]["shape"]
    run = _runner(bundle, "fpen_s2")
    with torch.no_grad():
        for seed in range(3):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            got = torch.as_tensor(np.asarray(run(x)[0]))
            assert float((got - model.fpen_s2(x)).abs().max()) <= 1e-4



# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.slow
@pytest.mark.parametrize("target", ["executorch", "onnx", "coreml"])
def test_second_export_gives_the_same_manifest(tmp_path, checkpoint, target):
    """Same checkpoint, same command: the same manifest (sha256 of every file included) apart from 'created'."""
    args = [str(checkpoint), "--target", target, "--components", "fpen_s2"]
    a, _ = _cli_export(tmp_path / "a" / "x.udc", *args, eval_n=16)
    b, _ = _cli_export(tmp_path / "b" / "x.udc", *args, eval_n=16)
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma.pop("created") and mb.pop("created")
    assert ma == mb
    # a real bundle, altered: refused
    f = b / ma["components"]["fpen_s2"]["file"]
    if f.is_dir():
        f = max((p for p in f.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(B.BundleError, match=r"fpen_s2\.\w+ is truncated or altered"):
        B.load_bundle(b)


# ------------------------------------------------------------------------------------------ Core ML
def _coreml_spec_checks(bundle):
    from udc.sdk.runtime.coreml_runtime import inspect

    m = bundle.manifest
    assert m["target"] == "coreml" and m["backend"] == "coreml"
    for comp, entry in m["components"].items():
        spec = inspect(bundle.file(comp))
        assert [(i["name"], i["shape"]) for i in spec["inputs"]] == [(i["name"], i["shape"]) for i in entry["inputs"]]
        assert [(o["name"], o["shape"]) for o in spec["outputs"]] == [(o["name"], o["shape"]) for o in entry["outputs"]]
        assert spec["inputs"] and spec["outputs"]
        check = entry["quantization"]["fp16_check"]
        assert check["passed"] and check["ranges"]["max_abs_activation"] < 65504 / 8
        assert m["parity"]["components"][comp]["measured_with"].startswith("torch")


@pytest.mark.slow
def test_coreml_fp16_spec_matches_manifest(coreml_fp16, reference):
    bundle = B.load_bundle(coreml_fp16)
    _check_manifest(bundle, "coreml", "fp16")
    _coreml_spec_checks(bundle)
    assert {e["quantization"]["compute_precision"] for e in bundle.manifest["components"].values()} == {"float16"}
    e2e = bundle.manifest["parity"]["end_to_end"]  # emulated (fp16 rounding of weights and activations)
    assert e2e["metrics"]["cosine"] >= THRESHOLDS["fp16"]["cosine"] and e2e["metrics"]["top1_agreement"] >= 0.99
    assert _checksums_match(coreml_fp16) == 4


@pytest.mark.slow
def test_coreml_int4_palettize_spec(tmp_path, checkpoint):
    comps = ["clip_image", "fpen_s2"]
    bundle = B.load_bundle(_api_export(tmp_path / "p.udc", checkpoint, target="coreml", quant="int4-palettize",
                                       components=tuple(comps)))
    assert list(bundle.manifest["components"]) == comps
    _coreml_spec_checks(bundle)
    rec = bundle.manifest["components"]["clip_image"]["quantization"]
    assert rec["fp16_check"]["compressed_weight_fraction"] > 0.5
    # the palettized weights are really in the package: a constexpr_lut_to_dense op in the program
    import coremltools as ct

    spec = ct.utils.load_spec(str(bundle.file("clip_image")))
    ops = {op.type for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
           for op in b.operations}
    assert "constexpr_lut_to_dense" in ops
    e2e = bundle.manifest["parity"]["end_to_end"]
    t = THRESHOLDS["int4-palettize"]
    ok = e2e["metrics"]["cosine"] >= t["cosine"] and e2e["metrics"]["top1_agreement"] >= t["top1"]
    assert e2e["passed"] is ok  # reported honestly against the mode's thresholds


@pytest.mark.slow
def test_coreml_prediction(coreml_fp16, reference):
    from udc.sdk.runtime.runners import RuntimeUnavailableError

    bundle = B.load_bundle(coreml_fp16)
    if platform.system() != "Darwin":
        with pytest.raises(RuntimeUnavailableError, match="needs macOS"):
            _runner(bundle, "udcformer")
        pytest.skip(f"Core ML prediction needs macOS (coremltools cannot predict on {platform.system()}); "
                    "the spec checks above ran")
    model, ref = reference
    m = compare(ref.tensors["logits"], _chain(bundle, ref, model), logits=True)
    assert m["cosine"] >= THRESHOLDS["fp16"]["cosine"] and m["top1_agreement"] >= THRESHOLDS["fp16"]["top1"], m


# ------------------------------------------------------------------------------------------ errors
def _cli(args):
    return CliRunner().invoke(main, args)


def _one_line_error(res, pattern):
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), res.output


@pytest.mark.parametrize("args, pattern", [
    (["--config", "tiny", "--target", "onnx", "--quant", "int4-palettize"],
     r"--quant int4-palettize is not available for --target onnx .*--target coreml"),
    (["--config", "tiny", "--target", "coreml", "--quant", "int8"],
     r"--quant int8 is not available for --target coreml"),
    (["--config", "tiny", "--target", "executorch", "--backend", "portable", "--quant", "int8"],
     r"not available for --target executorch --backend portable"),
    (["--config", "tiny", "--target", "executorch", "--quant", "int4-palettize"],
     r"--quant int4-palettize is not available for --target executorch --backend xnnpack"),
    (["--config", "tiny", "--target", "onnx", "--backend", "xnnpack"], r"does not apply to --target onnx"),
    (["--config", "tiny", "--target", "coreml", "--backend", "xnnpack"], r"does not apply to --target coreml"),
    (["--config", "tiny", "--target", "tflite"], r"Invalid value for '--target'"),
    (["--config", "tiny", "--target", "onnx", "--components", "clip,denoiser"], r"unknown component clip"),
    (["--target", "onnx"], r"give a CHECKPOINT, or --config"),
])
def test_bad_option_combinations(tmp_path, args, pattern):
    res = _cli([*args, "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, pattern)
    assert res.exit_code == 2 and not list(tmp_path.iterdir())


def test_missing_or_empty_calibration_data(tmp_path):
    res = _cli(["--config", "tiny", "--target", "onnx", "--quant", "int8", "--calib", str(tmp_path / "nope"),
                "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"calibration data .*nope does not exist: pass --calib DIR")
    empty = tmp_path / "faces"
    empty.mkdir()
    res = _cli(["--config", "tiny", "--target", "onnx", "--quant", "int8", "--calib", str(empty),
                "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"calibration data .*faces: no dataset recognised")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = _cli([str(bad), "--target", "onnx", "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"is not a readable checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "x.udc"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    res = _cli(["--config", "tiny", "--target", "onnx", "-o", str(out)])
    _one_line_error(res, r"x.udc already exists: pass --force to replace it")
    assert (out / "manifest.json").read_text() == "{}"


@pytest.mark.slow
def test_coreml_unsupported_op_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from udc.export import exporter
    from udc.sdk.models.components import Component

    class Lgamma(torch.nn.Module):
        def forward(self, image):
            return torch.lgamma(image.mean(dim=(2, 3)).abs() + 1.0)

    x = torch.rand(1, 3, 64, 64)
    monkeypatch.setattr(exporter, "on_device_components",
                        lambda model, fuse=False: [Component("clip_image", Lgamma(), {"image": x}, ("image_features",))])
    res = _cli(["--config", "tiny", "--target", "coreml", "--eval-n", "8", "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"Core ML cannot convert clip_image: coremltools \S+ has no converter for lgamma; export it "
                         r"with --target executorch or --target onnx instead")
    assert not list(tmp_path.iterdir())


def test_calibration_faces_from_a_dataset_directory(tmp_path):
    from udc.export.quant.calibration import calibration_sets
    from udc.sdk.models.config import tiny
    from udc.train.synthetic.dataset import generate_dataset

    root = generate_dataset(tmp_path / "synth", counts={"train": 2, "test": 1}, size=80, progress=False)
    calib, held = calibration_sets(tiny(), root, calib_n=10, eval_n=5)
    assert len(calib) == 10 and len(held) == 5
    assert calib.images.shape == (10, 3, 64, 64) and calib.landmarks.shape == (10, 68, 2)
    assert calib.noise.shape == (10, tiny().fpen.epr_dim)
    assert 0.0 < float(calib.landmarks.min()) and float(calib.landmarks.max()) < 1.0
    assert calib.source["kind"] == "dataset" and calib.source["format"] == "folder"
    assert held.source["role"] == "held_out"
    assert sorted(set(calib.labels.tolist())) == list(range(7))  # class-balanced pick
    again, _ = calibration_sets(tiny(), root, calib_n=10, eval_n=5)
    assert torch.equal(again.images, calib.images) and np.array_equal(again.labels, calib.labels)

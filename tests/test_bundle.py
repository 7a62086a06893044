"""The bundle format (udc.sdk.runtime.bundle), the parity metrics (udc.sdk.parity.metrics) and the runtime adapters'
contracts: fast, no export involved (the bundles here hold stand-in files)."""
import json
import math
import platform

import numpy as np
import pytest
import torch

from udc.sdk.runtime import bundle as B
from udc.sdk.parity import metrics as parity


def _component(name, file, size_in=(1, 4), size_out=(1, 2)):
    return {"file": file, "sha256": "0" * 64, "size_bytes": 1, "format": file.rsplit(".", 1)[1],
            "inputs": [{"name": "x", "shape": list(size_in), "dtype": "float32"}],
            "outputs": [{"name": "y", "shape": list(size_out), "dtype": "float32"}],
            "delegation": None, "quantization": {"mode": "fp32"}}


def _manifest(model):
    from udc.export import bundle_writer

    comps = {n: _component(n, f"{n}.onnx") for n in ("clip_image", "fpen_s2", "denoiser", "udcformer")}
    parity_entry = {"measured_with": "test", "metrics": None, "passed": True, "failures": []}
    return bundle_writer.build_manifest(
        name="t", target="onnx", backend="onnxruntime", quant="fp32", model=model, random_init=True,
        source={"checkpoint": None, "checkpoint_sha256": None, "random_init": True, "seed": 0},
        components=comps, quantization={"mode": "fp32", "scheme": "float32"},
        parity={"reference": "test", "inputs": {}, "thresholds": {}, "components": {}, "end_to_end": parity_entry,
                "passed": True})


def _write(dest, model, force=False, extra_dir=False):
    manifest = _manifest(model)
    with B.BundleWriter(dest, force=force) as w:
        for name, comp in manifest["components"].items():
            w.path(comp["file"]).write_bytes(f"program bytes of {name}".encode() * 10)
            comp.update(w.entry(comp["file"]))
        if extra_dir:  # a package directory (like .mlpackage) as a component file
            pkg = w.path("udcformer.mlpackage")
            (pkg / "Data").mkdir(parents=True)
            (pkg / "Data" / "model.mlmodel").write_bytes(b"spec")
            (pkg / "Manifest.json").write_text("{}")
            (w.path("udcformer.onnx")).unlink()
            manifest["components"]["udcformer"].update(w.entry("udcformer.mlpackage"), format="mlpackage")
        return w.commit(manifest)


@pytest.fixture
def written(tmp_path, model):
    return _write(tmp_path / "face.udc", model)


def test_written_bundle_validates_and_verifies(written):
    b = B.load_bundle(written)
    assert b.components == ["clip_image", "fpen_s2", "denoiser", "udcformer"]
    assert b.file("denoiser").name == "denoiser.onnx"
    m = b.manifest
    assert m["schema_version"] == B.SCHEMA_VERSION and m["preprocessing"]["channel_order"] == "RGB"
    assert m["landmark_layout"]["mediapipe_to_68"]["indices"][:3] == [127, 234, 93]
    assert m["diffusion"]["noise"]["distribution"].startswith("N(0, I)")
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")], "temporary directory left behind"


def test_package_directories_hash_as_trees(tmp_path, model):
    path = _write(tmp_path / "pkg.udc", model, extra_dir=True)
    B.load_bundle(path)
    (path / "udcformer.mlpackage" / "Data" / "model.mlmodel").write_bytes(b"spek")
    with pytest.raises(B.BundleError, match="udcformer file udcformer.mlpackage does not match its sha256"):
        B.load_bundle(path)


def test_tampered_file_is_refused(written):
    p = written / "fpen_s2.onnx"
    data = bytearray(p.read_bytes())
    data[5] ^= 0xFF  # same size, different bytes
    p.write_bytes(bytes(data))
    with pytest.raises(B.BundleError, match=r"fpen_s2 file fpen_s2.onnx does not match its sha256 \(tampered"):
        B.load_bundle(written)
    B.load_bundle(written, verify=False)  # the manifest itself is still readable


def test_truncated_file_is_refused(written):
    p = written / "clip_image.onnx"
    p.write_bytes(p.read_bytes()[:10])
    with pytest.raises(B.BundleError, match=r"clip_image.onnx is truncated or altered: 10 bytes, the manifest says"):
        B.load_bundle(written)


def test_missing_file_and_missing_bundle_are_refused(written, tmp_path):
    (written / "denoiser.onnx").unlink()
    with pytest.raises(B.BundleError, match="denoiser file denoiser.onnx is missing"):
        B.load_bundle(written)
    with pytest.raises(B.BundleError, match="does not exist"):
        B.load_bundle(tmp_path / "nope.udc")
    (tmp_path / "empty.udc").mkdir()
    with pytest.raises(B.BundleError, match="is not a udc bundle: it has no manifest.json"):
        B.load_bundle(tmp_path / "empty.udc")


def test_invalid_manifest_is_refused(written):
    mf = written / "manifest.json"
    m = json.loads(mf.read_text())
    del m["landmark_layout"]
    mf.write_text(json.dumps(m))
    with pytest.raises(B.BundleError, match="'landmark_layout' is a required property"):
        B.load_bundle(written)
    m["landmark_layout"] = {}
    m["components"]["udcformer"]["sha256"] = "xyz"
    mf.write_text(json.dumps(m))
    with pytest.raises(B.BundleError, match="invalid at"):
        B.load_bundle(written)
    mf.write_text("{not json")
    with pytest.raises(B.BundleError, match="not valid JSON"):
        B.load_bundle(written)


def test_missing_component_needs_the_partial_marker(written):
    """All four components are required, unless the bundle says it is partial (udc-export --components)."""
    mf = written / "manifest.json"
    m = json.loads(mf.read_text())
    del m["components"]["udcformer"]
    mf.write_text(json.dumps(m))
    with pytest.raises(B.BundleError, match="'udcformer' is a required property"):
        B.load_bundle(written)
    m["partial"] = {"components": ["clip_image", "fpen_s2", "denoiser"], "reason": "test"}
    mf.write_text(json.dumps(m))
    assert list(B.load_bundle(written).manifest["components"]) == ["clip_image", "fpen_s2", "denoiser"]


def test_schema_version_from_the_future_is_refused(written):
    mf = written / "manifest.json"
    m = json.loads(mf.read_text())
    m["schema_version"] = B.SCHEMA_VERSION + 1
    mf.write_text(json.dumps(m))
    with pytest.raises(B.BundleError, match="newer than this udc reads"):
        B.load_bundle(written)


def test_overwrite_needs_force_and_failures_leave_nothing(written, model, tmp_path):
    before = (written / "manifest.json").read_text()
    with pytest.raises(B.BundleError, match="already exists: pass --force"):
        B.BundleWriter(written)
    with pytest.raises(RuntimeError, match="boom"):
        with B.BundleWriter(written, force=True) as w:
            w.path("clip_image.onnx").write_bytes(b"half")
            raise RuntimeError("boom")
    assert (written / "manifest.json").read_text() == before  # the old bundle is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.udc"]  # no temporary directory left
    _write(written, model, force=True)
    B.load_bundle(written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.udc"]


def test_force_never_replaces_something_that_is_not_a_bundle(tmp_path):
    other = tmp_path / "photos.udc"
    other.mkdir()
    (other / "me.jpg").write_bytes(b"x")
    with pytest.raises(B.BundleError, match="is not a udc bundle: not replacing it"):
        B.BundleWriter(other, force=True)
    with pytest.raises(B.BundleError, match="must end in .udc"):
        B.BundleWriter(tmp_path / "face.zip")


def test_commit_refuses_a_manifest_that_does_not_match_the_files(tmp_path, model):
    manifest = _manifest(model)
    with pytest.raises(B.BundleError, match="is missing"):
        with B.BundleWriter(tmp_path / "x.udc") as w:
            for comp in manifest["components"].values():
                comp["sha256"], comp["size_bytes"] = "a" * 64, 3
            w.commit(manifest)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------- parity
def test_parity_metrics():
    ref = torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 0.0]])
    assert parity.max_abs(ref, ref) == 0 and parity.cosine(ref, ref) == pytest.approx(1.0)
    assert parity.psnr(ref, ref) == math.inf
    out = ref + torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 3.5]])
    assert parity.max_abs(ref, out) == pytest.approx(3.5)
    assert parity.mean_abs(ref, out) == pytest.approx(4.0 / 6)
    assert parity.top1_agreement(ref, out) == 0.5
    assert parity.cosine(ref, -ref) == pytest.approx(-1.0)
    assert parity.psnr(ref, out) == pytest.approx(20 * math.log10(3.0 / math.sqrt((0.25 + 12.25) / 6)))
    rep = parity.top1_report(ref, out)
    assert rep["flips"] == 1 and rep["reference_classes"] == 2
    m = parity.compare(ref, out, logits=True)
    ok, fails = parity.check(m, "int8", logits=True)
    assert not ok and any("top-1" in f for f in fails)
    assert parity.check(parity.compare(ref, ref + 1e-6, logits=True), "fp32", logits=True) == (True, [])
    ok, fails = parity.check(parity.compare(ref, ref + 1e-3), "fp32")
    assert not ok and "max|d|" in fails[0]
    with pytest.raises(ValueError, match="no parity thresholds"):
        parity.check(m, "int3")
    assert set(parity.THRESHOLDS) == {"fp32", "fp16", "int8", "int8-weight", "int4-palettize"}
    assert parity.THRESHOLDS["int8"] == {"cosine": 0.99, "top1": 0.97}
    assert parity.rounded({"a": 1.23456789, "b": math.inf, "c": 3})["a"] == 1.23457


def test_margin_explained_flips():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(100, 7)) * 3
    ref[0] = [1.0, 0.999, 0, 0, 0, 0, 0]  # a near-tie
    out = ref + rng.normal(size=ref.shape) * 0.01
    out[0, :2] = [0.999, 1.0]  # flips the near-tie: explained by the program's typical error
    rep = parity.top1_report(ref, out)
    assert rep["flips"] == 1 and rep["unexplained_flips"] == 0
    out[1] = ref[1]
    out[1, np.argsort(ref[1])[-2]] += 20  # a decisive sample flipped by a large error: unexplained
    rep = parity.top1_report(ref, out)
    assert rep["flips"] == 2 and rep["unexplained_flips"] == 1


# ---------------------------------------------------------------------------------------- runtimes
def test_runtime_selection_and_coreml_off_macos(tmp_path):
    from udc.sdk.runtime import runners as runtimes

    assert runtimes.runtime_for("a/b.pte") == "executorch"
    assert runtimes.runtime_for("b.onnx") == "onnxruntime"
    assert runtimes.runtime_for("b.mlpackage") == "coreml"
    with pytest.raises(ValueError, match="no runtime for '.tflite'"):
        runtimes.runtime_for("m.tflite")
    if platform.system() != "Darwin":
        with pytest.raises(runtimes.RuntimeUnavailableError, match="Core ML prediction needs macOS"):
            runtimes.load(tmp_path / "m.mlpackage")
    with pytest.raises(KeyError, match="missing input"):
        runtimes.ordered_inputs({"a": np.zeros(1)}, ["a", "b"])


def test_torch_reference_runner(model):
    from udc.sdk.models.components import on_device_components
    from udc.sdk.runtime.torch_runtime import from_module

    comp = on_device_components(model)[1]
    run = from_module(comp.module, list(comp.inputs), list(comp.outputs))
    out = run({k: v.numpy() for k, v in comp.inputs.items()})
    np.testing.assert_allclose(out[0], comp.module(*comp.inputs.values()).detach().numpy(), rtol=0, atol=0)

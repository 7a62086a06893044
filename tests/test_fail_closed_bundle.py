"""Bundles that fail closed (issue 14, items 9-11) and the bundle checker shown failing (issue 19): manifest
paths confined to the bundle (no ``.``/``..``, symlinks, FIFOs), components loaded from the verified bytes,
``--force`` only over a real udc bundle, stale work directories cleaned, ONNX inputs/outputs by name, a
stray file at commit and a tampered ``.bpte``. Stand-in files and hand-built ONNX models: no export."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from udc.sdk.runtime import bundle as B

FOUR = ("clip_image", "fpen_s2", "denoiser", "udcformer")


def _manifest(model, bpte: bool = False):
    from udc.export import bundle_writer

    comps = {n: {"file": f"{n}.onnx", "sha256": "0" * 64, "size_bytes": 1, "format": "onnx",
                 "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
                 "outputs": [{"name": "y", "shape": [1, 2], "dtype": "float32"}],
                 "delegation": None, "quantization": {"mode": "fp32"}} for n in FOUR}
    if bpte:
        for n, c in comps.items():
            c.update(file=f"{n}.pte", format="pte")
            c["bundled_program"] = {"file": f"{n}.bpte", "sha256": "0" * 64, "size_bytes": 1, "test_cases": 1,
                                    "expected_outputs": "PyTorch float32 reference"}
    entry = {"measured_with": "test", "metrics": None, "passed": True, "failures": []}
    return bundle_writer.build_manifest(
        name="t", target="executorch" if bpte else "onnx", backend="xnnpack" if bpte else "onnxruntime",
        quant="fp32", model=model, random_init=True,
        source={"checkpoint": None, "checkpoint_sha256": None, "random_init": True, "seed": 0},
        components=comps, quantization={"mode": "fp32", "scheme": "float32"},
        parity={"reference": "test", "inputs": {}, "thresholds": {}, "components": {}, "end_to_end": entry,
                "passed": True})


def _write(dest, model, bpte=False, force=False, stray=None):
    manifest = _manifest(model, bpte)
    with B.BundleWriter(dest, force=force) as w:
        for name, comp in manifest["components"].items():
            w.path(comp["file"]).write_bytes(f"program bytes of {name}".encode() * 10)
            comp.update(w.entry(comp["file"]))
            if bpte:
                bp = comp["bundled_program"]
                w.path(bp["file"]).write_bytes(f"bundled program of {name}".encode() * 10)
                bp.update(w.entry(bp["file"]))
        if stray:
            w.path(stray).write_bytes(b"not listed")
        return w.commit(manifest)


def _edit(bundle, fn):
    mf = bundle / "manifest.json"
    m = json.loads(mf.read_text())
    fn(m)
    mf.write_text(json.dumps(m))


@pytest.fixture
def written(tmp_path, model):
    return _write(tmp_path / "face.udc", model)


# ------------------------------------------------------------------------------- 9. paths confined to the bundle
@pytest.mark.parametrize("name", [".", "..", ".hidden", "a/b", "../face.udc/fpen_s2.onnx", "/etc/passwd", ""])
def test_manifest_file_names_must_be_plain_names_inside_the_bundle(written, name):
    _edit(written, lambda m: m["components"]["fpen_s2"].update(file=name))
    with pytest.raises(B.BundleError, match=r"invalid at components/fpen_s2/file"):
        B.load_bundle(written)
    b = B.Bundle(written, json.loads((written / "manifest.json").read_text()))  # not validated, not verified:
    with pytest.raises(B.BundleError, match="not a plain file name inside the bundle"):  # still never built
        b.file("fpen_s2")


def test_dotdot_is_refused_before_anything_outside_is_read(written, monkeypatch):
    """``file: ".."`` used to make verification walk and hash the bundle's parent directory (any size, any
    FIFO in it): refused by name now, before any directory is walked."""
    _edit(written, lambda m: m["components"]["fpen_s2"].update(file=".."))
    m = json.loads((written / "manifest.json").read_text())
    monkeypatch.setattr(B, "_tree_files", lambda *a: pytest.fail("walked a directory outside the bundle"))
    with pytest.raises(B.BundleError, match="not a plain file name"):
        B.verify_files(written, m)


def test_symlinked_component_is_refused(written, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    target = written / "fpen_s2.onnx"
    outside.write_bytes(target.read_bytes())  # same bytes: only the link itself is wrong
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(B.BundleError, match="fpen_s2 file fpen_s2.onnx is refused: .* is a symlink"):
        B.load_bundle(written)


def test_symlinked_manifest_is_refused(written, tmp_path):
    real = tmp_path / "m.json"
    real.write_text((written / "manifest.json").read_text())
    (written / "manifest.json").unlink()
    (written / "manifest.json").symlink_to(real)
    with pytest.raises(B.BundleError, match="manifest.json is refused: .* is a symlink"):
        B.load_bundle(written)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_hanging(written):
    p = written / "denoiser.onnx"
    p.unlink()
    os.mkfifo(p)
    t0 = time.perf_counter()
    with pytest.raises(B.BundleError, match="denoiser file denoiser.onnx is refused: .* is a FIFO"):
        B.load_bundle(written)
    assert time.perf_counter() - t0 < 5


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_package_directory_with_a_symlink_or_fifo_inside_is_refused(tmp_path, model):
    manifest = _manifest(model)
    with B.BundleWriter(tmp_path / "pkg.udc") as w:
        for name, comp in manifest["components"].items():
            if name == "udcformer":
                pkg = w.path("udcformer.mlpackage")
                (pkg / "Data").mkdir(parents=True)
                (pkg / "Data" / "weights.bin").write_bytes(b"w" * 64)
                comp.update(w.entry("udcformer.mlpackage"), format="mlpackage")
                continue
            w.path(comp["file"]).write_bytes(b"p" * 64)
            comp.update(w.entry(comp["file"]))
        path = w.commit(manifest)
    B.load_bundle(path)
    extra = path / "udcformer.mlpackage" / "Data" / "extra"
    os.mkfifo(extra)  # the tree hash skipped non-regular files: this verified before the fix
    with pytest.raises(B.BundleError, match="udcformer file udcformer.mlpackage is refused: .* is a FIFO"):
        B.load_bundle(path)
    extra.unlink()
    extra.symlink_to("/etc/hostname")
    with pytest.raises(B.BundleError, match="is a symlink"):
        B.load_bundle(path)


def test_components_load_from_the_verified_bytes(written):
    b = B.load_bundle(written)
    data = b.read_verified("fpen_s2")
    assert data == (written / "fpen_s2.onnx").read_bytes()
    p = written / "fpen_s2.onnx"
    p.write_bytes(p.read_bytes()[::-1])  # swapped after verification (same size)
    with pytest.raises(B.BundleError, match="changed since it was verified"):
        b.read_verified("fpen_s2")


def _onnx_bytes(inputs=("a", "b"), outputs=("y1", "y2")) -> bytes:
    """y1 = a - 2b, y2 = a + b, both inputs [1, 3]: two same-shaped inputs a positional feed would swap."""
    import onnx
    from onnx import TensorProto, helper

    a, b = inputs
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    nodes = [helper.make_node("Mul", [b, "two"], ["b2"]), helper.make_node("Sub", [a, "b2"], [outputs[0]]),
             helper.make_node("Add", [a, b], [outputs[1]])]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in (*inputs, *outputs)]
    graph = helper.make_graph(nodes, "g", vi[:2], vi[2:], initializer=[two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_chain_loads_the_verified_bytes_not_a_swapped_file(tmp_path, model):
    """Verify, then swap a component file for another valid program: the chain refuses to load it."""
    from udc.sdk.runtime.chain import load_chain

    manifest = _manifest(model)
    with B.BundleWriter(tmp_path / "real.udc") as w:
        for comp in manifest["components"].values():
            w.path(comp["file"]).write_bytes(_onnx_bytes())
            comp.update(w.entry(comp["file"]))
            comp["inputs"] = [{"name": n, "shape": [1, 3], "dtype": "float32"} for n in ("a", "b")]
            comp["outputs"] = [{"name": n, "shape": [1, 3], "dtype": "float32"} for n in ("y1", "y2")]
        manifest["wiring"] = {f"{c}.{i}": f"input:{i}" for c in FOUR for i in ("a", "b")}
        path = w.commit(manifest)
    b = B.load_bundle(path)
    load_chain(b, "onnxruntime")  # loads (each step from its verified bytes)
    (path / "fpen_s2.onnx").write_bytes(_onnx_bytes(outputs=("y1", "y3")))
    with pytest.raises(B.BundleError, match="fpen_s2"):
        load_chain(b, "onnxruntime")


# ------------------------------------------------------------------------------- 10. --force and stale work dirs
def test_force_needs_a_real_udc_manifest(tmp_path, model):
    fake = tmp_path / "photos.udc"
    fake.mkdir()
    (fake / "manifest.json").write_text(json.dumps({"photos": ["me.jpg"]}))
    (fake / "me.jpg").write_bytes(b"x")
    with pytest.raises(B.BundleError, match="is not a udc bundle: not replacing it"):
        B.BundleWriter(fake, force=True)
    (fake / "manifest.json").write_text("not json")
    with pytest.raises(B.BundleError, match="is not a udc bundle"):
        B.BundleWriter(fake, force=True)
    assert (fake / "me.jpg").exists()
    real = _write(tmp_path / "real.udc", model)
    _write(real, model, force=True)  # a real bundle is replaced
    link = tmp_path / "link.udc"
    link.symlink_to(real)
    with pytest.raises(B.BundleError, match="is a symlink: not replacing it"):
        B.BundleWriter(link, force=True)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_work_directories_are_cleaned(tmp_path, model):
    old = time.time() - B.STALE_AGE_S - 60
    legacy = tmp_path / ".face.udc.k3x9a_q1.tmp"  # the old naming: no host/pid, judged by age
    dead = tmp_path / f".face.udc.{B._HOST}-{_dead_pid()}.abc123.tmp"  # a killed export on this host
    alive = tmp_path / f".face.udc.{B._HOST}-1.def456.tmp"  # pid 1 is alive: an export in progress
    young = tmp_path / ".face.udc.zz9.tmp"  # legacy but recent: may still be running
    other = tmp_path / f".other.udc.{B._HOST}-{_dead_pid()}.abc.tmp"  # another bundle's: not ours to touch
    for d in (legacy, dead, alive, young, other):
        (d / "half").mkdir(parents=True)
    os.utime(legacy, (old, old))
    w = B.BundleWriter(tmp_path / "face.udc")
    assert sorted(w.cleaned) == sorted([legacy.name, dead.name])
    assert not legacy.exists() and not dead.exists()
    assert alive.exists() and young.exists() and other.exists()
    _write(tmp_path / "face.udc", model)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".face.udc."))
    assert left == sorted([alive.name, young.name])  # the writer's own work directory is gone too


def test_a_killed_commit_gets_its_old_bundle_back(tmp_path, model):
    """Killed between the two renames of a --force commit: the only copy of the old bundle is in ``.old``."""
    real = _write(tmp_path / "keep.udc", model)
    stash = tmp_path / f".face.udc.{B._HOST}-{_dead_pid()}.x1.old"
    stash.mkdir()
    os.replace(real, stash / "bundle")
    w = B.BundleWriter(tmp_path / "face.udc", force=True)
    assert any("restored" in c for c in w.cleaned)
    assert B.load_bundle(tmp_path / "face.udc").manifest["name"] == "t" and not stash.exists()


# ------------------------------------------------------------------------------- 11. ONNX by name
def test_onnx_inputs_are_fed_by_name(tmp_path):
    from udc.sdk.runtime.runners import load

    p = tmp_path / "m.onnx"
    p.write_bytes(_onnx_bytes())
    a, b = np.array([[1.0, 2.0, 3.0]], np.float32), np.array([[10.0, 20.0, 30.0]], np.float32)
    # the manifest lists the inputs in another order than the model: names decide, not positions
    run = load(p, input_names=["b", "a"], output_names=["y1", "y2"])
    y1, y2 = run({"a": a, "b": b})
    np.testing.assert_allclose(y1, a - 2 * b)
    np.testing.assert_allclose(y2, a + b)
    y2, y1 = load(p, input_names=["a", "b"], output_names=["y2", "y1"], data=p.read_bytes())({"a": a, "b": b})
    np.testing.assert_allclose(y1, a - 2 * b)  # outputs in the order asked for, from bytes
    from udc.sdk.runtime.runners import ProgramIOError

    with pytest.raises(ProgramIOError, match="no output named 'logits'"):
        load(p, input_names=["a", "b"], output_names=["logits"])
    with pytest.raises(ProgramIOError, match="the model's inputs are"):
        load(p, input_names=["a", "noise"])


def test_unknown_wired_output_is_an_error_not_the_first_output(model):
    from udc.sdk.runtime.chain import _sources

    m = _manifest(model)
    m["wiring"]["fpen_s2.image_features"] = "clip_image.features_v2"
    with pytest.raises(B.BundleError, match="clip_image has no output 'features_v2'"):
        _sources(m, "fpen_s2", ["image_features"])
    m["wiring"]["fpen_s2.image_features"] = "clip_image.y"
    assert _sources(m, "fpen_s2", ["image_features"]) == {"image_features": "clip_image.y"}


# ------------------------------------------------------------------------------- issue 19: bundle checker negatives
def test_stray_file_at_commit_is_refused(tmp_path, model):
    with pytest.raises(B.BundleError, match=r"files written but not in the manifest: \['notes.txt'\]"):
        _write(tmp_path / "stray.udc", model, stray="notes.txt")
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_tampered_bundled_program_is_refused(tmp_path, model):
    path = _write(tmp_path / "bp.udc", model, bpte=True)
    B.load_bundle(path)
    p = path / "denoiser.bpte"
    data = bytearray(p.read_bytes())
    data[3] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(B.BundleError, match=r"denoiser \(bundled program\) file denoiser.bpte does not match its sha256"):
        B.load_bundle(path)
    p.write_bytes(bytes(data[:-1]))
    with pytest.raises(B.BundleError, match=r"denoiser \(bundled program\) file denoiser.bpte is truncated"):
        B.load_bundle(path)

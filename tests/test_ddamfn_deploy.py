"""DDAMFN through export, the SDK and the CLIs (issue 8 phase 2b): tiny random-init bundles, 1 thread.

Every target is exported once per session (tests/sdk_bundles.py, shared with test_app_contract.py):
ExecuTorch/XNNPACK fp32 + int8, ONNX fp32 + int8 (parity run on this host), Core ML fp16 (spec checked; Core ML
itself runs only on macOS). A tiny random-init DDAMFN gives small logits, but its top-2 margin on the astronaut
(~0.06) is far above the int8 error (~3e-4), so the label test is a real one.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sdk_bundles import export_bundle, write_face_folder
from udc.sdk.runtime.bundle import load_bundle, validate_manifest
from udc.sdk.runtime.recognizer import Recognizer
from udc.sdk.runtime.runners import host_runtimes

#: every test here needs an exported session bundle (minutes on 2 cores): not in `make test-quick`
pytestmark = pytest.mark.slow
HOST = [("executorch", "fp32"), ("executorch", "int8"), ("onnx", "fp32"), ("onnx", "int8")]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("ddamfn-bundles")


def _bundle(root, target, quant):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_bundle(root, target, quant, family="ddamfn")


@pytest.mark.parametrize("target,quant", HOST)
def test_export_manifest_and_parity(root, target, quant):
    b = load_bundle(_bundle(root, target, quant))  # schema + sha256
    m = b.manifest
    assert m["family"] == "ddamfn" and m["model"]["family"] == "ddamfn" and m["model"]["config"] == "tiny"
    assert list(m["components"]) == ["ddamfn"] and m["execution"]["order"] == ["ddamfn"]
    assert m["execution"]["result"] == "logits" and m["wiring"] == {"ddamfn.image": "input:image"}
    assert "diffusion" not in m
    comp = m["components"]["ddamfn"]
    assert [t["name"] for t in comp["inputs"]] == ["image"] and comp["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert comp["outputs"][0]["shape"] == [1, 7]
    pre = m["preprocessing"]
    assert pre["crop_size"] == 32 and pre["mean"] == [0.485, 0.456, 0.406] and pre["std"] == [0.229, 0.224, 0.225]
    assert pre["landmarks"]["model_input"] is False  # alignment still uses them, the model does not
    par = m["parity"]
    assert par["passed"] is True and par["end_to_end"]["passed"] is True
    assert par["components"]["ddamfn"]["metrics"]["cosine"] > (0.99999 if quant == "fp32" else 0.999)
    # no top-1 assertion: the tiny random-init DDAMFN predicts one class for every synthetic face (its features
    # collapse to ~1e-7 before the classifier), so agreement with it tests nothing; the cosine above is the check.
    # (A fixture with a fitted classifier, BatchNorm statistics re-estimated on faces, exported to an XNNPACK int8
    # .pte that ExecuTorch 1.5.1 refuses to load, "Failed to load method forward, error 0x1": not pursued here.)
    assert par["end_to_end"]["metrics"]["nonfinite"] == 0
    if target == "executorch":
        assert comp["delegation"]["delegated_pct"] == 100.0 and comp["delegation"]["partitions"] == 1
    if quant == "int8":
        q = m["quantization"]
        assert q["selection"]["chained_components"] == 1  # the whole int8 budget: one component
        assert q["selection"]["thresholds"]["cosine"] == pytest.approx(0.99)
        assert q["decision"]["ddamfn"]["recipe"] in ("all-int8", "gemm-int8", "gemm-int8-ends-float")


def test_coreml_bundle_spec(root):
    from udc.sdk.runtime.coreml_runtime import inspect

    b = load_bundle(_bundle(root, "coreml", "fp16"))
    m = b.manifest
    assert m["family"] == "ddamfn" and m["execution"]["order"] == ["ddamfn"] and "diffusion" not in m
    spec = inspect(b.file("ddamfn"))
    assert [(i["name"], i["shape"], i["dtype"]) for i in spec["inputs"]] == [("image", [1, 3, 32, 32], "float32")]
    assert [o["name"] for o in spec["outputs"]] == ["logits"] and spec["outputs"][0]["shape"] == [1, 7]
    assert m["parity"]["passed"] is True  # fp16 emulation (Core ML does not run on Linux)


def test_schema_family_rules(root):
    from udc.sdk.runtime.bundle import BundleError

    m = load_bundle(_bundle(root, "onnx", "fp32")).manifest
    bad = dict(m, execution=dict(m["execution"], order=["clip_image"]))
    with pytest.raises(BundleError, match="execution"):
        validate_manifest(bad)
    bad = {k: v for k, v in m.items() if k != "family"}  # without the family it reads as LRDif: needs diffusion
    with pytest.raises(BundleError):
        validate_manifest(bad)


@pytest.mark.parametrize("target,quant", HOST)
def test_astronaut_label_matches_torch_on_every_runtime(root, astronaut, astronaut_landmarks, target, quant):
    b = _bundle(root, target, quant)
    ref = Recognizer.load(b, "torch", threads=1).predict(astronaut, landmarks=astronaut_landmarks)
    runtimes = host_runtimes(target)
    assert runtimes[0] != "torch" and runtimes[-1] == "torch"
    for rt in runtimes[:-1]:  # not the reference itself (a torch-vs-torch row cannot fail)
        rec = Recognizer.load(b, rt, threads=1)
        assert rec.family == "ddamfn" and rec.noise is None
        p = rec.predict(astronaut, landmarks=astronaut_landmarks)
        assert p.label == ref.label, (rt, p.probs, ref.probs)
        tol = 1e-4 if quant == "fp32" else 5e-3
        assert np.allclose(p.logits, ref.logits, atol=tol), (rt, p.logits, ref.logits)
        assert set(p.timings) >= {"preprocess", "ddamfn", "model", "total"}
    # the reference is the model udc-export built: the same seeded random init, run here in eager PyTorch
    from udc.sdk.models.components import example_inputs
    from udc.sdk.models.registry import random_init_model

    model = random_init_model("ddamfn", "tiny", 0)
    rec = Recognizer.load(b, "torch")
    x = example_inputs(model)["image"]
    with torch.no_grad():
        want = model(x).numpy()
    got, _ = rec.chain.run({"image": x.numpy()})
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    return write_face_folder(tmp_path_factory.mktemp("ddamfn-faces"), 5)  # 35 faces: a PASS needs 32


@pytest.mark.parametrize("target,quant", [("executorch", "int8"), ("onnx", "fp32")])
def test_udc_parity_on_ddamfn(root, faces_dir, target, quant):
    from udc.sdk.cli.parity import main

    b = _bundle(root, target, quant)
    res = CliRunner().invoke(main, [str(b), "--n", "32", "--json", "--data", str(faces_dir), "--threads", "1"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r["components"]) == {"ddamfn"} and r["passed"]
    assert r["end_to_end"]["n"] == 32  # top-1 agreement is not asserted: see test_export_manifest_and_parity
    assert r["end_to_end"]["cosine"] > (0.99999 if quant == "fp32" else 0.999)


def test_host_bench_runs_ddamfn(root):
    from udc.sdk.bench.host import host_bench

    r = host_bench(_bundle(root, "executorch", "fp32"), ["executorch", "torch"], warmup=1, iters=3, threads=1,
                   progress=False)
    assert r["family"] == "ddamfn"
    for row in r["rows"]:
        assert row["components"] == ["ddamfn"] and row["latency_ms"]["ddamfn"]["p50"] > 0


@pytest.fixture(scope="module")
def frame_folder(tmp_path_factory, astronaut):
    """6 frames: the astronaut, shifted, and one black frame (no face) in the middle."""
    from PIL import Image

    d = tmp_path_factory.mktemp("clip")
    for i in range(6):
        img = np.zeros_like(astronaut) if i == 2 else np.roll(astronaut, 6 * i, axis=1)
        Image.fromarray(img).save(d / f"frame_{i:02d}.png")
    return d


def test_predict_video_on_a_frame_folder(root, frame_folder):
    rec = Recognizer.load(_bundle(root, "onnx", "fp32"), threads=1)
    c = rec.predict_video(frame_folder, segments=3, frames_per_segment=1)
    assert c.num_frames == 6 and c.indices == [0, 2, 4]  # the middle frame (lower) of [0,2), [2,4), [4,6)
    assert c.used == [0, 4] and c.skipped == [2]  # frame 2 is black: no face, left out of the mean

    def softmax(z):
        e = np.exp(np.asarray(z) - np.max(z))
        return e / e.sum()

    probs = np.mean([softmax(c.frames[i].logits) for i in c.used], 0)
    assert c.label == rec.labels[int(np.argmax(probs))]
    np.testing.assert_allclose([c.probs[k] for k in rec.labels], probs, atol=1e-6)
    # each sampled frame is scored exactly as predict() scores that image
    from PIL import Image

    one = rec.predict(np.asarray(Image.open(frame_folder / "frame_04.png")))
    assert np.allclose(one.logits, c.frames[4].logits)
    # DFEW's 16 x 1 on 6 frames: frames repeat in time order, each face run once and counted as often as sampled
    c16 = rec.predict_video(frame_folder, segments=16, frames_per_segment=1, aggregate="mean_logit")
    assert len(c16.indices) == 16 and c16.indices == sorted(c16.indices) and 2 in c16.skipped
    assert sorted(c16.frames) == [0, 1, 3, 4, 5] and len(c16.used) == 16 - c16.indices.count(2)
    mean_logit = np.mean([c16.frames[i].logits for i in c16.used], 0)
    np.testing.assert_allclose([c16.probs[k] for k in rec.labels], softmax(mean_logit), atol=1e-6)
    # a list of frames works like the folder; no face anywhere is an error
    from udc.sdk.errors import NoFaceError

    frames = [np.asarray(Image.open(p)) for p in sorted(frame_folder.iterdir())]
    assert rec.predict_video(frames, segments=3, frames_per_segment=1).probs == c.probs
    with pytest.raises(NoFaceError, match="no face in any of the 4 sampled"):
        rec.predict_video([frames[2]] * 4, segments=2, frames_per_segment=2)


def test_udc_predict_video_cli(root, frame_folder, tmp_path):
    from udc.sdk.cli.predict import main

    b = str(_bundle(root, "onnx", "fp32"))
    res = CliRunner().invoke(main, [b, "--video", str(frame_folder), "--segments", "3", "--frames-per-segment", "1",
                                    "--json", "--threads", "1"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)[0]
    assert r["indices"] == [0, 2, 4] and r["skipped"] == [2] and r["label"] in r["probs"]
    res = CliRunner().invoke(main, [b, "--video", str(frame_folder), "--preset", "dfew", "--threads", "1"])
    assert res.exit_code == 0 and "16 segments x 1 frames" in res.output, res.output
    res = CliRunner().invoke(main, [b, "--video", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "no such video" in res.output
    res = CliRunner().invoke(main, [b, str(frame_folder / "frame_00.png"), "--segments", "3"])
    assert res.exit_code == 2 and "need --video" in res.output


def test_export_cli_ddamfn_checkpoint_and_usage_errors(tmp_path):
    from udc.export.cli import main
    from udc.sdk.models.checkpoint import save_checkpoint
    from udc.sdk.models.registry import random_init_model

    model = random_init_model("ddamfn", "tiny", 3)
    ckpt = save_checkpoint(model, tmp_path / "ddamfn.pt")
    out = tmp_path / "from-ckpt.udc"
    res = CliRunner().invoke(main, [str(ckpt), "--target", "onnx", "-o", str(out), "--eval-n", "8", "--threads", "1"])
    assert res.exit_code == 0, res.output
    m = load_bundle(out).manifest
    assert m["family"] == "ddamfn" and m["source"]["checkpoint"] == str(ckpt) and not m["model"]["random_init"]
    rec = Recognizer.load(out, "torch")  # the reference: the checkpoint the manifest names (sha256 checked)
    assert "checkpoint" in rec.chain.reference
    res = CliRunner().invoke(main, [str(ckpt), "--model", "lrdif", "--target", "onnx", "-o", str(tmp_path / "x.udc")])
    assert res.exit_code == 2 and "ddamfn checkpoint" in res.output
    res = CliRunner().invoke(main, ["--model", "ddamfn", "--config", "mobile", "--target", "onnx",
                                    "-o", str(tmp_path / "y.udc")])
    assert res.exit_code == 2 and "not a ddamfn config" in res.output
    assert not (tmp_path / "x.udc").exists() and not (tmp_path / "y.udc").exists()

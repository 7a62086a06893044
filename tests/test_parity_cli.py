"""udc-parity: component-by-component and end-to-end parity against the PyTorch reference, pass for
fp32 and int8 bundles, non-zero exit for a bundle whose weights were perturbed (checksums still valid)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from sdk_bundles import copy_bundle, export_bundle, perturb_onnx_weights, write_face_folder
from udc.sdk.cli.parity import main

#: every test here needs an exported session bundle (minutes on 2 cores): not in `make test-quick`
pytestmark = pytest.mark.slow
N = "32"  # udc-parity needs at least 32 faces (MIN_FACES) for a PASS


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("bundles")


def _run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_fp32_bundles_pass(root, faces_dir, target):
    b = export_bundle(root, target)
    res = _run(b, "--n", N, "--json", "--data", faces_dir)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["passed"] and r["quant"] == "fp32" and r["runtime"] == {"executorch": "executorch", "onnx": "onnxruntime"}[target]
    assert set(r["components"]) == {"clip_image", "fpen_s2", "denoiser", "udcformer"}
    manifest = json.loads((b / "manifest.json").read_text())
    assert r["thresholds"]["cosine"] == manifest["parity"]["thresholds"]["cosine"]  # the manifest's thresholds
    for e in [*r["components"].values(), r["end_to_end"]]:
        assert e["n"] == int(N) and e["passed"]
        assert e["max_abs"] < 1e-4 and e["cosine"] > 0.99999
        assert e["psnr"] is None or e["psnr"] > 80
    assert r["end_to_end"]["top1_agreement"] == 1.0
    assert r["end_to_end"]["reference_classes"] >= 3  # ... of a reference that predicts several classes
    assert r["inputs"]["kind"] == "folder" and r["inputs"]["n"] == int(N)


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    """Synthetic test faces written as a folder with the landmarks cache udc-data writes."""
    return write_face_folder(tmp_path_factory.mktemp("faces"), -(-int(N) // 7))


def test_no_data_refused(root):
    res = _run(export_bundle(root, "onnx"), "--n", "4")
    assert res.exit_code == 2 and "no --data" in res.output


def test_table_and_folder_data(root, tmp_path):
    """--data DIR with the landmarks cache udc-data writes: no detector needed."""
    from PIL import Image

    from udc.train.synthetic.dataset import generate_arrays

    images, _, points = generate_arrays(2, size=64, seed=3, split="test")
    keys = []
    for i, img in enumerate(images):
        (tmp_path / "faces").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / "faces" / f"{i:02d}.png")
        keys.append(f"faces/{i:02d}.png")
    np.savez(tmp_path / "landmarks68.npz", keys=np.array(keys), points=points)
    res = _run(export_bundle(root, "onnx"), "--data", tmp_path, "--n", "10")
    # every row passes, but 10 faces are too few to certify anything: INCONCLUSIVE, exit 2, never PASS
    assert res.exit_code == 2, res.output
    assert "end-to-end" in res.output and "PSNR" in res.output and "INCONCLUSIVE" in res.output
    assert not any(line.startswith("PASS") for line in res.output.splitlines())
    assert "10 folder faces" in res.output


def test_perturbed_weights_fail_with_exit_1(root, faces_dir, tmp_path):
    b = copy_bundle(export_bundle(root, "onnx"), tmp_path / "perturbed.udc")
    assert perturb_onnx_weights(b, "udcformer") > 0
    res = _run(b, "--n", N, "--json", "--data", faces_dir)
    assert res.exit_code == 1, res.output
    r = json.loads(res.stdout)
    assert not r["passed"]
    assert r["components"]["clip_image"]["passed"]  # untouched components still pass
    assert not r["components"]["udcformer"]["passed"] and r["components"]["udcformer"]["failures"]
    assert not r["end_to_end"]["passed"]
    res = _run(b, "--n", "8", "--data", faces_dir)
    assert res.exit_code == 1 and "FAIL" in res.output


def test_cannot_run_here_exits_2(root, tmp_path):
    res = _run(tmp_path / "missing.udc")
    assert res.exit_code == 2 and "does not exist" in res.output
    res = _run(export_bundle(root, "onnx"), "--runtime", "executorch")
    assert res.exit_code == 2 and "onnxruntime" in res.output
    res = _run(export_bundle(root, "onnx"), "--data", tmp_path / "nowhere")
    assert res.exit_code == 2 and "no such directory" in res.output


# No int8 bundle through udc-parity here: the ONNX int8 bundle of the Z-modulated session model fails its parity
# (fpen_s2 cosine 0.986, denoiser 0.989, udcformer 0.987, end-to-end top-1 71.9 % on 32 faces, measured
# 2026-11-30), which tests/test_export_int8.py::test_onnx_int8 records as a strict xfail on CPUs without VNNI;
# lowering a PT2E-int8 UDCformer for ExecuTorch takes minutes. udc-parity's exit 1 on a bad int8 bundle is shown in
# tests/test_fail_closed_parity.py (a perturbed bundle relabelled int8).

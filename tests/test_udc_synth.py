"""udc-synth: converting a dataset tree (labels and landmarks kept, resumable) and the preview."""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from udc.train.datasets import open_dataset
from udc.train.landmark_store import load_landmarks, save_landmarks
from udc.train.synth_cli import main
from udc.train.udc_sim.convert import MANIFEST_FILE, RUN_FILE, SynthError, convert_tree


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    points = {}
    for split in ("train", "test"):
        for label in ("happiness", "anger"):
            d = src / split / label
            d.mkdir(parents=True)
            for i in range(3):
                key = f"{split}/{label}/{i}.png"
                Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(src / key)
                points[key] = rng.random((68, 2)).astype(np.float32) * 48
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(src / "train" / "anger" / "x.jpg", quality=90)
    points["train/anger/x.jpg"] = rng.random((68, 2)).astype(np.float32) * 48
    save_landmarks(src / "landmarks68.npz", points)
    (src / "README.txt").write_text("labels by folder")
    return src


def test_convert_keeps_labels_landmarks_and_files(tree, tmp_path):
    dst = tmp_path / "dst"
    m = convert_tree(tree, dst, "galaxy_z_fold3", seed=1, progress=False)
    assert m["counts"]["images_degraded"] == 13 and m["counts"]["files_copied"] == 2 and m["counts"]["failed"] == 0
    assert not (dst / RUN_FILE).exists() and (dst / MANIFEST_FILE).exists()
    manifest = json.loads((dst / MANIFEST_FILE).read_text())
    assert manifest["profile"] == "galaxy_z_fold3" and manifest["seed"] == 1
    assert manifest["profiles"]["galaxy_z_fold3"]["published"]
    a, b = open_dataset(tree), open_dataset(dst)
    assert [(r.key, r.label, r.split) for r in a.records] == [(r.key, r.label, r.split) for r in b.records]
    la, lb = load_landmarks(tree / "landmarks68.npz"), load_landmarks(dst / "landmarks68.npz")
    assert all(np.array_equal(la[k], lb[k]) for k in la)
    src_img = np.asarray(Image.open(tree / "train/happiness/0.png"))
    dst_img = np.asarray(Image.open(dst / "train/happiness/0.png"))
    assert src_img.shape == dst_img.shape and not np.array_equal(src_img, dst_img)
    assert (dst / "README.txt").read_text() == "labels by folder"


@pytest.mark.slow
def test_convert_is_resumable_and_deterministic(tree, tmp_path):
    dst = tmp_path / "dst"
    convert_tree(tree, dst, "random", seed=5, progress=False)
    first = {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*.png")}
    # simulate an interruption: two outputs missing, manifest not yet written
    (dst / MANIFEST_FILE).unlink()
    (dst / RUN_FILE).write_text(json.dumps({"profile": "random", "seed": 5, "psf": None, "psf_sha256": None,
                                            "flare": True}))
    (dst / "train/happiness/1.png").unlink()
    (dst / "test/anger/2.png").unlink()
    m = convert_tree(tree, dst, "random", seed=5, progress=False)
    assert m["counts"]["images_degraded"] == 2 and m["counts"]["images_already_done"] == 11
    assert {p.relative_to(dst): p.read_bytes() for p in dst.rglob("*.png")} == first
    assert sum(m["counts"]["per_profile"].values()) == 2
    # other parameters into the same finished DST are refused; --force redoes it
    with pytest.raises(SynthError, match="other parameters"):
        convert_tree(tree, dst, "zte_axon30", seed=5, progress=False)
    with pytest.raises(SynthError, match="already complete"):
        convert_tree(tree, dst, "random", seed=5, progress=False)
    assert convert_tree(tree, dst, "zte_axon30", seed=5, progress=False, force=True)["counts"]["images_degraded"] == 13


def test_corrupt_image_is_reported_not_fatal(tree, tmp_path):
    (tree / "train" / "anger" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    m = convert_tree(tree, tmp_path / "dst", "zte_axon20", progress=False)
    assert m["counts"]["failed"] == 1 and "train/anger/broken.png" in m["failed"]


def test_ferplus_csv_pixels_are_degraded(tmp_path):
    src = tmp_path / "fer"
    src.mkdir()
    rng = np.random.default_rng(0)
    with open(src / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for _ in range(3):
            w.writerow([3, " ".join(map(str, rng.integers(0, 256, 48 * 48))), "Training"])
    m = convert_tree(src, tmp_path / "out", "zte_axon30", progress=False)
    assert m["counts"]["images_degraded"] == 3
    rows_in = list(csv.reader(open(src / "fer2013.csv")))
    rows_out = list(csv.reader(open(tmp_path / "out" / "fer2013.csv")))
    assert rows_in[0] == rows_out[0] and len(rows_out) == 4
    assert rows_in[1][0] == rows_out[1][0] and rows_in[1][1] != rows_out[1][1]
    assert len(rows_out[1][1].split()) == 48 * 48


def test_bad_arguments(tree, tmp_path):
    with pytest.raises(SynthError, match="inside"):
        convert_tree(tree, tree / "out", "zte_axon30", progress=False)
    result = CliRunner().invoke(main, [str(tree), str(tmp_path / "o"), "--profile", "iphone"])
    assert result.exit_code != 0 and "unknown UDC profile" in str(result.exception or result.output)
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 2 and "SRC and DST" in result.output


def test_cli_converts_and_lists_profiles(tree, tmp_path):
    result = CliRunner().invoke(main, [str(tree), str(tmp_path / "o"), "--profile", "xiaomi_mix4"])
    assert result.exit_code == 0, result.output
    assert "xiaomi_mix4" in result.output and "13" in result.output
    listing = CliRunner().invoke(main, ["--list-profiles"])
    assert listing.exit_code == 0 and "galaxy_z_fold3" in listing.output and "published" in listing.output


@pytest.mark.slow
def test_preview_on_the_astronaut(tmp_path):
    from skimage import data as skdata

    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.png")
    out = tmp_path / "preview.png"
    result = CliRunner().invoke(main, ["--preview", str(tmp_path / "astronaut.png"), "-o", str(out), "--size", "112"])
    assert result.exit_code == 0, result.output
    assert "aligned face crop" in result.output
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] == 4 * 112 and sheet.shape[0] == 2 * (112 + 18)
    clean = sheet[18:130, :112].astype(float)
    for i in range(1, 7):  # every profile's tile differs visibly from the clean one
        r, c = divmod(i, 4)
        tile = sheet[r * 130 + 18:r * 130 + 130, c * 112:(c + 1) * 112].astype(float)
        assert np.abs(tile - clean).mean() > 5

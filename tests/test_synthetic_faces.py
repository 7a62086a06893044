"""The procedural synthetic expression faces (udc.train.synthetic): geometry, rendering, dataset writer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from udc.sdk.labels import LABELS
from udc.train.landmark_store import LANDMARKS_FILE, load_landmarks
from udc.train.synthetic import dataset as dataset_mod
from udc.train.synthetic.dataset import MANIFEST_FILE, generate_arrays, generate_dataset, image_path
from udc.train.synthetic.expressions import AU_NAMES, Expression, sample_expression
from udc.train.synthetic.geometry import Pose, face_geometry, sample_identity, sample_pose
from udc.train.synthetic.render import render_face

L = {name: i for i, name in enumerate(LABELS)}


def face_frame(lm: np.ndarray) -> np.ndarray:
    """Landmarks de-rolled (eye line horizontal), centred between the eyes, in inter-ocular units."""
    right_eye, left_eye = lm[36:42].mean(0), lm[42:48].mean(0)
    d = left_eye - right_eye
    iod = float(np.linalg.norm(d))
    c, s = d / iod
    rot = np.array([[c, s], [-s, c]])  # rotates d onto +x
    return (lm - 0.5 * (right_eye + left_eye)) @ rot.T / iod


def posed_landmarks(label: int, n: int, seed: int) -> np.ndarray:
    """``[n, 68, 2]`` face-frame landmarks of random people, poses and intensities showing ``label``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idt, pose = sample_identity(rng), sample_pose(rng)
        out.append(face_frame(face_geometry(idt, sample_expression(rng, label), pose, 128).landmarks))
    return np.stack(out)


def test_render_face_shapes_dtypes_and_content():
    for size in (64, 128):
        img, lm = render_face(np.random.default_rng(0), L["surprise"], size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert lm.shape == (68, 2) and lm.dtype == np.float32
        assert img.std() > 10  # a picture, not a flat fill
    assert len(AU_NAMES) == len(Expression().as_array())


def test_landmarks_inside_the_image_and_in_ibug_order():
    rng = np.random.default_rng(1)
    for i in range(140):
        _, px = render_face(rng, i % 7, 64)
        assert np.isfinite(px).all() and (px >= 0).all() and (px < 64).all()
        lm = face_frame(px)
        x, y = lm[:, 0], lm[:, 1]
        assert y[8] == y[0:17].max()  # chin is the lowest jaw point
        assert x[0] < x[8] < x[16]  # jaw runs from the image left, round the chin, to the right
        assert x[36:42].mean() < x[42:48].mean()  # right eye (36-41) on the image's left
        assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right
        assert y[17:22].max() < y[36:42].min() and y[22:27].max() < y[42:48].min()  # brows above the eyes
        assert (y[[37, 38]] <= y[[41, 40]]).all() and (y[[43, 44]] <= y[[47, 46]]).all()  # upper lid above lower
        assert y[27] < y[28] < y[29] < y[30]  # nose bridge runs down
        assert y[48:68].min() > y[33]  # mouth below the nose
        assert x[48] < x[51] < x[54] and y[51] < y[57] and y[62] <= y[66]  # lips: corners, upper above lower
        assert y[57] < y[8]  # lips above the chin


def test_rendering_is_deterministic():
    a, la = render_face(np.random.default_rng(7), 2, 96)
    b, lb = render_face(np.random.default_rng(7), 2, 96)
    c, _ = render_face(np.random.default_rng(8), 2, 96)
    assert a.tobytes() == b.tobytes() and la.tobytes() == lb.tobytes()
    assert a.tobytes() != c.tobytes()
    x1, y1, p1 = generate_arrays(2, size=48, seed=5, split="val")
    x2, y2, p2 = generate_arrays(2, size=48, seed=5, split="val")
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2) and p1.tobytes() == p2.tobytes()
    assert x1.shape == (14, 48, 48, 3) and x1.dtype == np.uint8 and y1.dtype == np.int64
    assert p1.shape == (14, 68, 2) and p1.dtype == np.float32
    assert list(y1) == [i % 7 for i in range(14)]


def test_worker_processes_give_the_same_faces():
    one = generate_arrays(10, size=32, seed=4, split="test", workers=1)
    two = generate_arrays(10, size=32, seed=4, split="test", workers=2)
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()


def test_same_seed_same_person_other_expression():
    """Identity, pose and scene draws do not depend on the label: only the face moves."""
    n = L["neutral"]
    img_n, lm_n = render_face(np.random.default_rng(11), n, 64)
    img_s, lm_s = render_face(np.random.default_rng(11), L["surprise"], 64)
    assert np.abs(lm_n[[0, 16]] - lm_s[[0, 16]]).max() < 0.5  # where the jaw meets the ears: unchanged
    assert np.abs(img_n[:4].astype(int) - img_s[:4]).max() <= 20  # background corner: same scene (noise aside)
    assert np.abs(lm_n[17:68] - lm_s[17:68]).max() > 1.0  # but the expression moved the features


def test_expressions_move_the_geometry_in_the_intended_direction():
    n = 80
    lm = {name: posed_landmarks(i, n, seed=100 + i) for i, name in enumerate(LABELS)}

    def mouth_open(a):
        return a[:, 66, 1] - a[:, 62, 1]

    def corner_lift(a):  # lip corners above the middle of the lips (positive = smile)
        return 0.5 * (a[:, 51, 1] + a[:, 57, 1]) - 0.5 * (a[:, 48, 1] + a[:, 54, 1])

    def brow_height(a):
        return a[:, 36:48, 1].mean(1) - a[:, 17:27, 1].mean(1)

    def eye_open(a):
        return (a[:, [41, 40, 47, 46], 1] - a[:, [37, 38, 43, 44], 1]).mean(1)

    def inner_brow_gap(a):
        return a[:, 22, 0] - a[:, 21, 0]

    def mouth_width(a):
        return a[:, 54, 0] - a[:, 48, 0]

    def nose_to_lip(a):
        return a[:, 51, 1] - a[:, 33, 1]

    assert mouth_open(lm["surprise"]).mean() > mouth_open(lm["neutral"]).mean() + 0.1
    assert corner_lift(lm["happiness"]).mean() > corner_lift(lm["neutral"]).mean() > corner_lift(lm["sadness"]).mean()
    assert brow_height(lm["surprise"]).mean() > brow_height(lm["neutral"]).mean() > brow_height(lm["anger"]).mean()
    assert eye_open(lm["surprise"]).mean() > eye_open(lm["neutral"]).mean() > eye_open(lm["anger"]).mean()
    assert eye_open(lm["fear"]).mean() > eye_open(lm["neutral"]).mean()
    assert inner_brow_gap(lm["anger"]).mean() < inner_brow_gap(lm["neutral"]).mean()
    assert mouth_width(lm["fear"]).mean() > mouth_width(lm["neutral"]).mean() > mouth_width(lm["surprise"]).mean()
    assert nose_to_lip(lm["disgust"]).mean() < nose_to_lip(lm["neutral"]).mean()  # upper lip raised
    # sampled intensities vary, so a class is a cloud, not a point
    assert corner_lift(lm["happiness"]).std() > 0.01


def test_neutral_pose_is_frontal_and_centred():
    idt = sample_identity(np.random.default_rng(0))
    lm = face_geometry(idt, Expression(), Pose(), 100).landmarks
    assert abs(lm[36:42, 1].mean() - lm[42:48, 1].mean()) < 1e-3  # level eyes
    assert abs(lm[27:31, 0] - 50).max() < 1e-3  # nose bridge on the vertical midline
    assert np.allclose(lm[0:17, 0] + lm[16::-1, 0], 100, atol=1e-3)  # symmetric jaw


def test_landmarks_alone_predict_the_expression():
    """A quick learnability check: a ridge classifier on face-frame landmarks beats chance by far."""

    def data(offset, n):
        x = np.concatenate([posed_landmarks(k, n, seed=offset + k) for k in range(7)]).reshape(7 * n, -1)
        return x, np.repeat(np.arange(7), n)

    x_tr, y_tr = data(1000, 60)
    x_te, y_te = data(2000, 30)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a = np.c_[(x_tr - mu) / sd, np.ones(len(x_tr))]
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ np.eye(7)[y_tr])
    pred = (np.c_[(x_te - mu) / sd, np.ones(len(x_te))] @ w).argmax(1)
    assert (pred == y_te).mean() > 0.8


# -- the dataset writer ---------------------------------------------------------------------------

COUNTS = {"train": 2, "val": 1, "test": 1}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_dataset_layout_landmarks_and_manifest(tmp_path):
    out = generate_dataset(tmp_path / "synth", COUNTS, size=40, seed=3, progress=False)
    assert out == (tmp_path / "synth").absolute()
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    expected = sorted(image_path(split, i) for split, n in COUNTS.items() for i in range(7 * n))
    assert pngs == expected
    for split, n in COUNTS.items():
        for name in LABELS:
            files = sorted((out / split / name).iterdir())
            assert len(files) == n and all(f.name.startswith(f"{split}_") and f.suffix == ".png" for f in files)
    assert "train/happiness/train_00001.png" in pngs

    points = load_landmarks(out / LANDMARKS_FILE)
    assert sorted(points) == pngs
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["seed"] == 3 and manifest["size"] == 40 and manifest["version"]
    assert manifest["counts"] == {split: {name: n for name in LABELS} for split, n in COUNTS.items()}

    # the files are exactly what generate_arrays makes in memory
    images, labels, lms = generate_arrays(COUNTS["train"], size=40, seed=3, split="train")
    for i in range(len(labels)):
        rel = image_path("train", i)
        assert rel.split("/")[1] == LABELS[labels[i]]
        with Image.open(out / rel) as im:
            assert im.mode == "RGB" and im.size == (40, 40)
            assert np.array_equal(np.asarray(im), images[i])
        assert np.array_equal(points[rel], lms[i])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_the_folder_loader_reads_the_generated_tree(tmp_path):
    from udc.train import datasets

    out = generate_dataset(tmp_path / "synth", COUNTS, size=32, seed=1, progress=False)
    index = datasets.open_dataset(out)
    assert index.counts() == {split: {name: n for name in LABELS} for split, n in COUNTS.items()}
    points = load_landmarks(out / LANDMARKS_FILE)
    for r in index.records:
        assert r.label_name == r.key.split("/")[1] and r.split == r.key.split("/")[0]
        assert r.landmarks is not None and np.array_equal(r.landmarks, points[r.key])


def test_generate_dataset_is_reproducible_and_splits_differ(tmp_path):
    a = generate_dataset(tmp_path / "a", COUNTS, size=32, seed=9, progress=False)
    b = generate_dataset(tmp_path / "b", COUNTS, size=32, seed=9, progress=False)
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if k.endswith(".png") or k.endswith(".json"):
            assert fa[k] == fb[k], k
    assert load_landmarks(a / LANDMARKS_FILE).keys() == load_landmarks(b / LANDMARKS_FILE).keys()
    for k, v in load_landmarks(a / LANDMARKS_FILE).items():
        assert np.array_equal(v, load_landmarks(b / LANDMARKS_FILE)[k])
    # image i of each split is a different person
    assert fa["train/neutral/train_00000.png"] != fa["val/neutral/val_00000.png"] != fa["test/neutral/test_00000.png"]


def test_generate_dataset_refuses_to_overwrite(tmp_path):
    out = generate_dataset(tmp_path / "ds", {"train": 1}, size=32, seed=0, progress=False)
    before = _files(out)
    with pytest.raises(FileExistsError):
        generate_dataset(out, {"train": 1, "test": 1}, size=32, seed=1, progress=False)
    assert _files(out) == before
    generate_dataset(out, {"test": 1}, size=32, seed=1, progress=False, overwrite=True)
    assert not (out / "train").exists() and (out / "test").is_dir()
    (tmp_path / "empty").mkdir()  # an existing empty directory is fine
    generate_dataset(tmp_path / "empty", {"val": 1}, size=32, progress=False)
    assert (tmp_path / "empty" / MANIFEST_FILE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "empty"]


def test_failed_run_leaves_nothing(tmp_path, monkeypatch):
    real = dataset_mod._render
    calls = []

    def flaky(job):
        calls.append(job)
        if len(calls) > 3:
            raise RuntimeError("boom")
        return real(job)

    monkeypatch.setattr(dataset_mod, "_render", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        generate_dataset(tmp_path / "ds", {"train": 1}, size=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_brows_are_drawn_on_their_landmarks():
    """The drawing follows the landmarks: the middle of each brow is darker than the forehead above it."""
    rng = np.random.default_rng(21)
    darker = 0
    for i in range(42):
        img, lm = render_face(rng, i % 7, 128)
        lum = img.astype(np.float32).mean(2)
        at = lambda p: lum[int(round(float(p[1]))), int(round(float(p[0])))]  # noqa: E731
        for brow, lid in ((19, 37), (24, 44)):
            above = lm[brow] + (lm[brow] - lm[lid]) * 0.6
            darker += at(lm[brow]) < 0.85 * at(above)
    assert darker >= 0.9 * 84


def test_difficulty_presets():
    from udc.train.synthetic.dataset import generate_arrays
    from udc.train.synthetic.expressions import DIFFICULTIES, sample_expression

    std, _, _ = generate_arrays(1, size=48, seed=3)
    easy, _, _ = generate_arrays(1, size=48, seed=3, difficulty="easy")
    assert std.shape == easy.shape and not np.array_equal(std, easy)
    # easy: every prototype component present at >= 0.9 * its low bound minus the jitter
    rng = np.random.default_rng(0)
    from udc.train.synthetic.expressions import _LO
    for label in range(7):
        for _ in range(20):
            ex = sample_expression(rng, label, DIFFICULTIES["easy"]).as_array()
            assert np.all(ex >= _LO[label] * 0.9 - 0.1)
    with pytest.raises(ValueError, match="unknown difficulty"):
        generate_arrays(1, size=48, difficulty="hard")

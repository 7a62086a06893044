"""Dataset loaders on tiny fake trees in each downloaded format: labels, splits, dropped counts,
label maps, landmarks, subject-disjoint KDEF splits, format detection and the DatasetError cases."""
from __future__ import annotations

import csv
import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from udc.sdk.labels import LABELS
from udc.train.datasets import FORMATS, DatasetError, detect_format, open_dataset
from udc.train.datasets.affectnet import load_affectnet, parse_landmarks
from udc.train.datasets.ferplus import _parse_pixels, load_ferplus, majority_vote
from udc.train.datasets.folder import canonical_class, load_folder
from udc.train.datasets.kdef import load_kdef, parse_kdef_name
from udc.train.datasets.rafdb import load_rafdb
from udc.train.landmark_store import LANDMARKS_FILE, save_landmarks

_IMG_CACHE: dict[str, bytes] = {}


def write_image(path: Path) -> Path:
    """A real 8x8 image in the format the suffix names (encoded once per format, then copied)."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}[path.suffix.lower()]
    if fmt not in _IMG_CACHE:
        buf = io.BytesIO()
        Image.fromarray(np.arange(192, dtype=np.uint8).reshape(8, 8, 3)).save(buf, format=fmt)
        _IMG_CACHE[fmt] = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_IMG_CACHE[fmt])
    return path


def label(name: str) -> int:
    return LABELS.index(name)


def by_key(index):
    return {r.key: r for r in index.records}


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


# --------------------------------------------------------------------------------------------- RAF-DB

def make_rafdb(root: Path, nested: bool = True) -> Path:
    label_dir, image_dir = (root / "EmoLabel", root / "Image" / "aligned") if nested else (root, root / "aligned")
    label_dir.mkdir(parents=True, exist_ok=True)
    (label_dir / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 4\ntest_0001.jpg 7\n\n"
        "test_0002.jpg 1\n"  # image missing on disk
        "train_00003.jpg 9\n"  # unknown code
        "garbage\n"  # malformed
        "extra_0001.jpg 2\n"  # neither train nor test
    )
    for name in ("train_00001", "train_00002", "test_0001", "train_00003", "extra_0001"):
        write_image(image_dir / f"{name}_aligned.jpg")
    return root


def test_rafdb_labels_splits_and_drops(tmp_path):
    idx = load_rafdb(make_rafdb(tmp_path))
    recs = by_key(idx)
    assert list(recs) == sorted(recs) == ["Image/aligned/test_0001_aligned.jpg",
                                          "Image/aligned/train_00001_aligned.jpg",
                                          "Image/aligned/train_00002_aligned.jpg"]
    r = recs["Image/aligned/train_00001_aligned.jpg"]
    assert (r.label, r.split, r.label_name) == (label("sadness"), "train", "sadness")
    assert r.path == tmp_path / "Image" / "aligned" / "train_00001_aligned.jpg" and r.pixels is None
    assert recs["Image/aligned/train_00002_aligned.jpg"].label == label("happiness")
    assert (recs["Image/aligned/test_0001_aligned.jpg"].label,
            recs["Image/aligned/test_0001_aligned.jpg"].split) == (label("neutral"), "test")
    assert idx.dropped == {"missing image": 1, "unknown label": 1, "malformed line": 1, "unknown split": 1}
    assert idx.label_map["1"] == "surprise" and idx.label_map["7"] == "neutral" and idx.label_map["9"] == "(dropped)"
    assert idx.name == "rafdb" and idx.counts()["test"]["neutral"] == 1


def test_rafdb_flat_layout_and_auto(tmp_path):
    make_rafdb(tmp_path, nested=False)
    assert detect_format(tmp_path) == "rafdb"
    idx = open_dataset(tmp_path)
    assert [r.key for r in idx.records] == ["aligned/test_0001_aligned.jpg", "aligned/train_00001_aligned.jpg",
                                            "aligned/train_00002_aligned.jpg"]


def test_rafdb_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_rafdb(tmp_path)
    assert "list_patition_label.txt" in one_line_error(e)
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 5\n")
    with pytest.raises(DatasetError) as e:  # every image missing -> zero usable samples
        load_rafdb(tmp_path)
    assert "missing image" in one_line_error(e)


# --------------------------------------------------------------------------------------------- FERPlus

VOTES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
FER_ROWS = [  # (usage, image name, {column: votes})
    ("Training", "fer0000000.png", {"happiness": 10}),
    ("PublicTest", "fer0000001.png", {"neutral": 6, "sadness": 4}),
    ("PrivateTest", "fer0000002.png", {"surprise": 7, "fear": 3}),
    ("Training", "fer0000003.png", {"happiness": 5, "sadness": 5}),  # tie: no majority
    ("Training", "fer0000004.png", {"unknown": 8, "neutral": 2}),
    ("Training", "fer0000005.png", {"NF": 10}),
    ("Training", "fer0000006.png", {"contempt": 6, "anger": 4}),
    ("Training", "", {"happiness": 10}),  # empty image name
    # 5 of 10 is not > half, but the five single votes are outliers FERPlus removes first -> happiness
    ("PrivateTest", "fer0000008.png", {"happiness": 5, "neutral": 1, "sadness": 1, "surprise": 1, "anger": 1,
                                       "fear": 1}),
]


def make_ferplus(root: Path, rows=FER_ROWS, extra_pixel_rows: int = 0) -> Path:
    with open(root / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for i, (usage, _, _) in enumerate(list(rows) + [("Training", "", {})] * extra_pixel_rows):
            w.writerow([3, " ".join(str((j + i) % 256) for j in range(48 * 48)), usage])
    with open(root / "fer2013new.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Usage", "Image name", *VOTES])
        for usage, name, votes in rows:
            w.writerow([usage, name, *(votes.get(c, 0) for c in VOTES)])
    return root


def test_ferplus_majority_splits_and_drops(tmp_path):
    idx = load_ferplus(make_ferplus(tmp_path))
    recs = by_key(idx)
    assert list(recs) == ["ferplus/00000", "ferplus/00001", "ferplus/00002", "ferplus/00008"]
    got = {k: (LABELS[r.label], r.split) for k, r in recs.items()}
    assert got == {"ferplus/00000": ("happiness", "train"), "ferplus/00001": ("neutral", "val"),
                   "ferplus/00002": ("surprise", "test"), "ferplus/00008": ("happiness", "test")}
    assert idx.dropped == {"no majority": 1, "winner unknown": 1, "winner NF": 1, "winner contempt": 1,
                           "empty image name": 1}
    r = recs["ferplus/00002"]
    assert r.path is None and r.pixels.shape == (48, 48) and r.pixels.dtype == np.uint8
    assert r.pixels[0, 0] == 2 and r.pixels[1, 0] == (48 + 2) % 256
    assert idx.label_map["contempt"] == idx.label_map["unknown"] == idx.label_map["NF"] == "(dropped)"
    assert all(idx.label_map[c] == c for c in VOTES[:7])
    assert detect_format(tmp_path) == "ferplus" and len(open_dataset(tmp_path, "auto").records) == 4


def test_ferplus_literal_majority_without_outlier_removal(tmp_path):
    idx = load_ferplus(make_ferplus(tmp_path), drop_single_votes=False)
    assert "ferplus/00008" not in by_key(idx) and idx.dropped["no majority"] == 2
    assert majority_vote([5, 5, 0]) is None and majority_vote([6, 4, 0]) == 0 and majority_vote([0, 0, 0]) is None
    ok = " ".join(["7"] * 2304)
    assert _parse_pixels(ok).shape == (2304,)
    assert _parse_pixels(ok + " x") is None and _parse_pixels("1 2") is None and _parse_pixels("256" + ok[1:]) is None


def test_ferplus_errors(tmp_path):
    make_ferplus(tmp_path, extra_pixel_rows=1)
    with pytest.raises(DatasetError) as e:  # rows not aligned 1:1
        load_ferplus(tmp_path)
    assert "rows" in one_line_error(e)
    (tmp_path / "fer2013new.csv").unlink()
    with pytest.raises(DatasetError) as e:
        load_ferplus(tmp_path)
    assert "fer2013new.csv" in one_line_error(e)
    with pytest.raises(DatasetError):  # plain FER2013 is recognised but refused
        detect_format(tmp_path)
    make_ferplus(tmp_path, rows=[("Training", "fer0.png", {"NF": 10})])
    (tmp_path / "fer2013new.csv").write_text("Usage,Image name,neutral\nTraining,fer0.png,10\n")
    with pytest.raises(DatasetError) as e:  # a labels file without the vote columns
        load_ferplus(tmp_path)
    assert "missing columns" in one_line_error(e)
    make_ferplus(tmp_path, rows=[("Training", "fer0.png", {"NF": 10})])
    with pytest.raises(DatasetError):  # zero usable samples
        load_ferplus(tmp_path)


# --------------------------------------------------------------------------------------------- KDEF

KDEF_SUBJECTS = [f"{g}{n:02d}" for g in "FM" for n in range(1, 7)]  # 12 subjects


def make_kdef(root: Path) -> Path:
    for subject in KDEF_SUBJECTS:
        for expr in ("HA", "SA", "NE"):
            seq = f"A{subject}"
            for angle in ("S", "HL"):
                ext = ".jpg" if subject == "F02" else ".JPG"  # extension case must not matter
                write_image(root / "KDEF" / seq / f"{seq}{expr}{angle}{ext}")
    write_image(root / "KDEF" / "BF01" / "BF01AFS.JPG")  # session B of subject F01
    write_image(root / "KDEF" / "AF01" / "AF01XXS.JPG")  # unknown expression code
    write_image(root / "KDEF" / "cover.png")
    (root / "KDEF" / "README.txt").write_text("not an image")
    return root


def test_kdef_names_labels_and_subject_disjoint_splits(tmp_path):
    idx = load_kdef(make_kdef(tmp_path))
    assert len(idx.records) == 12 * 3 * 2 + 1
    assert idx.dropped == {"unparseable name": 2}
    recs = by_key(idx)
    r = recs["KDEF/AF01/AF01HAS.JPG"]
    assert (r.label_name, r.path) == ("happiness", tmp_path / "KDEF" / "AF01" / "AF01HAS.JPG")
    assert recs["KDEF/BF01/BF01AFS.JPG"].label_name == "fear"
    assert recs["KDEF/AF02/AF02SAHL.jpg"].label_name == "sadness"
    assert idx.label_map == {"AF": "fear", "AN": "anger", "DI": "disgust", "HA": "happiness", "NE": "neutral",
                             "SA": "sadness", "SU": "surprise"}

    subject_splits: dict[str, set[str]] = {}
    for rec in idx.records:
        subject_splits.setdefault(parse_kdef_name(rec.key)[1], set()).add(rec.split)
    assert all(len(s) == 1 for s in subject_splits.values())  # no person in two splits (sessions A and B too)
    per_split = {s: sorted(k for k, v in subject_splits.items() if v == {s}) for s in ("train", "val", "test")}
    assert [len(per_split[s]) for s in ("train", "val", "test")] == [10, 1, 1]

    again = load_kdef(tmp_path)  # deterministic
    assert [(r.key, r.split, r.label) for r in again.records] == [(r.key, r.split, r.label) for r in idx.records]


def test_kdef_angle_filter_and_auto(tmp_path):
    make_kdef(tmp_path)
    full = {r.key: r.split for r in load_kdef(tmp_path).records}
    assert detect_format(tmp_path) == "kdef"
    idx = open_dataset(tmp_path, angles={"S"})
    assert len(idx.records) == 12 * 3 + 1 and all(parse_kdef_name(r.key)[3] == "S" for r in idx.records)
    assert idx.dropped["angle not selected"] == 12 * 3
    assert all(full[r.key] == r.split for r in idx.records)  # the filter does not move subjects
    assert parse_kdef_name("BM23HAFL.JPG") == ("B", "M23", "HA", "FL") and parse_kdef_name("x.jpg") is None
    with pytest.raises(DatasetError):
        load_kdef(tmp_path, angles={"UP"})


# --------------------------------------------------------------------------------------------- AffectNet

AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
                    "expression", "valence", "arousal"]
LANDMARKS = np.arange(136, dtype=np.float32).reshape(68, 2) + 0.5


def _val_name() -> str:
    """A training path that lands in the carved val split (crc32 % 20 == 0)."""
    return next(p for p in (f"5/v{i}.jpg" for i in range(10_000)) if zlib.crc32(p.encode()) % 20 == 0)


def make_affectnet(root: Path) -> Path:
    lm = ";".join(f"{v:.3f}" for v in LANDMARKS.ravel())
    train_rows = [
        ["1/a.jpg", 0, 0, 8, 8, lm, 1, 0.5, 0.2],
        ["1/b.jpg", 0, 0, 8, 8, "", 0, 0, 0],
        ["2/c.jpg", 0, 0, 8, 8, "1;2;3;4", 6, -0.5, 0.7],  # malformed landmarks -> None
        ["2/d.jpg", 0, 0, 8, 8, lm, 7, 0, 0],  # contempt
        ["2/e.jpg", 0, 0, 8, 8, lm, 8, 0, 0],  # none
        ["2/f.jpg", 0, 0, 8, 8, lm, 9, 0, 0],  # uncertain
        ["2/g.jpg", 0, 0, 8, 8, lm, 10, 0, 0],  # non-face
        ["3/missing.jpg", 0, 0, 8, 8, lm, 2, 0, 0],
        ["2/h.jpg", 0, 0, 8, 8, lm, "n/a", 0, 0],
        [_val_name(), 0, 0, 8, 8, "", 4, 0, 0],
    ]
    with open(root / "training.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(AFFECTNET_HEADER)
        w.writerows(train_rows)
    with open(root / "validation.csv", "w", newline="") as fh:  # no header row, as some releases ship it
        csv.writer(fh).writerow(["4/v.jpg", 0, 0, 8, 8, lm, 3, 0.1, 0.1])
    for row in train_rows:
        if row[0] != "3/missing.jpg":
            write_image(root / "Manually_Annotated_Images" / row[0])
    write_image(root / "4" / "v.jpg")  # images directly under root are accepted too
    return root


def test_affectnet_labels_splits_landmarks(tmp_path):
    idx = load_affectnet(make_affectnet(tmp_path))
    recs = by_key(idx)
    m = "Manually_Annotated_Images/"
    val = m + _val_name()
    assert list(recs) == sorted([m + "1/a.jpg", m + "1/b.jpg", m + "2/c.jpg", val, "4/v.jpg"])
    got = {k: (r.label_name, r.split) for k, r in recs.items()}
    assert got[m + "1/b.jpg"] == ("neutral", "train") and got[m + "2/c.jpg"] == ("anger", "train")
    assert got[m + "1/a.jpg"][0] == "happiness" and got[val] == ("fear", "val")
    assert got["4/v.jpg"] == ("surprise", "test")
    assert idx.dropped == {"contempt": 1, "none": 1, "uncertain": 1, "non-face": 1, "missing image": 1,
                           "bad expression": 1}
    a = recs[m + "1/a.jpg"].landmarks
    assert a.shape == (68, 2) and a.dtype == np.float32 and np.allclose(a, LANDMARKS)
    assert recs[m + "1/b.jpg"].landmarks is None and recs[m + "2/c.jpg"].landmarks is None
    assert recs["4/v.jpg"].landmarks is not None
    assert idx.label_map["0"] == "neutral" and idx.label_map["6"] == "anger" and idx.label_map["7"] == "(dropped)"
    assert parse_landmarks("1;2;x" + ";0" * 133) is None and parse_landmarks(None) is None
    assert detect_format(tmp_path) == "affectnet" and open_dataset(tmp_path, "affectnet").name == "affectnet"


def test_affectnet_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_affectnet(tmp_path)
    assert "training.csv" in one_line_error(e)
    (tmp_path / "training.csv").write_text(",".join(AFFECTNET_HEADER) + "\n1/a.jpg,0,0,8,8,,7,0,0\n")
    with pytest.raises(DatasetError):
        load_affectnet(tmp_path)


# --------------------------------------------------------------------------------------------- folder

def test_folder_split_layout_with_landmarks(tmp_path):
    """The synthetic generator's tree: OUT/{train,val,test}/{label}/{name}.png + OUT/landmarks68.npz."""
    keys = ["train/happiness/train_00001.png", "train/neutral/train_00002.png", "val/sadness/val_00001.png",
            "test/anger/test_00001.png"]
    for k in keys:
        write_image(tmp_path / k)
    write_image(tmp_path / "train" / "contempt" / "train_00003.png")
    write_image(tmp_path / "train" / "loose.png")  # not in a class folder
    (tmp_path / "train" / "happiness" / "notes.txt").write_text("ignored")
    pts = np.full((68, 2), 3.0, np.float32)
    save_landmarks(tmp_path / LANDMARKS_FILE, {keys[0]: pts, keys[3]: pts + 1})

    idx = load_folder(tmp_path)
    recs = by_key(idx)
    assert list(recs) == sorted(keys)
    assert {k: (r.label_name, r.split) for k, r in recs.items()} == {
        keys[0]: ("happiness", "train"), keys[1]: ("neutral", "train"), keys[2]: ("sadness", "val"),
        keys[3]: ("anger", "test")}
    assert idx.dropped == {"unknown class": 1, "no class folder": 1}
    assert idx.label_map == {"anger": "anger", "happiness": "happiness", "neutral": "neutral",
                             "sadness": "sadness", "contempt": "(dropped)"}
    assert np.array_equal(recs[keys[0]].landmarks, pts) and recs[keys[0]].landmarks.dtype == np.float32
    assert np.array_equal(recs[keys[3]].landmarks, pts + 1) and recs[keys[1]].landmarks is None
    assert detect_format(tmp_path) == "folder" and len(open_dataset(tmp_path).records) == 4


def test_folder_flat_layout_synonyms_and_split_aliases(tmp_path):
    flat = tmp_path / "flat"
    for rel in ("1_happy/a.jpg", "0-neutral/b.PNG", "Angry/c.bmp", "mad/d.jpeg", "Scared/sub/e.webp",
                "surprised/f.jpg"):
        write_image(flat / rel)
    idx = load_folder(flat)
    assert {r.key: r.label_name for r in idx.records} == {
        "1_happy/a.jpg": "happiness", "0-neutral/b.PNG": "neutral", "Angry/c.bmp": "anger", "mad/d.jpeg": "anger",
        "Scared/sub/e.webp": "fear", "surprised/f.jpg": "surprise"}
    assert {r.split for r in idx.records} == {"train"}
    assert idx.label_map["1_happy"] == "happiness" and idx.label_map["0-neutral"] == "neutral"

    aliased = tmp_path / "aliased"
    write_image(aliased / "Validation" / "joy" / "a.png")
    write_image(aliased / "valid" / "disgusted" / "b.png")
    write_image(aliased / "train" / "sadness" / "c.png")
    assert {r.key: r.split for r in load_folder(aliased).records} == {
        "Validation/joy/a.png": "val", "valid/disgusted/b.png": "val", "train/sadness/c.png": "train"}


def test_folder_drops_augmented_copies(tmp_path):
    """FER2013's public class-folder mirror: ``X.jpgN.jpg`` copies beside ``X.jpg`` are dropped and counted;
    a name of that shape without its original beside it is an image like any other."""
    for rel in ("train/disgust/Training_1.jpg", "train/disgust/Training_1.jpg0.jpg",
                "train/disgust/Training_1.jpg12.png", "test/disgust/PrivateTest_2.jpg",
                "test/disgust/PrivateTest_2.jpg3.jpg", "test/happy/lonely.jpg7.jpg", "test/happy/b.png1.png"):
        write_image(tmp_path / rel)
    idx = load_folder(tmp_path)
    assert sorted(r.key for r in idx.records) == ["test/disgust/PrivateTest_2.jpg", "test/happy/b.png1.png",
                                                    "test/happy/lonely.jpg7.jpg", "train/disgust/Training_1.jpg"]
    assert idx.dropped == {"augmented copy": 3}


@pytest.mark.parametrize("name, expected", [
    ("neutral", "neutral"), ("07 Neutral", "neutral"), ("HAPPY", "happiness"), ("joy", "happiness"),
    ("sad", "sadness"), ("surprise", "surprise"), ("fearful", "fear"), ("afraid", "fear"),
    ("disgust", "disgust"), ("2.disgusted", "disgust"), ("anger", "anger"), ("contempt", None), ("happy face", None),
])
def test_folder_class_synonyms(name, expected):
    assert canonical_class(name) == expected


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_folder(tmp_path)
    assert "class folders" in one_line_error(e)
    write_image(tmp_path / "contempt" / "a.png")
    with pytest.raises(DatasetError) as e:  # only unknown classes -> zero usable samples
        load_folder(tmp_path)
    assert "unknown class" in one_line_error(e)
    with pytest.raises(DatasetError):
        load_folder(tmp_path / "does-not-exist")


# --------------------------------------------------------------------------------------------- registry

def test_registry_errors(tmp_path):
    assert set(FORMATS) == {"rafdb", "ferplus", "kdef", "affectnet", "folder"}
    with pytest.raises(DatasetError) as e:  # empty tree
        open_dataset(tmp_path)
    assert "expected" in one_line_error(e)
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("no images")
    with pytest.raises(DatasetError):  # unrecognisable tree
        detect_format(tmp_path)
    with pytest.raises(DatasetError):
        detect_format(tmp_path / "missing")
    with pytest.raises(DatasetError) as e:
        open_dataset(tmp_path, "imagenet")
    assert "rafdb" in one_line_error(e)
    write_image(tmp_path / "happy" / "a.png")
    with pytest.raises(DatasetError) as e:  # option the folder loader does not take
        open_dataset(tmp_path, angles={"S"})
    assert "angles" in one_line_error(e)
    assert open_dataset(tmp_path, "folder").records[0].label_name == "happiness"


def test_detect_folder_fallback_with_unrecognised_class_names(tmp_path):
    write_image(tmp_path / "happy face" / "a.png")
    assert detect_format(tmp_path) == "folder"
    with pytest.raises(DatasetError):  # recognised as a folder tree, but no usable class
        open_dataset(tmp_path)


# ----------------------------------------------------------------------------- landmark cache
def test_landmarks_are_computed_once_and_cached(tmp_path):
    from udc.train.datasets.base import DatasetIndex, FaceRecord
    from udc.train.datasets.landmark_cache import ensure_landmarks
    from udc.train.landmark_store import load_landmarks

    class CountingDetector:
        calls = 0

        def detect(self, rgb):
            CountingDetector.calls += 1
            if rgb.mean() < 10:  # the black image has no face
                return []
            return [type("F", (), {"landmarks": np.full((68, 2), float(rgb.shape[0]), np.float32)})()]

    for name, value in (("a.png", 200), ("b.png", 0)):
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(tmp_path / name)
    shipped = np.ones((68, 2), np.float32)
    index = DatasetIndex("t", tmp_path, [
        FaceRecord("a.png", 1, "train", tmp_path / "a.png"),
        FaceRecord("b.png", 2, "train", tmp_path / "b.png"),
        FaceRecord("c.png", 3, "train", None, pixels=np.full((8, 8), 99, np.uint8), landmarks=shipped),
    ], {})
    lm = ensure_landmarks(index, CountingDetector(), progress=False)
    assert CountingDetector.calls == 2
    assert lm["a.png"][0, 0] == 16.0 and np.isnan(lm["b.png"]).all() and np.array_equal(lm["c.png"], shipped)
    assert set(load_landmarks(tmp_path / "landmarks68.npz")) == {"a.png", "b.png", "c.png"}
    ensure_landmarks(index, CountingDetector(), progress=False)
    assert CountingDetector.calls == 2  # second run: all from the cache

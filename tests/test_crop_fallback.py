"""Issue 13 item 3: every face of a crop dataset is scored. NaN landmarks are a typed error wherever they
arrive; crops MediaPipe misses take the upscaled / canonical fallback, counted per path; a face that still
fails is scored as wrong. Real pixels: scikit-image's lfw_subset (25x25 face crops, first 100 are faces,
the last 100 are not); everything else synthetic."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from udc.sdk.errors import LandmarksError, NoFaceError, UdcError
from udc.sdk.faces.align import align_face, check_landmarks, similarity_transform
from udc.sdk.faces.landmarks import canonical_landmarks


def _face_points(scale=40.0, offset=5.0):
    return canonical_landmarks().numpy() * scale + offset


# --------------------------------------------------------------------------- NaN landmarks: typed errors
@pytest.mark.parametrize("bad", [
    np.full((68, 2), np.nan, np.float32),                       # how the cache stores "no face"
    np.where(np.arange(136).reshape(68, 2) == 70, np.inf, _face_points()),  # one inf coordinate
    np.ones((68, 2), np.float32),                               # all points at one spot
    np.zeros((5, 2), np.float32),                               # wrong shape
])
def test_align_face_refuses_unusable_landmarks_with_a_typed_error(bad):
    rgb = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(LandmarksError) as e:
        align_face(rgb, bad, 32)
    assert isinstance(e.value, NoFaceError) and isinstance(e.value, UdcError)
    assert "\n" not in str(e.value) and "SVD" not in str(e.value)


def test_similarity_transform_refuses_nan_instead_of_svd_failure():
    src = _face_points()
    with pytest.raises(LandmarksError):
        similarity_transform(np.full_like(src, np.nan), src)
    m = similarity_transform(src, src)
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


def test_face_pipeline_with_nan_landmarks_raises_landmarks_error():
    from udc.sdk.faces.pipeline import FacePipeline

    with pytest.raises(LandmarksError):
        FacePipeline(32, detector=object())(np.zeros((50, 50, 3), np.uint8), landmarks=np.full((68, 2), np.nan))
    assert check_landmarks(_face_points()).shape == (68, 2)


# --------------------------------------------------------------------------- crop_landmarks paths
class SizeDetector:
    """Finds a face (the canonical points over the image) only in images at least ``min_side`` px."""

    def __init__(self, min_side):
        self.min_side, self.calls = min_side, 0

    def detect(self, rgb):
        self.calls += 1
        h, w = rgb.shape[:2]
        if min(h, w) < self.min_side:
            return []
        lm = canonical_landmarks().numpy() * np.array([w, h], np.float32)
        return [type("F", (), {"landmarks": lm.astype(np.float32)})()]


def test_crop_landmarks_paths_and_coordinates():
    from udc.sdk.faces.pipeline import canonical_crop_landmarks, crop_landmarks

    rgb = np.full((48, 48, 3), 120, np.uint8)
    lm, path = crop_landmarks(rgb, SizeDetector(1))
    assert path == "detected" and np.allclose(lm, canonical_crop_landmarks(48, 48))
    # found only once enlarged (256 px + border): mapped back into the 48x48 crop's pixels
    lm, path = crop_landmarks(rgb, SizeDetector(200))
    assert path == "upscaled"
    assert np.isfinite(lm).all() and lm.min() > -48 and lm.max() < 96
    lm, path = crop_landmarks(rgb, SizeDetector(10_000))
    assert path == "canonical" and np.allclose(lm, canonical_crop_landmarks(48, 48))
    assert crop_landmarks(rgb, SizeDetector(10_000), fallback=False) == (None, "failed")


def test_crop_landmarks_upscaled_maps_back_exactly():
    """A detector that reports the true position of a marker in the enlarged, padded image: mapped back,
    it lands on the marker in the original crop."""
    from udc.sdk.faces.pipeline import crop_landmarks

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[10:14, 24:28] = 255  # marker centred at (26, 12) (pixel centres: x 24.5..27.5)

    class MarkerDetector:
        def detect(self, img):
            if img.shape[0] < 200:
                return []
            ys, xs = np.nonzero(img[..., 0] > 128)
            c = np.array([xs.mean() + 0.5, ys.mean() + 0.5], np.float32)  # continuous pixel coordinates
            return [type("F", (), {"landmarks": np.tile(c, (68, 1))})()]

    lm, path = crop_landmarks(rgb, MarkerDetector())
    assert path == "upscaled"
    assert np.allclose(lm[0], [26.0, 12.0], atol=0.6)


def test_real_lfw_crops_all_get_landmarks_with_the_fallback():
    """MediaPipe on scikit-image's 25x25 LFW crops: faces are detected as they are, the non-face patches
    take the canonical path; with the fallback no crop is left without landmarks."""
    from skimage import data

    from udc.sdk.faces.detect import MediaPipeFaceMesh
    from udc.sdk.faces.pipeline import crop_landmarks
    from udc.sdk.faces.images import load_image

    lfw = data.lfw_subset()
    det = MediaPipeFaceMesh()
    faces = [crop_landmarks(load_image(lfw[i]), det) for i in range(0, 100, 25)]
    others = [crop_landmarks(load_image(lfw[i]), det) for i in (150, 190)]
    assert [p for _, p in faces] == ["detected"] * 4
    assert all(p in ("upscaled", "canonical") for _, p in others)
    for lm, _ in faces + others:
        assert lm.shape == (68, 2) and np.isfinite(lm).all()
        align_face(load_image(lfw[0]), lm, 32)  # every path aligns


# --------------------------------------------------------------------------- the landmark cache
def _index(tmp_path, n_gray=2):
    from udc.train.datasets.base import DatasetIndex, FaceRecord

    recs = []
    for i in range(n_gray):
        Image.fromarray(np.full((48, 48), 100 + i, np.uint8)).save(tmp_path / f"c{i}.png")
        recs.append(FaceRecord(f"c{i}.png", i, "test", tmp_path / f"c{i}.png"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    recs.append(FaceRecord("broken.png", 3, "test", tmp_path / "broken.png"))
    Image.fromarray(np.full((300, 600, 3), 90, np.uint8)).save(tmp_path / "photo.png")
    recs.append(FaceRecord("photo.png", 4, "test", tmp_path / "photo.png"))
    return DatasetIndex("t", tmp_path, recs, {})


def test_cache_counts_paths_and_keeps_the_old_default(tmp_path):
    from udc.train.datasets.landmark_cache import LandmarkMap, ensure_landmarks
    from udc.train.landmark_store import load_landmark_sources

    index = _index(tmp_path)
    plain = ensure_landmarks(index, SizeDetector(10_000), progress=False)  # default: no fallback (as before)
    assert isinstance(plain, dict) and isinstance(plain, LandmarkMap)
    assert all(np.isnan(v).all() for v in plain.values())
    assert plain.counts()["failed"] == 4

    det = SizeDetector(320)  # the 48 px crops are found once enlarged to 256 + border; the 300x600 photo never
    auto = ensure_landmarks(index, det, progress=False, fallback="auto")
    assert auto.counts() == {"dataset": 0, "detected": 0, "upscaled": 2, "canonical": 0, "failed": 2}
    assert np.isnan(auto["broken.png"]).all() and np.isnan(auto["photo.png"]).all()
    assert auto.sources["photo.png"] == "failed" and load_landmark_sources(tmp_path / "landmarks68.npz")[
        "photo.png"] == "photo"
    assert "2 upscaled" in auto.summary() and "2 failed" in auto.summary()

    calls = det.calls
    again = ensure_landmarks(index, det, progress=False, fallback="auto")  # all from the cache
    assert det.calls == calls and again.counts() == auto.counts()
    forced = ensure_landmarks(index, SizeDetector(10_000), progress=False, fallback=True)
    assert forced.sources["photo.png"] == "canonical"  # fallback=True: every image is a crop
    assert ensure_landmarks(index, SizeDetector(10_000), progress=False).sources["photo.png"] == "failed"


def test_cache_written_before_sources_is_retried_with_the_fallback(tmp_path):
    from udc.train.datasets.landmark_cache import ensure_landmarks
    from udc.train.landmark_store import save_landmarks

    index = _index(tmp_path, n_gray=1)
    found = np.full((68, 2), 7.0, np.float32)
    save_landmarks(tmp_path / "landmarks68.npz", {"c0.png": np.full((68, 2), np.nan, np.float32),
                                                  "broken.png": np.full((68, 2), np.nan, np.float32),
                                                  "photo.png": found})  # the old format: no sources
    det = SizeDetector(10_000)
    old = ensure_landmarks(index, det, progress=False)
    assert det.calls == 0 and old.sources == {"c0.png": "failed", "broken.png": "failed", "photo.png": "detected"}
    new = ensure_landmarks(index, det, progress=False, fallback=True)
    assert det.calls == 3  # c0: the three upscaled tries only, not the plain detection again; broken: unreadable
    assert new.sources["c0.png"] == "canonical" and new.sources["broken.png"] == "failed"
    assert np.array_equal(new["photo.png"], found)
    with pytest.raises(ValueError):
        ensure_landmarks(index, det, progress=False, fallback="yes")


# --------------------------------------------------------------------------- compare.py --accuracy-data
def _compare():
    from benchmark_scripts import load_benchmark

    return load_benchmark("compare.py", "udc_compare")


def test_scores_count_missed_faces_as_wrong():
    scores = _compare().scores
    acc, uar = scores([0, 1, 1], [0, 1, 2], [])
    assert acc == pytest.approx(2 / 3) and uar == pytest.approx(2 / 3)
    acc, uar = scores([0, 1, 1], [0, 1, 2], [0, 2])  # two faces without landmarks: wrong, not dropped
    assert acc == pytest.approx(2 / 5) and uar == pytest.approx((1 / 2 + 1 + 0) / 3)
    acc, uar = scores([], [], [3])
    assert acc == 0.0 and uar == 0.0


def test_labelled_faces_on_a_fer_layout_crop_tree_scores_every_face(tmp_path):
    """A FER2013-layout tree (test/<class>/*.png) of lfw crops, a blank crop and a corrupt file: no
    "SVD did not converge", every face counted, the blank crop through the fallback, the corrupt one missed."""
    from skimage import data

    lfw = (data.lfw_subset() * 255).astype(np.uint8)
    for split in ("train", "test"):
        for i, cls in enumerate(("happy", "sad")):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            Image.fromarray(lfw[i]).save(d / "face.png")
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(tmp_path / "test" / "sad" / "blank.png")
    (tmp_path / "test" / "happy" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    faces, labels, missed, paths = _compare().labelled_faces(str(tmp_path), 32, None)
    assert len(labels) + len(missed) == 4  # every test file is scored
    assert len(missed) == 1 and paths["failed"] == 1
    assert paths["detected"] == 2 and paths["upscaled"] + paths["canonical"] == 1
    assert faces.crops.shape == (3, 32, 32, 3) and np.isfinite(faces.landmarks).all()

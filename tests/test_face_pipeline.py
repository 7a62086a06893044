"""The face pipeline on real faces (scikit-image's astronaut and LFW subset) and on bad input."""
import io

import numpy as np
import pytest
from PIL import Image
from skimage import data  # a declared test dependency ([test] extra): no skip

from udc.sdk.errors import ImageError, NoFaceError
from udc.sdk.faces.align import align_face, similarity_transform, template
from udc.sdk.faces.pipeline import FacePipeline, to_model_input
from udc.sdk.faces.images import load_image
from udc.sdk.faces.landmarks import ALIGNMENT_POINTS, MEDIAPIPE_TO_68



@pytest.fixture(scope="module")
def pipe():
    return FacePipeline(crop_size=112)


def _png(arr_or_img, **kw) -> bytes:
    buf = io.BytesIO()
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_astronaut_face_with_68_landmarks_inside_the_face_box(pipe, astronaut):
    from skimage import data as skdata
    from skimage.feature import Cascade

    face = pipe(astronaut)
    assert face.num_faces == 1
    assert face.landmarks.shape == (68, 2) and face.image.shape == (112, 112, 3)
    # an independent detector's face box (scikit-image's LBP cascade): eyes, nose and mouth inside it,
    # every one of the 68 points inside it grown by 25 %
    box = Cascade(skdata.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=astronaut, scale_factor=1.2, step_ratio=1, min_size=(60, 60), max_size=(300, 300))[0]
    x0, y0, x1, y1 = box["c"], box["r"], box["c"] + box["width"], box["r"] + box["height"]
    inner = face.landmarks_image[27:68]
    assert ((inner[:, 0] > x0) & (inner[:, 0] < x1) & (inner[:, 1] > y0) & (inner[:, 1] < y1)).all()
    gx, gy = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    lm = face.landmarks_image
    assert ((lm[:, 0] > x0 - gx) & (lm[:, 0] < x1 + gx) & (lm[:, 1] > y0 - gy) & (lm[:, 1] < y1 + gy)).all()
    # anatomy in order: brows above eyes above nose tip above mouth above chin
    ys = lambda a, b: lm[a:b, 1].mean()  # noqa: E731
    assert ys(17, 27) < ys(36, 48) < lm[30, 1] < ys(48, 68) < lm[8, 1]
    # aligned crop: the stable points land near the canonical face
    err = np.abs(face.landmarks[list(ALIGNMENT_POINTS)] * 112 - template(112)[list(ALIGNMENT_POINTS)]).mean()
    assert err < 4.0


def test_lfw_subset_faces_found_and_non_faces_rejected(pipe):
    lfw = data.lfw_subset()  # 100 face crops (25x25) then 100 non-face crops
    found = sum(bool(pipe.detector.detect(load_image(lfw[i]))) for i in range(0, 100, 4))
    false = sum(bool(pipe.detector.detect(load_image(lfw[i]))) for i in range(100, 200, 4))
    assert found >= 23 and false <= 1


def test_two_faces_use_the_largest_and_report_the_count(pipe, astronaut):
    small = np.asarray(Image.fromarray(astronaut).resize((384, 384)))
    canvas = np.full((512, 916, 3), 230, np.uint8)
    canvas[:, :512] = astronaut
    canvas[64:448, 532:916] = small
    face = pipe(canvas)
    assert face.num_faces == 2
    assert face.box[0] < 400  # the big one, on the left


def test_huge_and_exif_rotated_images(pipe, astronaut):
    ref = pipe(astronaut)
    huge = np.asarray(Image.fromarray(astronaut).resize((3000, 3000), Image.BILINEAR))
    big = pipe(huge)
    np.testing.assert_allclose(big.landmarks_image / (3000 / 512), ref.landmarks_image, atol=6.0)
    # stored rotated, with EXIF orientation 6 ("rotate 90 CW to display"): must come out upright
    rotated = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    loaded = load_image(_png(rotated, format="JPEG", exif=exif, quality=95))
    assert loaded.shape == astronaut.shape
    face = pipe(loaded)
    assert np.abs(face.landmarks_image - ref.landmarks_image).mean() < 6.0


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_image_modes_are_converted(mode, astronaut):
    img = Image.fromarray(astronaut)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L")).astype(np.uint16) * 257))
        assert img.mode.startswith("I;16")
    else:
        img = img.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    rgb = load_image(_png(img, format=fmt))
    assert rgb.dtype == np.uint8 and rgb.shape == (512, 512, 3)
    if mode in ("L", "I;16"):
        gray = np.asarray(Image.fromarray(astronaut).convert("L"))
        assert np.abs(rgb[:, :, 0].astype(int) - gray).max() <= 1
    assert load_image(np.asarray(img)).shape == (512, 512, 3) if mode != "CMYK" else True


def test_grayscale_face_is_still_found(pipe, astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    assert pipe(gray).num_faces == 1


def test_bad_inputs_give_typed_errors(pipe, tmp_path, astronaut):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        pipe(str(tmp_path / "notes.txt"))
    jpeg = _png(astronaut, format="JPEG", quality=90)
    with pytest.raises(ImageError, match="truncated"):
        load_image(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 5)))
    with pytest.raises(NoFaceError, match="no face"):
        pipe(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1)))


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    src = rng.random((20, 2)) * 100
    a, s, t = 0.3, 1.7, np.array([12.0, -5.0])
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = s * src @ r.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m, np.hstack([s * r, t[:, None]]), atol=1e-9)


def test_align_maps_pixels_and_landmarks_consistently():
    # a dark image with a bright dot at each landmark: after warping, the dots sit at the mapped points
    lm = template(200) * 0.8 + np.array([30.0, 10.0])
    img = np.zeros((240, 240, 3), np.uint8)
    for x, y in lm[[30, 36, 45, 48, 54]]:
        img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
    crop, lm_crop, _ = align_face(img, lm, 100)
    for i in (30, 36, 45, 48, 54):
        x, y = lm_crop[i]
        patch = crop[max(0, int(y) - 3):int(y) + 4, max(0, int(x) - 3):int(x) + 4, 0]
        assert patch.max() > 60, i


def test_mediapipe_table_is_a_valid_index_list():
    assert len(MEDIAPIPE_TO_68) == 68 and len(set(MEDIAPIPE_TO_68)) == 68
    assert all(0 <= i < 468 for i in MEDIAPIPE_TO_68)  # valid for the 468- and 478-point meshes


def test_to_model_input_normalises():
    x = to_model_input([np.full((4, 4, 3), 255, np.uint8)], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert x.shape == (1, 3, 4, 4) and float(x.min()) == 1.0

import numpy as np
import torch

from udc.sdk.faces.landmarks import NUM_LANDMARKS, REGIONS, LandmarkHeatmaps, canonical_landmarks, region_membership
from udc.sdk.models.lrdif.layers import window_partition, window_reverse


def test_regions_cover_the_68_points_once():
    m = region_membership()
    assert m.shape == (len(REGIONS), NUM_LANDMARKS)
    assert torch.equal(m.sum(0), torch.ones(NUM_LANDMARKS))


def test_canonical_face_is_inside_the_crop_and_ordered():
    lm = canonical_landmarks()
    assert lm.shape == (68, 2) and (lm > 0).all() and (lm < 1).all()
    assert lm[8, 1] > lm[57, 1] > lm[33, 1] > lm[27, 1] > lm[19, 1]  # chin, lip, nose tip, bridge, brow top-down
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # eye corners left to right in the image


def test_heatmap_peaks_at_the_points():
    hm = LandmarkHeatmaps(size=32, sigma=0.03)
    lm = torch.full((1, 68, 2), -5.0)  # everything far outside the crop ...
    lm[0, 30] = torch.tensor([8.5, 24.5]) / 32  # the centre of pixel (row 24, column 8)  # ... but the nose tip (region nose_bridge)
    out = hm(lm)
    assert out.shape == (1, len(REGIONS), 32, 32)
    r = list(REGIONS).index("nose_bridge")
    flat = out[0, r].argmax()
    assert (flat // 32, flat % 32) == (24, 8)
    others = torch.cat([out[0, :r], out[0, r + 1:]])
    assert others.max() < 1e-6
    assert out.max() <= 1.0


def test_window_partition_round_trip_and_rank():
    x = torch.randn(2, 6, 8, 12)
    w = window_partition(x, 4)
    assert w.shape == (2 * 2 * 3, 16, 6)
    torch.testing.assert_close(window_reverse(w, 4, 2, 8, 12), x, rtol=0, atol=0)
    # window 0 of image 0 is the top-left 4x4 patch, row-major
    torch.testing.assert_close(w[0], x[0, :, :4, :4].reshape(6, 16).t())


def test_flip_table_maps_the_symmetric_face_onto_itself():
    from udc.sdk.faces.landmarks import FLIP_68
    from udc.train.data import flip_sample

    c = canonical_landmarks().numpy() * 64
    img = torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()
    _, flipped = flip_sample(img, c)
    np.testing.assert_allclose(flipped, c, atol=1e-4)  # the canonical face is left-right symmetric
    assert sorted(FLIP_68) == list(range(68))
    assert all(FLIP_68[FLIP_68[i]] == i for i in range(68))
    assert FLIP_68[36] == 45 and FLIP_68[48] == 54 and FLIP_68[8] == 8

"""sdk/runtime/preprocess.py: the crop normalisation every runtime is fed, bitwise what the broadcast formula gives."""
from __future__ import annotations

import numpy as np
import pytest

from udc.sdk.runtime.preprocess import normalize_crops

MEAN, STD, SCALE = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), 1 / 255


def _formula(crops: np.ndarray) -> np.ndarray:
    x = crops.astype(np.float32).transpose(0, 3, 1, 2) * np.float32(SCALE)
    return np.ascontiguousarray((x - np.float32(MEAN).reshape(1, 3, 1, 1)) / np.float32(STD).reshape(1, 3, 1, 1))


def test_normalize_crops_is_bitwise_the_formula():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 20, 28, 3), dtype=np.uint8)  # not square: height and width kept apart
    x = normalize_crops(crops, SCALE, MEAN, STD)
    assert x.dtype == np.float32 and x.shape == (3, 3, 20, 28) and x.flags.c_contiguous
    assert np.array_equal(x, _formula(crops))
    one = normalize_crops(crops[1], SCALE, MEAN, STD)  # one [S, S, 3] crop -> a batch of one
    assert one.shape == (1, 3, 20, 28) and np.array_equal(one[0], x[1])
    # channel order is the crop's (RGB): a red-only crop moves channel 0 only
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 255
    y = normalize_crops(red, SCALE, MEAN, STD)
    assert np.allclose(y[0, 0], (1 - MEAN[0]) / STD[0]) and np.allclose(y[0, 1], -MEAN[1] / STD[1])


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 4), (2, 8, 8, 1), (1, 2, 8, 8, 3)])
def test_normalize_crops_refuses_what_is_not_rgb_crops(shape):
    with pytest.raises(ValueError, match="face crops must be"):
        normalize_crops(np.zeros(shape, np.uint8), SCALE, MEAN, STD)

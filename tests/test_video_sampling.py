"""Seed 002's clip sampling (U segments x V frames): index patterns on long, short and tiny videos."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from udc.sdk.faces.video import (CLIP_PRESETS, ClipSampling, aggregate_clip_scores, gather_frames, read_video_frames,
                           sample_clip, sample_clip_indices)


def test_eval_long_video_takes_the_middle_v_frames_of_each_segment():
    # 32 frames, U=8, V=2: segments of 4 frames, their middle 2 (the seed code gives the same)
    idx = sample_clip_indices(32, 8, 2)
    assert idx.tolist() == [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22, 25, 26, 29, 30]
    # 100 frames, U=4, V=1: segments of 25, middle frames 12, 37, 62, 87
    assert sample_clip_indices(100, 4, 1).tolist() == [12, 37, 62, 87]
    # 10 frames, U=3, V=2: segments [0,3) [3,6) [6,10): middle pairs (0,1) (3,4) (7,8)
    assert sample_clip_indices(10, 3, 2).tolist() == [0, 1, 3, 4, 7, 8]
    # DFEW setting on exactly 16 frames: every frame once (the seed's code would give sixteen 0s here)
    assert sample_clip_indices(16, 16, 1).tolist() == list(range(16))


def test_eval_short_videos_repeat_frames_in_time_order():
    # 5 frames < U*V = 8: 8 equal slices of the video, the middle frame of each
    assert sample_clip_indices(5, 4, 2).tolist() == [0, 0, 1, 2, 2, 3, 4, 4]
    # 3 frames, U=8, V=2
    assert sample_clip_indices(3, 8, 2).tolist() == [0] * 5 + [1] * 6 + [2] * 5
    # fewer frames than V
    assert sample_clip_indices(2, 2, 3).tolist() == [0, 0, 0, 1, 1, 1]
    assert sample_clip_indices(1, 8, 2).tolist() == [0] * 16


def test_eval_is_deterministic_and_ignores_the_rng():
    a = sample_clip_indices(57, 8, 2, rng=1)
    b = sample_clip_indices(57, 8, 2, rng=2)
    assert np.array_equal(a, b) and a.dtype == np.int64


def test_train_random_offsets_stay_in_their_segments():
    n, u, v = 100, 8, 2
    bounds = [(i * n) // u for i in range(u + 1)]  # 0, 12, 25, 37, 50, 62, 75, 87, 100
    seen = set()
    for seed in range(40):
        idx = sample_clip_indices(n, u, v, train=True, rng=seed).reshape(u, v)
        starts = idx[:, 0]
        assert np.all(idx[:, 1] == starts + 1)  # V consecutive frames
        assert all(bounds[i] <= starts[i] and starts[i] + v <= bounds[i + 1] for i in range(u))
        seen.add(tuple(starts))
    assert len(seen) > 30  # really random
    # every offset of a segment is reachable: segment 0 has 12 frames -> starts 0..10
    firsts = {int(sample_clip_indices(n, u, v, train=True, rng=s)[0]) for s in range(300)}
    assert firsts == set(range(11))
    # reproducible from a seed or a Generator
    assert np.array_equal(sample_clip_indices(n, u, v, train=True, rng=7), sample_clip_indices(n, u, v, train=True, rng=7))
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    assert np.array_equal(ClipSampling(u, v).indices(n, True, g1), ClipSampling(u, v).indices(n, True, g2))


def test_train_short_video_draws_one_random_frame_per_slice():
    seen = set()
    for seed in range(30):
        idx = sample_clip_indices(6, 8, 1, train=True, rng=seed)  # 6 frames < U*V = 8
        assert len(idx) == 8 and np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() <= 5
        # slice k covers frames [6k/8, 6(k+1)/8)
        assert all(int(6 * k / 8) <= idx[k] <= min(5, int(6 * (k + 1) / 8)) for k in range(8))
        seen.add(tuple(idx))
    assert len(seen) > 5
    assert sample_clip_indices(1, 4, 2, train=True, rng=0).tolist() == [0] * 8


@pytest.mark.parametrize("train", [False, True])
def test_indices_are_sorted_in_range_and_of_length_uv(train):
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 7, 15, 16, 17, 31, 64, 301]:
        for u, v in [(1, 1), (8, 2), (16, 1), (4, 3)]:
            idx = sample_clip_indices(n, u, v, train=train, rng=rng)
            assert idx.shape == (u * v,)
            assert idx.min() >= 0 and idx.max() < n
            assert np.all(np.diff(idx) >= 0)
            if n >= u * v:
                assert len(set(idx.tolist())) == u * v  # long enough: no frame is repeated


def test_presets_and_errors():
    assert CLIP_PRESETS["ferv39k"].length == 16 and CLIP_PRESETS["dfew"].length == 16
    with pytest.raises(ValueError):
        sample_clip_indices(0, 8, 2)
    with pytest.raises(ValueError):
        sample_clip_indices(10, 0, 2)


def test_gather_frames_list_array_tensor():
    idx = np.array([0, 2, 2])
    assert gather_frames(["a", "b", "c"], idx) == ["a", "c", "c"]
    arr = np.arange(12).reshape(3, 4)
    assert gather_frames(arr, idx).tolist() == [[0, 1, 2, 3], [8, 9, 10, 11], [8, 9, 10, 11]]
    t = torch.arange(3.0)
    assert gather_frames(t, idx).tolist() == [0.0, 2.0, 2.0]


def test_read_video_file_and_frame_folder(tmp_path):
    import cv2
    from PIL import Image

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(7):
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[..., 2] = 30 * i  # BGR: red grows with time
        writer.write(frame)
    writer.release()
    frames = read_video_frames(path)
    assert len(frames) == 7 and frames[0].shape == (24, 32, 3)
    reds = [int(round(f[..., 0].mean())) for f in frames]  # RGB after reading
    assert all(abs(r - 30 * i) <= 3 for i, r in enumerate(reds))
    clip, idx = sample_clip(frames, ClipSampling(2, 2))
    assert idx.tolist() == [0, 1, 4, 5] and len(clip) == 4  # segments [0,3) and [3,7)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(folder / f"{i:03d}.png")
    got = read_video_frames(folder)
    assert [int(f.mean()) for f in got] == [0, 10, 20]
    with pytest.raises(FileNotFoundError):
        read_video_frames(tmp_path / "missing.mp4")


def test_aggregate_clip_scores_by_hand():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # frame softmaxes: [.5, .5], [.8808, .1192]
    p = aggregate_clip_scores(logits)
    s = 1 / (1 + np.exp(-2.0))
    assert torch.allclose(p, torch.tensor([(0.5 + s) / 2, (0.5 + 1 - s) / 2], dtype=torch.float32), atol=1e-6)
    q = aggregate_clip_scores(logits, "mean_logit")  # softmax([1, 0])
    assert torch.allclose(q, torch.tensor([1 / (1 + np.exp(-1.0)), 1 - 1 / (1 + np.exp(-1.0))]).float(), atol=1e-6)
    assert aggregate_clip_scores(torch.zeros(3, 4, 7)).shape == (3, 7)
    with pytest.raises(ValueError):
        aggregate_clip_scores(torch.zeros(7))

"""Clips from camera video: U segments x V frames (seed 002's sampling), and clip-level scores.

Seed 002 (IAL, dynamic FER): *training* clips split the video evenly into U segments and take V
frames at a random offset in each; *test* clips split all frames into U segments and take the V
frames in the middle of each. A clip has ``T = U * V`` frames; the seed uses U=8, V=2 on FERV39k and
U=16, V=1 on DFEW. The V frames of a segment are consecutive, as in the seed's code.

Indices only depend on the frame count (and, for training, on the random generator), so an app can
pick the frames before decoding or aligning anything; they are always in time order. A video with
fewer than ``U * V`` frames is spread over the clip, frames repeating in order (the seed's code
instead restarts every segment at frame 0 when a video has at most ``U + V - 1`` frames). For
long videos our eval indices are within 2 frames of the seed code's (it centres windows over the
``N - V + 1`` start positions, we centre them in each segment; equal when U divides N, e.g. 32
frames, U=8, V=2); its training windows may cross a segment border, ours stay inside their segment.

The image models (LRDif, DDAMFN) score each sampled frame; :func:`aggregate_clip_scores` averages
their class probabilities into one clip prediction.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # frame files of a clip folder (udc.train.video_eval)


@dataclass(frozen=True)
class ClipSampling:
    segments: int = 8  # U
    frames_per_segment: int = 2  # V

    @property
    def length(self) -> int:
        """T = U * V frames per clip."""
        return self.segments * self.frames_per_segment

    def indices(self, num_frames: int, train: bool = False, rng: np.random.Generator | int | None = None
                ) -> np.ndarray:
        return sample_clip_indices(num_frames, self.segments, self.frames_per_segment, train=train, rng=rng)


CLIP_PRESETS = {
    "ferv39k": ClipSampling(8, 2),  # seed 002's FERV39k setting
    "dfew": ClipSampling(16, 1),  # seed 002's DFEW setting
}


def sample_clip_indices(num_frames: int, segments: int = 8, frames_per_segment: int = 2, *, train: bool = False,
                        rng: np.random.Generator | int | None = None) -> np.ndarray:
    """Frame indices ``[U * V]`` (int64, non-decreasing, within ``[0, num_frames)``) of one clip.

    The N frames are split into U segments ``[floor(u N / U), floor((u + 1) N / U))``. When every
    segment holds at least V frames (``N >= U * V``) each contributes V consecutive frames:
    its middle V (eval, deterministic) or V at a random offset inside it (``train=True``; ``rng``: a
    numpy Generator or a seed). Segments never overlap, so no frame repeats.
    Shorter videos (``N < U * V``) are split into ``U * V`` equal slices instead, one frame per slice:
    the slice's middle frame (eval) or a random frame of it (train); frames then repeat in time order.
    """
    n, u_count, v = int(num_frames), int(segments), int(frames_per_segment)
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if u_count < 1 or v < 1:
        raise ValueError(f"segments and frames_per_segment must be >= 1, got {segments}, {frames_per_segment}")
    gen = None
    if train:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    t = u_count * v
    if n < t:  # short video: T equal slices, one frame each
        k = np.arange(t, dtype=np.int64)
        if not train:
            return ((2 * k + 1) * n) // (2 * t)
        return np.minimum(np.floor((k + gen.random(t)) * n / t).astype(np.int64), n - 1)
    bounds = (np.arange(u_count + 1, dtype=np.int64) * n) // u_count  # segment u = [bounds[u], bounds[u+1])
    room = bounds[1:] - bounds[:-1] - v  # >= 0: free start positions - 1 in each segment
    if not train:
        starts = bounds[:-1] + room // 2  # the middle V frames
    else:
        starts = bounds[:-1] + gen.integers(0, room + 1)
    return (starts[:, None] + np.arange(v, dtype=np.int64)[None, :]).reshape(-1)


def gather_frames(frames, indices):
    """Pick ``frames[indices]`` from a list/tuple, a numpy array or a tensor (first axis = time)."""
    if isinstance(frames, torch.Tensor):
        return frames[torch.as_tensor(np.asarray(indices), dtype=torch.long)]
    if isinstance(frames, np.ndarray):
        return frames[np.asarray(indices)]
    return [frames[int(i)] for i in indices]


class VideoFrames(Sequence):
    """The frames of a video file or of a folder of frame images, decoded on demand (``len``, ``[i]``,
    iteration), never all held in memory: a one-minute 1080p clip is ~11 GB decoded.

    ``len`` counts the frames once without keeping them (OpenCV ``grab``, no colour conversion). ``[i]``
    decodes forward from the last position and keeps only the last frame, so reading indices in increasing
    order (what clip sampling does: :func:`sample_clip_indices` is non-decreasing) is one pass over the
    file; going back reopens it. A folder's ``[i]`` loads file ``i`` (name order)."""

    def __init__(self, path: str | Path):
        from .frames import IMAGE_SUFFIXES as FRAME_SUFFIXES

        self.path = Path(path)
        self._files: list[Path] | None = None
        if self.path.is_dir():
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        self._len: int | None = len(self._files) if self._files is not None else None
        self._cap = None
        self._pos = -1  # index of the frame in self._last
        self._last: np.ndarray | None = None

    # ------------------------------------------------------------------ video file access
    def _open(self):
        from .frames import open_video

        self.close()
        self._cap = open_video(self.path)
        self._pos, self._last = -1, None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def __len__(self) -> int:
        if self._len is None:
            from .frames import open_video

            cap = open_video(self.path)
            n = 0
            try:
                while cap.grab():
                    n += 1
            finally:
                cap.release()
            self._len = n
        return self._len

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {i} of a {n}-frame video")
        if self._files is not None:
            from .images import load_image

            return load_image(self._files[i])
        if self._cap is None or i < self._pos:
            self._open()
        if i == self._pos:
            return self._last
        while self._pos < i - 1:  # skip without converting
            if not self._cap.grab():
                raise IndexError(f"{self.path}: frame {i} could not be decoded (the file ends at {self._pos + 1})")
            self._pos += 1
        ok, bgr = self._cap.read()
        if not ok:
            raise IndexError(f"{self.path}: frame {i} could not be decoded (the file ends at {self._pos + 1})")
        self._pos, self._last = i, np.ascontiguousarray(bgr[:, :, ::-1])
        return self._last

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


def read_video_frames(path: str | Path) -> VideoFrames:
    """The frames of a video file (RGB uint8 ``[H, W, 3]``), or of a folder of frame images in name order
    (the DFEW/FERV39k layout), as a lazy sequence (:class:`VideoFrames`: ``len``, ``[i]``, iteration) that
    decodes a frame when it is asked for, so sampling 16 frames of a long clip holds 16 frames, not all of
    them. Decoding is OpenCV for video files (installed with mediapipe), as :func:`udc.sdk.faces.frames.iter_frames`.
    ``FileNotFoundError`` for a missing path, ``ValueError`` when no frame can be decoded."""
    from ..errors import ImageError

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(p)
    frames = VideoFrames(p)
    try:
        n = len(frames)
    except ImageError as e:  # callers prefix the path themselves (Recognizer.predict_video)
        raise ValueError(str(e).removeprefix(f"{p}: ")) from None
    if n == 0:
        if p.is_dir():
            from .frames import IMAGE_SUFFIXES as FRAME_SUFFIXES

            raise ValueError(f"a folder without frame images ({', '.join(sorted(FRAME_SUFFIXES))})")
        raise ValueError("could not decode any frame")
    return frames


def sample_clip(frames, sampling: ClipSampling = ClipSampling(), train: bool = False,
                rng: np.random.Generator | int | None = None):
    """``(clip frames, indices)`` for a decoded video (list / array / tensor with time first)."""
    idx = sampling.indices(len(frames), train=train, rng=rng)
    return gather_frames(frames, idx), idx


def aggregate_clip_scores(logits: torch.Tensor, how: str = "mean_prob") -> torch.Tensor:
    """Per-frame logits ``[T, K]`` (or ``[B, T, K]``) -> clip class probabilities ``[K]`` (or ``[B, K]``).

    ``mean_prob``: the mean of the frames' softmax probabilities; ``mean_logit``: softmax of the mean logit.
    """
    if logits.dim() not in (2, 3):
        raise ValueError(f"expected [T, K] or [B, T, K] logits, got shape {tuple(logits.shape)}")
    if how == "mean_prob":
        return logits.softmax(dim=-1).mean(dim=-2)
    if how == "mean_logit":
        return logits.mean(dim=-2).softmax(dim=-1)
    raise ValueError(f"how must be 'mean_prob' or 'mean_logit', got {how!r}")

"""Clip-level evaluation (``udc-eval --video``): one prediction per video from U x V sampled frames.

Dataset layout (the DFEW / FERV39k "frames" layout, or video files)::

    ROOT/<split>/<class>/<clip>/frame_0001.png ...   # a folder of frames per clip (name order = time)
    ROOT/<split>/<class>/<clip>.mp4                  # or a video file (.mp4 .avi .mov .mkv .webm, OpenCV)
    ROOT/landmarks68.npz                             # optional: [68, 2] points per frame

``<split>`` and ``<class>`` folder names are read like the image folder format
(``udc.train.datasets.folder``: ``train``/``val``/``test``, ``happy``/``1_Happy``/...). Landmarks are
looked up in ``ROOT/landmarks68.npz`` (``udc.train.landmark_store`` format) under the frame's path
relative to ROOT (``test/happiness/clip_003/0005.png``; for a video file ``test/happiness/a.mp4#12``,
the frame index after ``#``); frames not in it are detected with the SDK's face pipeline
(MediaPipe). The dataset is never written to.

Per clip: ``idx = sample_clip_indices(N, U, V)`` (eval rule, ``udc.sdk.faces.video``), only those frames
are read (frame folders) and aligned like training crops, every frame is scored by the model, and
``aggregate_clip_scores`` (mean of the frames' probabilities by default) gives the clip's class.
Frames without a face are dropped; a clip with no face in any sampled frame is counted as skipped.
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from udc.sdk.faces.align import align_face
from udc.sdk.labels import LABELS
from udc.sdk.console.quiet import show_progress  # progress bars on a terminal only, never in a log file
from udc.sdk.faces.video import IMAGE_SUFFIXES, aggregate_clip_scores, sample_clip_indices

from .data import Crops
from .datasets.base import DatasetError
from .datasets.folder import SPLIT_ALIASES, canonical_class
from .landmark_store import LANDMARKS_FILE, load_landmarks, save_landmarks
from .metrics import Metrics, confusion_matrix

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True)
class ClipRecord:
    key: str  # path relative to ROOT, forward slashes
    label: int  # index into LABELS
    path: Path  # frame folder or video file


def _dirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def _frame_files(clip_dir: Path) -> list[Path]:
    return sorted(f for f in clip_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def index_clips(root: str | Path, split: str) -> list[ClipRecord]:
    """The clips of one split (``ROOT/<split>/<class>/<clip>``); clips of unknown classes are left out."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"video dataset {root} is not a folder")
    splits = {SPLIT_ALIASES[d.name.lower()]: d for d in _dirs(root) if d.name.lower() in SPLIT_ALIASES}
    if not splits:
        raise DatasetError(f"{root}: expected ROOT/<split>/<class>/<clip>/ (split folders train/val/test), found none")
    if split not in splits:
        raise DatasetError(f"{root} has no '{split}' split (splits: {sorted(splits)})")
    clips = []
    for class_dir in _dirs(splits[split]):
        label = canonical_class(class_dir.name)
        if label is None:
            continue
        for entry in sorted(class_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            is_clip = (entry.is_dir() and _frame_files(entry)) or (entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES)
            if is_clip:
                clips.append(ClipRecord(entry.relative_to(root).as_posix(), LABELS.index(label), entry))
    if not clips:
        raise DatasetError(f"{root}/{splits[split].name}: no clips (folders of frames or video files) in class folders")
    return clips


def _read_frames(clip: ClipRecord, segments: int, frames_per_segment: int) -> tuple[list[str], list[np.ndarray]]:
    """(frame keys, RGB frames) of the clip's eval-sampled frames, in clip order (repeats kept)."""
    from udc.sdk.faces.images import load_image
    from udc.sdk.faces.video import read_video_frames

    if clip.path.is_dir():
        files = _frame_files(clip.path)
        idx = sample_clip_indices(len(files), segments, frames_per_segment)
        loaded = {int(i): load_image(files[int(i)]) for i in set(idx.tolist())}
        return [f"{clip.key}/{files[int(i)].name}" for i in idx], [loaded[int(i)] for i in idx]
    frames = read_video_frames(clip.path)
    idx = sample_clip_indices(len(frames), segments, frames_per_segment)
    return [f"{clip.key}#{int(i)}" for i in idx], [frames[int(i)] for i in idx]


@dataclass
class ClipFrames:
    crops: Crops  # every kept sampled frame, labelled with its clip's label
    clip_of: np.ndarray  # int [N]: the clip each crop belongs to (index into clips)
    clips: list[ClipRecord]
    skipped_clips: int  # clips with no face in any sampled frame
    dropped_frames: int  # sampled frames without a face


def prepare_clip_frames(root: str | Path, clips: list[ClipRecord], crop_size: int, segments: int = 8,
                        frames_per_segment: int = 2, detector=None, progress: bool = False) -> ClipFrames:
    from tqdm import tqdm

    known = load_landmarks(Path(root) / LANDMARKS_FILE)
    imgs, lms, labels, keys, clip_of = [], [], [], [], []
    kept_clips, skipped, dropped = [], 0, 0
    for clip in tqdm(clips, desc="clips", unit="clip", disable=not (progress and show_progress())):
        frame_keys, frames = _read_frames(clip, segments, frames_per_segment)
        got = 0
        for key, rgb in zip(frame_keys, frames):
            lm = known.get(key)
            if lm is None:
                if detector is None:
                    from udc.sdk.faces.detect import MediaPipeFaceMesh

                    detector = MediaPipeFaceMesh()
                faces = detector.detect(rgb)
                lm = faces[0].landmarks if faces else None
            if lm is None or not np.isfinite(lm).all():
                dropped += 1
                continue
            crop, lm_crop, _ = align_face(rgb, np.asarray(lm, np.float32), crop_size)
            imgs.append(crop)
            lms.append(lm_crop)
            labels.append(clip.label)
            keys.append(key)
            clip_of.append(len(kept_clips))
            got += 1
        if got:
            kept_clips.append(clip)
        else:
            skipped += 1
    s = crop_size
    crops = Crops(np.stack(imgs) if imgs else np.zeros((0, s, s, 3), np.uint8),
                  np.stack(lms).astype(np.float32) if lms else np.zeros((0, 68, 2), np.float32),
                  np.array(labels, dtype=np.int64), keys, [hashlib.sha256(k.encode()).hexdigest()[:32] for k in keys])
    return ClipFrames(crops, np.array(clip_of, dtype=np.int64), kept_clips, skipped, dropped)


def clip_metrics(frame_logits: torch.Tensor, frames: ClipFrames, labels: tuple[str, ...],
                 how: str = "mean_prob") -> Metrics:
    """One prediction per clip: ``aggregate_clip_scores`` over the clip's frames, then argmax."""
    preds = []
    for c in range(len(frames.clips)):
        sel = torch.from_numpy(np.flatnonzero(frames.clip_of == c))
        preds.append(int(aggregate_clip_scores(frame_logits[sel], how).argmax()))
    pred = np.array(preds, dtype=np.int64)
    truth = np.array([c.label for c in frames.clips], dtype=np.int64)
    return Metrics(confusion_matrix(truth, pred, len(labels)), tuple(labels), pred)


def generate_clip_dataset(root: str | Path, clips_per_class: dict[str, int], frames: int = 6, size: int = 64,
                          seed: int = 0, onset: int = 2) -> Path:
    """A small synthetic frame-folder video set (tests, demos): ``ROOT/<split>/<label>/clip_XXX/NNNN.png``.

    Each clip is one synthetic person (``udc.train.synthetic``): ``onset`` neutral frames, then the
    clip's expression. Landmarks go to ``ROOT/landmarks68.npz`` keyed by frame path.
    """
    from PIL import Image

    from .synthetic.render import render_face

    root = Path(root)
    points = {}
    for split, n in clips_per_class.items():
        for label_idx, label in enumerate(LABELS):
            for c in range(n):
                clip_dir = root / split / label / f"clip_{c:03d}"
                clip_dir.mkdir(parents=True, exist_ok=True)
                for t in range(frames):
                    shown = 0 if t < onset else label_idx
                    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), label_idx, c])
                    img, lm = render_face(rng, shown, size)
                    Image.fromarray(img).save(clip_dir / f"{t:04d}.png")
                    points[f"{split}/{label}/clip_{c:03d}/{t:04d}.png"] = lm
    save_landmarks(root / LANDMARKS_FILE, points)
    return root

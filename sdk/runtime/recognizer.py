"""Run a bundle on photos and video: the SDK's one-call API.

    from udc.sdk.runtime.recognizer import Recognizer

    rec = Recognizer.load("face.udc")                  # runtime="auto" | "torch" | "executorch" | "onnxruntime" | "coreml"
    p = rec.predict("selfie.jpg")                      # path, PIL image or numpy array
    p.label, p.confidence, p.probs, p.box, p.landmarks, p.timings
    rec.predict_batch(["a.jpg", "b.jpg"])
    for frame in rec.stream("clip.mp4", history=8, smoothing="mean"):   # per-face tracks over frames
        for face in frame.faces: print(frame.index, face.track_id, face.label)
    clip = rec.predict_video("clip.mp4", segments=8, frames_per_segment=2)   # one label per clip (seed 002)
    clip.label, clip.probs, clip.indices, clip.frames

``load`` validates the manifest against its schema and checks every file's size and sha256 (a
tampered or truncated bundle is refused with :class:`udc.sdk.runtime.bundle.BundleError`), checks that the
runtime can run the bundle's target on this host (Core ML only on macOS) and loads each component.
``predict`` runs what an app runs: decode -> face detection + 68 landmarks (MediaPipe) -> similarity
alignment to the manifest's crop -> the manifest's normalisation -> clip_image -> fpen_s2 -> denoiser ->
udcformer -> softmax. The denoiser's initial noise is drawn once per recognizer from ``noise_seed``
(the manifest's N(0, I)), so the same image always gets the same answer on every runtime.
A DDAMFN bundle (manifest ``family: ddamfn``) runs the same face pipeline (the landmarks align the
crop) and then its one component on the image alone: no landmarks and no noise reach the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .bundle import Bundle, BundleError, load_bundle
from .chain import Chain, load_chain
from ..errors import NoFaceError
from ..faces.align import align_face, check_landmarks
from ..faces.images import ImageInput, load_image
from ..models.registry import manifest_family
from .preprocess import normalize_crops
from .runners import resolve_runtime


@dataclass
class Prediction:
    label: str
    confidence: float
    probs: dict[str, float]  # label -> probability, in the manifest's label order
    logits: list[float]
    box: tuple[float, float, float, float]  # face box (x0, y0, x1, y1), input-image pixels
    landmarks: np.ndarray  # [68, 2] input-image pixels (iBUG order)
    landmarks_crop: np.ndarray  # [68, 2] crop units 0..1: what the model received
    num_faces: int
    timings: dict[str, float]  # milliseconds per stage, plus "model" and "total"
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "label": self.label, "confidence": self.confidence, "probs": self.probs,
            "logits": self.logits, "box": list(self.box), "landmarks": np.round(self.landmarks, 2).tolist(),
            "num_faces": self.num_faces, "timings_ms": {k: round(v, 4) for k, v in self.timings.items()},
        }


class ParityWarning(UserWarning):
    """A bundle whose export-time parity check failed (or was never decided) is being used."""


def check_usable(bundle: Bundle, allow_failed_parity: bool = True) -> None:
    """Refuse what an app must not run: a ``partial`` bundle (debug export of some components) always, and a
    bundle whose recorded parity failed unless ``allow_failed_parity`` (then a :class:`ParityWarning`)."""
    import warnings

    m, name = bundle.manifest, bundle.path.name
    if m.get("partial"):
        comps = ", ".join(m["partial"].get("components", [])) or "some components"
        raise BundleError(f"{name} is a partial bundle ({comps} only, exported with udc-export --components for "
                          "debugging): apps refuse it; export the whole model (no --components)")
    passed = (m.get("parity") or {}).get("passed")
    if passed is True:
        return
    what = ("failed its export parity check (see manifest.json 'parity': its outputs differ from the PyTorch "
            "reference beyond the thresholds of its quant mode)" if passed is False else
            "has no parity verdict in its manifest (never checked against the PyTorch reference)")
    if not allow_failed_parity:
        raise BundleError(f"{name} {what}: refused (allow_failed_parity=True to use it anyway, or re-export it)")
    warnings.warn(f"{name} {what}: its predictions may not be the model's", ParityWarning, stacklevel=3)


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, np.float64) - np.max(x)
    e = np.exp(z)
    return e / e.sum()


def sdk_overhead_ms(t: dict[str, float]) -> float:
    """Time spent in the SDK around the model: everything but decoding, face detection and the components."""
    return max(0.0, t["total"] - t.get("decode", 0.0) - t.get("detect", 0.0) - t["model"])


class Recognizer:
    def __init__(self, bundle: Bundle, chain: Chain, *, detector=None, noise_seed: int = 0):
        self.bundle = bundle
        self.chain = chain
        m = bundle.manifest
        pre = m["preprocessing"]
        self.labels: list[str] = list(m["labels"])
        self.crop_size = int(pre["crop_size"])
        self.scale = float(pre.get("scale", 1.0 / 255.0))
        self.mean = np.asarray(pre["mean"], np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(pre["std"], np.float32).reshape(1, 3, 1, 1)
        self.family = manifest_family(m)
        self.noise_seed = noise_seed
        diffusion = m.get("diffusion")
        # LRDif: the denoiser's initial noise, drawn once; DDAMFN has no diffusion section and takes no noise
        self.noise = draw_noise(int(diffusion["noise"]["shape"][-1]), noise_seed) if diffusion else None
        self._detector = detector

    # ------------------------------------------------------------------------------------ loading
    @classmethod
    def load(cls, bundle: str | Path | Bundle, runtime: str = "auto", *, reference: str | Path | None = None,
             threads: int | None = None, fused: bool = False, detector=None, noise_seed: int = 0,
             allow_failed_parity: bool = True) -> "Recognizer":
        """Verify ``bundle`` (schema + every sha256), check ``runtime`` on this host, load the components.

        A ``partial`` bundle (``udc-export --components``) is refused (:class:`udc.sdk.runtime.bundle.BundleError`). A
        bundle whose export parity failed loads with a :class:`ParityWarning`, or is refused with
        ``allow_failed_parity=False`` (:class:`udc.sdk.runtime.bundle.BundleError`).

        ``reference`` is the checkpoint the bundle was exported from, needed only for ``runtime="torch"``
        when the manifest's path no longer exists (random-init bundles need none). ``threads`` sizes the
        runtime's CPU thread pool. ``detector`` replaces MediaPipe (anything with ``detect(rgb)``).
        """
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, verify=True)
        if isinstance(bundle, Bundle):
            b.verify()
        m = b.manifest
        check_usable(b, allow_failed_parity)
        name = resolve_runtime(runtime, m["target"], m.get("backend"))
        chain = load_chain(b, name, reference=reference, threads=threads, fused=fused)
        return cls(b, chain, detector=detector, noise_seed=noise_seed)

    @property
    def runtime(self) -> str:
        return self.chain.runtime

    @property
    def detector(self):
        if self._detector is None:
            from ..faces.detect import MediaPipeFaceMesh

            self._detector = MediaPipeFaceMesh()
        return self._detector

    # ------------------------------------------------------------------------------------ model
    def preprocess(self, crop: np.ndarray) -> np.ndarray:
        """uint8 ``[S,S,3]`` aligned crop -> ``[1,3,S,S]`` float32 with the manifest's scale/mean/std."""
        return normalize_crops(crop, self.scale, self.mean, self.std)

    def run_model(self, crop: np.ndarray, landmarks_crop: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """``(logits [K], timings)`` for one aligned crop and its 68 landmarks in crop units."""
        t0 = time.perf_counter()
        inputs = {"image": self.preprocess(crop)}
        if self.family == "lrdif":
            inputs["landmarks"] = np.ascontiguousarray(landmarks_crop, np.float32).reshape(1, 68, 2)
            inputs["noise"] = self.noise
        t1 = time.perf_counter()
        logits, ms = self.chain.run(inputs)
        timings = {"preprocess": (t1 - t0) * 1e3, **ms, "model": sum(ms.values())}
        return np.asarray(logits, np.float32).reshape(-1), timings

    def _predict_face(self, rgb: np.ndarray, lm_image: np.ndarray, box, num_faces: int, timings: dict[str, float],
                      t_start: float, source: str | None) -> Prediction:
        t0 = time.perf_counter()
        crop, lm_crop_px, _ = align_face(rgb, lm_image, self.crop_size)
        timings = {**timings, "align": (time.perf_counter() - t0) * 1e3}
        lm_crop = lm_crop_px / self.crop_size
        logits, mt = self.run_model(crop, lm_crop)
        t1 = time.perf_counter()
        p = softmax(logits)
        k = int(np.argmax(p))
        timings.update(mt)
        timings["postprocess"] = (time.perf_counter() - t1) * 1e3
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        return Prediction(self.labels[k], float(p[k]), {lab: float(v) for lab, v in zip(self.labels, p)},
                          [float(v) for v in logits], tuple(float(v) for v in box), np.asarray(lm_image, np.float32),
                          lm_crop.astype(np.float32), num_faces, timings, source)

    # ------------------------------------------------------------------------------------ public
    def predict(self, image: ImageInput, landmarks: np.ndarray | None = None) -> Prediction:
        """The largest face of ``image``. ``landmarks`` ([68,2] image pixels) skips face detection.
        :class:`udc.sdk.errors.NoFaceError` when no face is found, :class:`ImageError` for bad input."""
        return self._predict(image, landmarks, all_faces=False)[0]

    def predict_faces(self, image: ImageInput) -> list[Prediction]:
        """Every face of ``image`` (largest first); an empty list when there is none."""
        return self._predict(image, None, all_faces=True)

    def predict_batch(self, images: Sequence[ImageInput], skip_no_face: bool = False) -> list[Prediction | None]:
        """One prediction per image (the components run at batch 1, one image after another). With
        ``skip_no_face`` an image without a face gives ``None`` instead of raising."""
        out: list[Prediction | None] = []
        for img in images:
            try:
                out.append(self.predict(img))
            except NoFaceError:
                if not skip_no_face:
                    raise
                out.append(None)
        return out

    def _predict(self, image: ImageInput, landmarks, all_faces: bool) -> list[Prediction]:
        t_start = time.perf_counter()
        source = str(image) if isinstance(image, (str, Path)) else None
        rgb = load_image(image)
        t1 = time.perf_counter()
        timings = {"decode": (t1 - t_start) * 1e3}
        if landmarks is not None:
            lm = check_landmarks(landmarks, "landmarks given to predict").astype(np.float32)  # LandmarksError, one line
            (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
            faces = [(lm, (x0, y0, x1, y1))]
            timings["detect"] = 0.0
        else:
            found = self.detector.detect(rgb)
            timings["detect"] = (time.perf_counter() - t1) * 1e3
            faces = [(f.landmarks, f.box) for f in found]
            if not faces:
                if all_faces:
                    return []
                h, w = rgb.shape[:2]
                raise NoFaceError(f"no face found in the {w}x{h} image{' ' + source if source else ''}: use a photo "
                                  "with a visible, roughly frontal face")
        if not all_faces:
            faces = faces[:1]
        n = len(faces)
        preds = []
        for lm, box in faces:
            preds.append(self._predict_face(rgb, lm, box, n, timings, t_start, source))
            t_start = time.perf_counter()  # the next face's total counts its own alignment + model only
        return preds

    def stream(self, frames: Iterable[ImageInput] | str | Path, *, history: int = 8, smoothing: str = "mean",
               alpha: float = 0.5, iou_threshold: float = 0.3, max_missed: int = 5, every: int = 1,
               limit: int | None = None) -> Iterator["FrameResult"]:
        """Predict every face of every frame and follow faces across frames (see :mod:`udc.sdk.faces.tracking`).

        ``frames``: an iterable of images, a video file (OpenCV), a directory of images (sorted by name)
        or an animated image. Each track keeps its last ``history`` predictions; ``smoothing`` is
        ``"none"``, ``"mean"`` (average probabilities over the history) or ``"ema"`` (factor ``alpha``).
        """
        from ..faces.frames import iter_frames
        from ..faces.tracking import FaceTracker, FrameResult

        tracker = FaceTracker(history=history, smoothing=smoothing, alpha=alpha, iou_threshold=iou_threshold,
                              max_missed=max_missed)
        for index, frame in iter_frames(frames, every=every, limit=limit):
            t0 = time.perf_counter()
            preds = self.predict_faces(frame)
            faces = tracker.update(preds, self.labels)
            yield FrameResult(index, faces, (time.perf_counter() - t0) * 1e3)


    def predict_video(self, video: str | Path | Sequence[ImageInput], segments: int = 8, frames_per_segment: int = 2,
                      aggregate: str = "mean_prob") -> "ClipPrediction":
        """One expression for a clip, as seed 002 (IAL) scores videos: ``U = segments`` equal segments of the
        frames, the middle ``V = frames_per_segment`` frames of each (:func:`udc.sdk.faces.video.sample_clip_indices`,
        evaluation rule), the largest face of each sampled frame through :meth:`predict`, then the mean of
        the frames' probabilities (``aggregate="mean_logit"``: softmax of the mean logit).

        ``video``: a video file (OpenCV), a folder of frame images (name order) or a sequence of images.
        Sampled frames without a face are left out of the mean (listed in ``skipped``); no face in any of
        them raises :class:`NoFaceError`. A frame sampled twice (videos shorter than ``U * V``) is run once
        and counted twice, as the clip holds it twice.
        """
        import torch

        from ..faces.video import ClipSampling, aggregate_clip_scores

        t0 = time.perf_counter()
        source = str(video) if isinstance(video, (str, Path)) else None
        if isinstance(video, (str, Path)):
            from ..faces.video import read_video_frames

            try:
                frames: Sequence[ImageInput] = read_video_frames(video)
            except FileNotFoundError:
                from ..errors import ImageError

                raise ImageError(f"{video}: no such video file or frame folder") from None
            except ValueError as e:
                from ..errors import ImageError

                raise ImageError(f"{video}: {e}") from None
        else:
            frames = list(video)
        if not frames:
            from ..errors import ImageError

            raise ImageError("predict_video got no frames")
        sampling = ClipSampling(int(segments), int(frames_per_segment))
        idx = [int(i) for i in sampling.indices(len(frames))]
        t_decode = (time.perf_counter() - t0) * 1e3
        by_index: dict[int, Prediction | None] = {}
        for i in dict.fromkeys(idx):
            try:
                by_index[i] = self.predict(frames[i])
            except NoFaceError:
                by_index[i] = None
        used = [i for i in idx if by_index[i] is not None]
        skipped = sorted({i for i in idx if by_index[i] is None})
        if not used:
            raise NoFaceError(f"no face in any of the {len(set(idx))} sampled frames of "
                              f"{source or 'the clip'} ({len(frames)} frames): use a clip with a visible face")
        logits = torch.tensor(np.stack([by_index[i].logits for i in used]), dtype=torch.float32)
        probs = aggregate_clip_scores(logits, aggregate).numpy().astype(np.float64)
        k = int(np.argmax(probs))
        preds = [by_index[i] for i in dict.fromkeys(used)]
        timings = {"decode": t_decode, "model": sum(p.timings["model"] for p in preds),
                   "total": (time.perf_counter() - t0) * 1e3}
        return ClipPrediction(self.labels[k], float(probs[k]), {lab: float(v) for lab, v in zip(self.labels, probs)},
                              len(frames), idx, used, skipped, {i: by_index[i] for i in dict.fromkeys(used)},
                              int(segments), int(frames_per_segment), aggregate, timings, source)


@dataclass
class ClipPrediction:
    label: str
    confidence: float
    probs: dict[str, float]  # aggregated over the used frames, in the manifest's label order
    num_frames: int  # frames in the video
    indices: list[int]  # the U*V sampled frame indices (time order, may repeat for short videos)
    used: list[int]  # the sampled indices with a face (what the mean is over)
    skipped: list[int]  # sampled frames without a face
    frames: dict[int, Prediction]  # frame index -> its prediction
    segments: int
    frames_per_segment: int
    aggregate: str
    timings: dict[str, float]  # ms: decode (all frames), model (sum over the distinct frames run), total
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "label": self.label, "confidence": self.confidence, "probs": self.probs,
            "num_frames": self.num_frames, "segments": self.segments, "frames_per_segment": self.frames_per_segment,
            "aggregate": self.aggregate, "indices": self.indices, "used": self.used, "skipped": self.skipped,
            "frame_labels": {str(i): p.label for i, p in self.frames.items()},
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
        }


def draw_noise(dim: int, seed: int = 0) -> np.ndarray:
    """The denoiser's initial noise ``[1, dim]`` ~ N(0, I), reproducible from ``seed`` (torch's generator)."""
    import torch

    return torch.randn(1, dim, generator=torch.Generator().manual_seed(seed)).numpy()


__all__ = ["ClipPrediction", "ParityWarning", "Prediction", "Recognizer", "check_usable", "draw_noise", "sdk_overhead_ms", "softmax"]

"""The face pipeline shared by training, the SDK and (by contract) the apps:
image -> detect the face -> 68 landmarks -> similarity-align to the canonical face -> square crop.

    pipe = FacePipeline(crop_size=224)
    face = pipe("selfie.jpg")          # FaceCrop: crop, landmarks (0..1 crop units), box, num_faces
    x = to_model_input([face.image], cfg.mean, cfg.std)   # [1, 3, S, S] float32
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import NoFaceError
from .align import align_face, check_landmarks
from .images import ImageInput, load_image

#: How a face crop got its 68 landmarks (:func:`crop_landmarks`; counted by the landmark cache).
#: ``detected``: the detector on the image as it is; ``upscaled``: the detector on the crop enlarged and
#: padded; ``canonical``: no face found, the canonical 68-point face laid over the whole crop (the crop is
#: taken as already aligned); ``failed``: no landmarks (the face is scored as wrong, never dropped).
CROP_PATHS = ("detected", "upscaled", "canonical", "failed")
#: Images at most this large (longer side, px) and at most 1.25:1 are taken as face crops by ``auto``.
CROP_MAX_SIDE = 256
#: The upscaled retries, in order, until one finds a face: (side px the crop is enlarged to, border as a
#: fraction of that side, histogram-equalised first). Chosen on FER2013 crops MediaPipe misses as they are:
#: each retry rescues a different few (measured on 21 misses in 300 test crops: 5, 7 and 7 of them; 9 together).
UPSCALE_TRIES = ((256, 0.25, False), (256, 0.10, False), (256, 0.25, True))


def is_face_crop(shape) -> bool:
    """True for a small, near-square image (FER2013's 48x48, RAF-DB's aligned 100x100, ...)."""
    h, w = int(shape[0]), int(shape[1])
    return max(h, w) <= CROP_MAX_SIDE and max(h, w) <= 1.25 * min(h, w)


def canonical_crop_landmarks(width: int, height: int) -> np.ndarray:
    """The canonical 68 points (:func:`udc.sdk.faces.landmarks.canonical_landmarks`) stretched over a whole
    ``width`` x ``height`` crop: aligning with them maps the crop onto the model's crop as it is."""
    from .landmarks import canonical_landmarks

    return (canonical_landmarks().numpy() * np.array([width, height], np.float32)).astype(np.float32)


def detect_upscaled(rgb: np.ndarray, detector, tries=UPSCALE_TRIES) -> np.ndarray | None:
    """The largest face's 68 landmarks (``rgb``'s pixels) found on ``rgb`` enlarged (bicubic) and padded
    (replicated border), trying each ``(side, pad, equalize)`` of ``tries`` in turn; None if none finds one."""
    from PIL import Image, ImageOps

    h, w = rgb.shape[:2]
    for side, pad, equalize in tries:
        f = side / max(h, w)
        img = Image.fromarray(rgb)
        if equalize:
            img = ImageOps.equalize(img)
        big = np.asarray(img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC))
        p = int(round(pad * side))
        faces = detector.detect(np.pad(big, ((p, p), (p, p), (0, 0)), mode="edge"))
        if not faces:
            continue
        lm = (np.asarray(faces[0].landmarks, np.float64) - p) * np.array([w / big.shape[1], h / big.shape[0]])
        if np.isfinite(lm).all():
            return lm.astype(np.float32)
    return None


def crop_landmarks(rgb: np.ndarray, detector, *, fallback: bool = True) -> tuple[np.ndarray | None, str]:
    """``(landmarks [68, 2] image pixels or None, path)`` for an image that is already a face crop.

    ``path`` is one of :data:`CROP_PATHS`: the detector on the image; if it finds nothing and ``fallback``,
    the detector on the crop upscaled and padded (:func:`detect_upscaled`), then the canonical face over
    the whole crop (:func:`canonical_crop_landmarks`). Without ``fallback`` a miss is ``(None, "failed")``.
    """
    faces = detector.detect(rgb)
    if faces:
        return np.asarray(faces[0].landmarks, np.float32), "detected"
    if not fallback:
        return None, "failed"
    lm = detect_upscaled(rgb, detector)
    if lm is not None:
        return lm, "upscaled"
    h, w = rgb.shape[:2]
    return canonical_crop_landmarks(w, h), "canonical"


@dataclass
class FaceCrop:
    image: np.ndarray  # uint8 [S, S, 3] aligned crop
    landmarks: np.ndarray  # float32 [68, 2] in crop units (0..1), what the model takes
    box: tuple[float, float, float, float]  # face box in the input image's pixels
    landmarks_image: np.ndarray  # float32 [68, 2] in the input image's pixels
    num_faces: int  # faces found (the largest is used)
    transform: np.ndarray  # 2x3 image -> crop pixels


class FacePipeline:
    def __init__(self, crop_size: int = 224, detector=None):
        self.crop_size = crop_size
        self._detector = detector

    @property
    def detector(self):
        if self._detector is None:
            from .detect import MediaPipeFaceMesh

            self._detector = MediaPipeFaceMesh()
        return self._detector

    def __call__(self, image: ImageInput, landmarks: np.ndarray | None = None) -> FaceCrop:
        """Align the largest face; pass ``landmarks`` ([68,2] image pixels) to skip detection."""
        rgb = load_image(image)
        if landmarks is None:
            faces = self.detector.detect(rgb)
            if not faces:
                h, w = rgb.shape[:2]
                raise NoFaceError(f"no face found in the {w}x{h} image"
                                  + (f" {image}" if isinstance(image, (str,)) else "")
                                  + ": use a photo with a visible, roughly frontal face")
            face, n, lm = faces[0], len(faces), faces[0].landmarks
            box = face.box
        else:
            lm = check_landmarks(landmarks).astype(np.float32)
            (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
            box, n = (float(x0), float(y0), float(x1), float(y1)), 1
        crop, lm_crop, m = align_face(rgb, lm, self.crop_size)
        return FaceCrop(crop, lm_crop / self.crop_size, box, lm.astype(np.float32), n, m)


def to_model_input(images, mean, std) -> torch.Tensor:
    """uint8 ``[S,S,3]`` crops -> CLIP-normalised float32 ``[B, 3, S, S]``."""
    x = torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

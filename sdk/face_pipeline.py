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

from .errors import NoFaceError
from .face_align import align_face
from .images import ImageInput, load_image


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
            from .face_detect import MediaPipeFaceMesh

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
            lm = np.asarray(landmarks, np.float32).reshape(68, 2)
            (x0, y0), (x1, y1) = lm.min(0), lm.max(0)
            box, n = (float(x0), float(y0), float(x1), float(y1)), 1
        crop, lm_crop, m = align_face(rgb, lm, self.crop_size)
        return FaceCrop(crop, lm_crop / self.crop_size, box, lm.astype(np.float32), n, m)


def to_model_input(images, mean, std) -> torch.Tensor:
    """uint8 ``[S,S,3]`` crops -> CLIP-normalised float32 ``[B, 3, S, S]``."""
    x = torch.from_numpy(np.stack([np.asarray(i) for i in images])).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

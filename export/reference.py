"""The PyTorch reference on a face set: every component's inputs and outputs, batched, float32.

Components are exported with batch 1, so exported programs (and quantized PT2E modules) run one
sample at a time (:func:`per_sample`); the reference runs batched. ``downstream_logits`` finishes
the chain in float from any component's output: the end-to-end effect of one exported component.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from udc.sdk.models.components import COMPONENT_INPUTS, COMPONENT_OUTPUT, COMPONENTS, LOGIT_COMPONENTS, chain_of, reference_outputs

from .quant.calibration import FaceSet

#: Input names of every component, in call order (as :func:`udc.sdk.models.components.on_device_components`).
INPUTS = COMPONENT_INPUTS
OUTPUT = COMPONENT_OUTPUT
CHAIN = COMPONENTS  # LRDif's chain; a model's own: chain_of(model)
__all__ = ["CHAIN", "INPUTS", "LOGIT_COMPONENTS", "OUTPUT", "ReferenceIO", "chain_of", "downstream_logits",
           "per_sample", "reference_io"]


@dataclass
class ReferenceIO:
    faces: FaceSet
    tensors: dict[str, torch.Tensor]  # image, landmarks, noise, image_features, condition, epr, logits

    def __len__(self) -> int:
        return len(self.faces)

    def inputs(self, component: str) -> dict[str, torch.Tensor]:
        return {k: self.tensors[k] for k in INPUTS[component]}

    def output(self, component: str) -> torch.Tensor:
        return self.tensors[OUTPUT[component]]

    def head(self, n: int) -> "ReferenceIO":
        """The first ``n`` faces (all of them when there are fewer), every tensor sliced alike."""
        f = self.faces
        faces = replace(f, images=f.images[:n], landmarks=f.landmarks[:n], noise=f.noise[:n], labels=f.labels[:n])
        return ReferenceIO(faces, {k: v[:n] for k, v in self.tensors.items()})

    def take(self, indices: Sequence[int]) -> "ReferenceIO":
        """The faces at ``indices``, in that order, every tensor indexed alike."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        f = self.faces
        faces = replace(f, images=f.images[idx], landmarks=f.landmarks[idx], noise=f.noise[idx],
                        labels=f.labels[idx.numpy()])
        return ReferenceIO(faces, {k: v[idx] for k, v in self.tensors.items()})

    def sample(self, component: str, i: int) -> tuple[torch.Tensor, ...]:
        """Batch-1, contiguous inputs of sample ``i`` (canonical strides, what export and runtimes want)."""
        return tuple(_canonical(self.tensors[k][i:i + 1]) for k in INPUTS[component])


def _canonical(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype).copy_(t)


@torch.no_grad()
def reference_io(model, faces: FaceSet, batch: int = 64) -> ReferenceIO:
    out: dict[str, list[torch.Tensor]] = {}
    for s in range(0, len(faces), batch):
        x, lm, nz = faces.images[s:s + batch], faces.landmarks[s:s + batch], faces.noise[s:s + batch]
        for k, v in reference_outputs(model, x, lm, nz).items():
            out.setdefault(k, []).append(v)
    tensors = {k: torch.cat(v) for k, v in out.items()}
    tensors.update(image=faces.images, landmarks=faces.landmarks, noise=faces.noise)
    return ReferenceIO(faces, tensors)


@torch.no_grad()
def downstream_logits(model, component: str, output: torch.Tensor, ref: ReferenceIO,
                      batch: int = 64) -> torch.Tensor:
    """Logits when ``component`` produced ``output`` and every later component is the float reference."""
    if component in LOGIT_COMPONENTS:
        return output
    t = ref.tensors
    logits = []
    for s in range(0, len(ref), batch):
        sl = slice(s, s + batch)
        v = output[sl]
        if component == "clip_image":
            v = model.fpen_s2(v)
        if component in ("clip_image", "fpen_s2"):
            v = model.diffusion(v, t["noise"][sl])
        logits.append(model.udcformer(t["image"][sl], t["landmarks"][sl], v))
    return torch.cat(logits)


def per_sample(fn: Callable[..., Sequence[torch.Tensor] | torch.Tensor], ref: ReferenceIO, component: str,
               inputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``fn(*batch1_inputs)`` for every sample, outputs stacked ``[N, ...]`` (first output)."""
    outs = []
    n = len(ref)
    for i in range(n):
        if inputs is None:
            args = ref.sample(component, i)
        else:
            args = tuple(_canonical(inputs[k][i:i + 1]) for k in INPUTS[component])
        o = fn(*args)
        o = o[0] if isinstance(o, (list, tuple)) else o
        outs.append(torch.as_tensor(np.asarray(o)) if not isinstance(o, torch.Tensor) else o.detach())
    return torch.cat(outs).float()


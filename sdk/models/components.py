"""The four on-device components of LRDif (and the fused pipeline), each with named, static-shape
example inputs: what ``udc-export`` lowers and what every runtime is checked against.

    clip_image : image [B,3,S,S]                          -> image_features [B,D]
    fpen_s2    : image_features [B,D]                     -> condition [B,C]
    denoiser   : condition [B,C], noise [B,C]             -> epr [B,C]       (all T steps unrolled)
    udcformer  : image [B,3,S,S], landmarks [B,68,2], epr -> logits [B,K]
    pipeline   : image, landmarks, noise                  -> logits          (the four in one graph)

DDAMFN (``family == "ddamfn"``) has one component and takes only the image (ImageNet mean/std):

    ddamfn     : image [B,3,S,S]                          -> logits [B,K]

The tables below (chain, inputs, outputs per component) are what the exporter, the SDK's chain and
parity runs and the manifest's wiring/execution sections all read, for either family.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..faces.landmarks import canonical_landmarks
from .lrdif.model import LRDif

COMPONENTS = ("clip_image", "fpen_s2", "denoiser", "udcformer")
DDAMFN_COMPONENTS = ("ddamfn",)
#: The components an app runs one after the other, per model family.
FAMILY_CHAIN = {"lrdif": COMPONENTS, "ddamfn": DDAMFN_COMPONENTS}
#: Input names of every component, in call order.
COMPONENT_INPUTS = {
    "clip_image": ("image",),
    "fpen_s2": ("image_features",),
    "denoiser": ("condition", "noise"),
    "udcformer": ("image", "landmarks", "epr"),
    "pipeline": ("image", "landmarks", "noise"),
    "ddamfn": ("image",),
}
#: The (first) output of every component.
COMPONENT_OUTPUT = {"clip_image": "image_features", "fpen_s2": "condition", "denoiser": "epr", "udcformer": "logits",
                    "pipeline": "logits", "ddamfn": "logits"}
#: Components whose output is the class logits.
LOGIT_COMPONENTS = ("udcformer", "pipeline", "ddamfn")


@dataclass
class Component:
    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]  # name -> example tensor (fixes every shape)
    outputs: tuple[str, ...]


class Pipeline(nn.Module):
    """All four components in one call (fewer dispatches on a phone)."""

    def __init__(self, model: LRDif):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model(image, landmarks, noise)


def family_of(model) -> str:
    from .registry import model_family

    return model_family(model)


def chain_of(model) -> tuple[str, ...]:
    """The on-device components of ``model``'s family, in call order."""
    return FAMILY_CHAIN[family_of(model)]


def noise_dim(model) -> int:
    """Width of the denoiser's noise input (0 for a family without one)."""
    return int(model.cfg.fpen.epr_dim) if family_of(model) == "lrdif" else 0


def example_inputs(model, batch: int = 1, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Deterministic model inputs: a normalised random image (the config's mean/std), and for LRDif the
    canonical face and unit noise."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    image = torch.rand(batch, 3, s, s, generator=g)
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    if family_of(model) == "ddamfn":
        return {"image": ((image - mean) / std).to(device)}
    c = cfg.fpen.epr_dim
    return {
        "image": ((image - mean) / std).to(device),
        "landmarks": canonical_landmarks().expand(batch, -1, -1).contiguous().to(device),
        "noise": torch.randn(batch, c, generator=g).to(device),
    }


@torch.no_grad()
def reference_outputs(model, image: torch.Tensor, landmarks: torch.Tensor | None = None,
                      noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every component output of the float reference on one batch: ``{image_features, condition, epr,
    logits}`` for LRDif, ``{logits}`` for DDAMFN (which ignores ``landmarks`` and ``noise``)."""
    if family_of(model) == "ddamfn":
        return {"logits": model(image)}
    f = model.clip_image(image)
    c = model.fpen_s2(f)
    z = model.diffusion(c, noise)
    return {"image_features": f, "condition": c, "epr": z, "logits": model.udcformer(image, landmarks, z)}


def component_modules(model) -> dict[str, nn.Module]:
    """LRDif's four on-device components by name, as modules of ``model`` (the fused pipeline holds the same ones)."""
    return {"clip_image": model.clip_image, "fpen_s2": model.fpen_s2, "denoiser": model.diffusion,
            "udcformer": model.udcformer}


def on_device_components(model, batch: int = 1, seed: int = 0, fuse: bool = False) -> list[Component]:
    """The components with example inputs computed from one deterministic sample (DDAMFN: one component,
    ``ddamfn``; ``fuse`` adds nothing, it is one program already)."""
    device = next(model.parameters()).device
    ex = example_inputs(model, batch, seed, device)
    if family_of(model) == "ddamfn":
        return [Component("ddamfn", model, ex, ("logits",))]
    with torch.no_grad():
        f_img = model.clip_image(ex["image"])
        cond = model.fpen_s2(f_img)
        epr = model.diffusion(cond, ex["noise"])
    mods = component_modules(model)
    comps = [
        Component("clip_image", mods["clip_image"], {"image": ex["image"]}, ("image_features",)),
        Component("fpen_s2", mods["fpen_s2"], {"image_features": f_img}, ("condition",)),
        Component("denoiser", mods["denoiser"], {"condition": cond, "noise": ex["noise"]}, ("epr",)),
        Component("udcformer", mods["udcformer"],
                  {"image": ex["image"], "landmarks": ex["landmarks"], "epr": epr}, ("logits",)),
    ]
    if fuse:
        comps.append(Component("pipeline", Pipeline(model), ex, ("logits",)))
    return comps

"""Model families the SDK knows: ``lrdif`` (the diffusion FER model) and ``ddamfn`` (the lightweight baseline).

A checkpoint stores its family in the top-level ``"family"`` field (``sdk/models/checkpoint.py``); files
written before the field existed have none and are LRDif. Everything that has to build a model
from a family name and a config dict goes through here, so a consumer (training, evaluation,
export) dispatches with::

    family = checkpoint_family(payload)          # "lrdif" | "ddamfn"
    model = model_from_payload(payload)          # LRDif or DDAMFN, weights loaded

=========  ===================================  ==================================  =====================
family     config (name -> dataclass)           model                               on-device inputs
=========  ===================================  ==================================  =====================
lrdif      ``udc.sdk.models.config.get_config``        ``LRDif(cfg, label_encoder)``       image, landmarks, noise
ddamfn     ``udc.sdk.models.ddamfn_config``            ``DDAMFN(cfg)``                     image (ImageNet norm)
=========  ===================================  ==================================  =====================
"""
from __future__ import annotations

from typing import Any

from torch import nn

FAMILIES = ("lrdif", "ddamfn")
DEFAULT_FAMILY = "lrdif"  # checkpoints without a "family" field


def _check(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return family


def model_family(model: nn.Module) -> str:
    """``"ddamfn"`` for a :class:`~udc.sdk.models.ddamfn.model.DDAMFN`, else ``"lrdif"``."""
    from .ddamfn.model import DDAMFN

    return "ddamfn" if isinstance(model, DDAMFN) else "lrdif"


def config_names(family: str) -> tuple[str, ...]:
    if _check(family) == "ddamfn":
        from .ddamfn_config import DDAMFN_CONFIGS

        return tuple(DDAMFN_CONFIGS)
    from .config import CONFIGS

    return tuple(CONFIGS)


def get_model_config(family: str, name: str):
    """The named preset of a family: ``get_model_config("ddamfn", "paper")``."""
    if _check(family) == "ddamfn":
        from .ddamfn_config import get_ddamfn_config

        return get_ddamfn_config(name)
    from .config import get_config

    return get_config(name)


def config_from_dict(family: str, data: dict[str, Any]):
    if _check(family) == "ddamfn":
        from .ddamfn_config import ddamfn_config_from_dict

        return ddamfn_config_from_dict(data)
    from .config import config_from_dict as lrdif_config_from_dict

    return lrdif_config_from_dict(data)


def checkpoint_family(payload: dict[str, Any]) -> str:
    """The family of a checkpoint payload (``read_checkpoint``'s dict); old files without the field are LRDif."""
    return _check(payload.get("family") or DEFAULT_FAMILY)


def model_from_payload(payload: dict[str, Any]) -> nn.Module:
    """An unloaded model of the payload's family and config (the caller loads ``state_dict``)."""
    family = checkpoint_family(payload)
    cfg = config_from_dict(family, payload["config"])
    if family == "ddamfn":
        from .ddamfn.model import DDAMFN

        return DDAMFN(cfg)
    from .lrdif.model import LRDif

    model = LRDif(cfg, payload.get("label_encoder") or "embedding")
    model.clip_source = payload.get("clip_source")
    return model


def manifest_family(manifest: dict[str, Any]) -> str:
    """The family of a bundle manifest; manifests written before the field existed are LRDif."""
    return _check(manifest.get("family") or (manifest.get("model") or {}).get("family") or DEFAULT_FAMILY)


def random_init_model(family: str, cfg, seed: int, label_encoder: str = "embedding") -> nn.Module:
    """The fresh model ``udc-export --model FAMILY --config NAME --seed S`` exports (and the SDK rebuilds as the
    reference of such a bundle): ``torch.manual_seed(seed)`` then the constructor, in eval mode."""
    import warnings

    import torch

    if isinstance(cfg, str):
        cfg = get_model_config(family, cfg)
    torch.manual_seed(int(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _check(family) == "ddamfn":
            from .ddamfn.model import DDAMFN

            return DDAMFN(cfg).eval()
        from .lrdif.model import LRDif

        return LRDif(cfg, label_encoder).eval()

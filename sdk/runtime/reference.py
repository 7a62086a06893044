"""The PyTorch reference a bundle was exported from, found from its manifest's ``source`` section.

    model, how = reference_model(bundle)                 # the checkpoint, or the seeded random init
    model, how = reference_model(bundle, "lrdif.pt")     # an explicit checkpoint (its sha256 must match)

A bundle stores the exported programs, not the PyTorch weights. The reference is:

* ``checkpoint`` given: that file, refused unless its sha256 is the manifest's ``checkpoint_sha256``
  (comparing a bundle with another model's weights would say nothing about the export);
* else the manifest's ``source.checkpoint`` path, if that file still exists with the same sha256;
* else, for a bundle exported without a checkpoint (``random_init``), the same random init rebuilt:
  ``torch.manual_seed(source.seed)`` then ``LRDif(config, label_encoder)`` (or ``DDAMFN(config)`` for a
  ``family: ddamfn`` manifest), exactly as ``udc-export [--model ddamfn] --config NAME`` built it (deterministic on CPU for the same torch version; the manifest's
  ``tools.torch`` is compared and a difference is reported in ``how``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .bundle import Bundle, BundleError
from ..models.checkpoint import load_checkpoint
from ..hashing import file_sha256
from ..models.registry import config_from_dict, get_model_config, manifest_family, model_family, random_init_model


class ReferenceNotFound(BundleError):
    """The bundle's PyTorch reference cannot be found or does not match the bundle."""


def _from_checkpoint(path: Path, expected: str | None, bundle_name: str, family: str = "lrdif"):
    digest = file_sha256(path)
    if expected and digest != expected:
        raise ReferenceNotFound(f"{path} is not the checkpoint {bundle_name} was exported from (sha256 {digest[:12]}... "
                                f"!= {expected[:12]}... in the manifest): pass the right --reference checkpoint")
    model = load_checkpoint(path).eval()
    if model_family(model) != family:
        raise ReferenceNotFound(f"{path} is a {model_family(model)} checkpoint but {bundle_name} is a {family} bundle")
    return model


def reference_model(bundle: Bundle, checkpoint: str | Path | None = None):
    """``(model in eval mode, one line saying where it came from)``; :class:`ReferenceNotFound` otherwise."""
    m: dict[str, Any] = bundle.manifest
    src, name = m["source"], bundle.path.name
    family = manifest_family(m)
    expected = src.get("checkpoint_sha256")
    if checkpoint is not None:
        p = Path(checkpoint)
        if not p.is_file():
            raise ReferenceNotFound(f"reference checkpoint {p} does not exist")
        if expected is None:
            raise ReferenceNotFound(f"{name} was exported without a checkpoint (random init, seed {src.get('seed')}): "
                                    "omit --reference, the SDK rebuilds that model")
        return _from_checkpoint(p, expected, name, family), f"checkpoint {p} (sha256 matches the manifest)"
    if src.get("checkpoint"):
        p = Path(src["checkpoint"])
        if p.is_file():
            return _from_checkpoint(p, expected, name, family), f"checkpoint {p} (from the manifest; sha256 matches)"
        raise ReferenceNotFound(f"{name} was exported from {p}, which is not there any more: pass --reference "
                                "CHECKPOINT (the same file; its sha256 is checked)")
    if not src.get("random_init", m["model"].get("random_init")):
        raise ReferenceNotFound(f"{name}: the manifest names no checkpoint and no random init: pass --reference CHECKPOINT")
    seed = src.get("seed")
    if seed is None:
        raise ReferenceNotFound(f"{name}: random-init bundle without a seed in the manifest: cannot rebuild its reference")
    cfg_dict = m["model"].get("config_dict")
    cfg = (get_model_config(family, m["model"]["config"]) if cfg_dict is None else config_from_dict(family, cfg_dict))
    model = random_init_model(family, cfg, int(seed), m["model"].get("label_encoder") or "embedding")
    flag = "--model ddamfn " if family == "ddamfn" else ""
    how = (f"random-init {family} '{cfg.name}' model rebuilt from seed {seed} (as udc-export {flag}--config {cfg.name} "
           "built it)")
    exported_with = m.get("tools", {}).get("torch")
    if exported_with and exported_with != torch.__version__:
        how += f"; WARNING exported with torch {exported_with}, this is {torch.__version__}: the init may differ"
    return model, how

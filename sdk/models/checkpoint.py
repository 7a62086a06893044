"""LRDif checkpoints: one ``.pt`` file with the config, the label encoder, the weights and provenance.
Written atomically (temp file + rename), so a crash never leaves half a checkpoint behind.

The same format carries the DDAMFN baseline: the top-level ``"family"`` field says which model
(``"lrdif"`` | ``"ddamfn"``, see ``sdk/models/registry.py``); files written before the field
existed have none and load as LRDif. ``"config"`` is the family's config dict
(``LRDifConfig.to_dict()`` or ``DDAMFNConfig.to_dict()``); ``label_encoder``/``clip_source`` are
LRDif's (None for DDAMFN). Consumers dispatch with ``checkpoint_family(read_checkpoint(path))``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .lrdif.model import LRDif
from ..hashing import file_sha256  # noqa: F401  (re-exported)
from .registry import checkpoint_family, model_family, model_from_payload

FORMAT = "udc-lrdif"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable udc LRDif checkpoint."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(model: LRDif, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an LRDif or a DDAMFN; the family is stored) with ``extra`` (training info)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "family": model_family(model),
        "config": model.cfg.to_dict(),
        "label_encoder": getattr(model, "label_encoder", None),
        "clip_source": getattr(model, "clip_source", None),
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    return atomic_torch_save(payload, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure means "not a checkpoint" to the user
        raise CheckpointError(f"{path} is not a readable checkpoint: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a udc LRDif checkpoint (no format={FORMAT!r})")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload['version']}; this udc reads <= {VERSION}")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LRDif:
    """The checkpoint's model with its weights: an ``LRDif``, or a ``DDAMFN`` when ``family == "ddamfn"``."""
    payload = read_checkpoint(path)
    try:
        family = checkpoint_family(payload)
        model = model_from_payload(payload)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: {e}") from e
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the stored {family} config (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
    if family == "lrdif":
        model.clip_source = payload.get("clip_source")
    return model.to(map_location)



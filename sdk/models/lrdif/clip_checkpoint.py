"""Load a user's CLIP checkpoint into our towers: a Hugging Face CLIP directory or an OpenAI/open_clip
state dict. Weights are read with ``safetensors``/``torch.load``, the BPE tokenizer with ``tokenizers``.

Accepted inputs
  * a directory with ``config.json`` + ``model.safetensors`` or ``pytorch_model.bin`` (+ ``tokenizer.json``):
    Hugging Face ``CLIPModel`` layout (``vision_model.*``, ``text_model.*``);
  * a file ``*.pt|*.pth|*.bin|*.safetensors`` holding an OpenAI/open_clip state dict (``visual.*`` +
    unprefixed text keys), a dict with a ``state_dict`` entry, or an OpenAI TorchScript archive.
Anything that does not fit raises :class:`CLIPCheckpointError` naming the missing, unexpected and
mis-shaped keys.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import TextTowerConfig, VisionTowerConfig
from .clip import CLIPTextTower, CLIPVisionTower

IGNORED_KEYS = re.compile(r"(^|\.)(position_ids|logit_scale|logit_bias)$")


class CLIPCheckpointError(ValueError):
    """A CLIP checkpoint that cannot be read or does not fit the towers."""


@dataclass
class CLIPCheckpoint:
    vision: dict[str, torch.Tensor]  # our/OpenAI names, without the ``visual.`` prefix
    text: dict[str, torch.Tensor]  # empty when the checkpoint has no text tower
    layout: str  # "huggingface" or "openai"
    source: str
    hf_config: dict | None = None
    tokenizer_path: Path | None = None


# ----------------------------------------------------------------------------- name mapping
def _block_pairs(hf_prefix: str, ours_prefix: str, layers: int) -> list[tuple[str, str]]:
    pairs = []
    for i in range(layers):
        h, o = f"{hf_prefix}.encoder.layers.{i}", f"{ours_prefix}transformer.resblocks.{i}"
        for suffix in ("weight", "bias"):
            pairs += [
                (f"{h}.self_attn.out_proj.{suffix}", f"{o}.attn.out_proj.{suffix}"),
                (f"{h}.layer_norm1.{suffix}", f"{o}.ln_1.{suffix}"),
                (f"{h}.layer_norm2.{suffix}", f"{o}.ln_2.{suffix}"),
                (f"{h}.mlp.fc1.{suffix}", f"{o}.mlp.c_fc.{suffix}"),
                (f"{h}.mlp.fc2.{suffix}", f"{o}.mlp.c_proj.{suffix}"),
            ]
    return pairs


def _hf_pairs(vision_layers: int, text_layers: int) -> list[tuple[str, str]]:
    """(Hugging Face name, OpenAI name) for every tensor copied as is; q/k/v and projections apart."""
    pairs = [
        ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
        ("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
        ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
        ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
        ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
    ]
    for suffix in ("weight", "bias"):
        pairs += [
            (f"vision_model.pre_layrnorm.{suffix}", f"visual.ln_pre.{suffix}"),
            (f"vision_model.post_layernorm.{suffix}", f"visual.ln_post.{suffix}"),
            (f"text_model.final_layer_norm.{suffix}", f"ln_final.{suffix}"),
        ]
    pairs += _block_pairs("vision_model", "visual.", vision_layers)
    pairs += _block_pairs("text_model", "", text_layers)
    return pairs


def _count_layers(keys, pattern: str) -> int:
    idx = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(idx) + 1 if idx else 0


def hf_to_openai(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face ``CLIPModel`` state dict to the OpenAI layout (fuses q/k/v)."""
    sd = {k: v for k, v in sd.items() if not IGNORED_KEYS.search(k)}
    vl = _count_layers(sd, r"vision_model\.encoder\.layers\.(\d+)\.")
    tl = _count_layers(sd, r"text_model\.encoder\.layers\.(\d+)\.")
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for hf, oa in _hf_pairs(vl, tl):
        if hf in sd:
            out[oa] = sd[hf]
            used.add(hf)
    for tower, prefix, layers in (("vision_model", "visual.", vl), ("text_model", "", tl)):
        for i in range(layers):
            h = f"{tower}.encoder.layers.{i}.self_attn"
            for suffix in ("weight", "bias"):
                names = [f"{h}.{p}_proj.{suffix}" for p in "qkv"]
                if all(n in sd for n in names):
                    out[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{suffix}"] = torch.cat([sd[n] for n in names])
                    used.update(names)
    for hf, oa in (("visual_projection.weight", "visual.proj"), ("text_projection.weight", "text_projection")):
        if hf in sd:
            out[oa] = sd[hf].t().contiguous()
            used.add(hf)
    for k in set(sd) - used:  # keep leftovers so the fit check names them
        out[k] = sd[k]
    return out


def openai_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`hf_to_openai` (used to write our towers as a Hugging Face directory)."""
    vl = _count_layers(sd, r"visual\.transformer\.resblocks\.(\d+)\.")
    tl = _count_layers(sd, r"transformer\.resblocks\.(\d+)\.")
    out = {hf: sd[oa] for hf, oa in _hf_pairs(vl, tl) if oa in sd}
    for tower, prefix, layers in (("vision_model", "visual.", vl), ("text_model", "", tl)):
        for i in range(layers):
            for suffix in ("weight", "bias"):
                fused = sd[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{suffix}"]
                for p, part in zip("qkv", fused.chunk(3)):
                    out[f"{tower}.encoder.layers.{i}.self_attn.{p}_proj.{suffix}"] = part.contiguous()
    out["visual_projection.weight"] = sd["visual.proj"].t().contiguous()
    if "text_projection" in sd:
        out["text_projection.weight"] = sd["text_projection"].t().contiguous()
    return out


# ----------------------------------------------------------------------------- reading files
def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except RuntimeError as e:
            if "TorchScript" not in str(e) and "zip" not in str(e).lower():
                raise
            obj = torch.jit.load(str(path), map_location="cpu").state_dict()  # OpenAI's original archives
    except CLIPCheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad checkpoint for the user
        raise CLIPCheckpointError(f"cannot read CLIP checkpoint {path}: {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CLIPCheckpointError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def read_clip_checkpoint(path: str | Path) -> CLIPCheckpoint:
    path = Path(path)
    if not path.exists():
        raise CLIPCheckpointError(f"CLIP checkpoint {path} does not exist")
    hf_config = None
    tokenizer_path = None
    if path.is_dir():
        weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).exists()), None)
        if weights is None:
            raise CLIPCheckpointError(f"{path} has no model.safetensors or pytorch_model.bin (a Hugging Face CLIP directory)")
        if (path / "config.json").exists():
            hf_config = json.loads((path / "config.json").read_text())
        if (path / "tokenizer.json").exists():
            tokenizer_path = path / "tokenizer.json"
        sd = _read_tensors(weights)
    else:
        sd = _read_tensors(path)
    if any(k.startswith(("vision_model.", "text_model.")) for k in sd):
        layout, sd = "huggingface", hf_to_openai(sd)
    elif "visual.conv1.weight" in sd:
        layout = "openai"
    else:
        raise CLIPCheckpointError(
            f"{path}: not a CLIP checkpoint (no 'visual.conv1.weight' nor 'vision_model.*' keys; "
            f"first keys: {sorted(sd)[:5]})"
        )
    sd = {k: v for k, v in sd.items() if not IGNORED_KEYS.search(k)}
    vision = {k.removeprefix("visual."): v for k, v in sd.items() if k.startswith("visual.")}
    text = {k: v for k, v in sd.items() if not k.startswith("visual.")}
    return CLIPCheckpoint(vision, text, layout, str(path), hf_config, tokenizer_path)


# ----------------------------------------------------------------------------- geometry
def infer_vision_config(ckpt: CLIPCheckpoint) -> VisionTowerConfig:
    sd, hf = ckpt.vision, (ckpt.hf_config or {}).get("vision_config", {})
    width, _, patch, _ = sd["conv1.weight"].shape
    grid = int(round((sd["positional_embedding"].shape[0] - 1) ** 0.5))
    return VisionTowerConfig(
        image_size=patch * grid, patch_size=patch, width=width,
        layers=_count_layers(sd, r"transformer\.resblocks\.(\d+)\."),
        heads=hf.get("num_attention_heads", max(1, width // 64)),
        mlp_ratio=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        embed_dim=sd["proj"].shape[1], act=hf.get("hidden_act", "quick_gelu"),
    )


def infer_text_config(ckpt: CLIPCheckpoint) -> TextTowerConfig:
    sd, hf = ckpt.text, (ckpt.hf_config or {}).get("text_config", {})
    width = sd["ln_final.weight"].shape[0]
    return TextTowerConfig(
        vocab_size=sd["token_embedding.weight"].shape[0], context_length=sd["positional_embedding"].shape[0],
        width=width, layers=_count_layers(sd, r"transformer\.resblocks\.(\d+)\."),
        heads=hf.get("num_attention_heads", max(1, width // 64)),
        mlp_ratio=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        embed_dim=sd["text_projection"].shape[1], act=hf.get("hidden_act", "quick_gelu"),
    )


# ----------------------------------------------------------------------------- fitting
def _fit_report(module: nn.Module, sd: dict[str, torch.Tensor], limit: int = 8) -> list[str]:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(sd) & set(expected)) if sd[k].shape != expected[k].shape]
    lines = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
            lines.append(f"{len(items)} {title}: {', '.join(items[:limit])}{more}")
    return lines


def load_tower(module: nn.Module, sd: dict[str, torch.Tensor], what: str, source: str) -> None:
    """Copy ``sd`` into ``module`` exactly, or raise naming every key that does not fit."""
    problems = _fit_report(module, sd)
    if problems:
        raise CLIPCheckpointError(f"{what} in {source} does not fit the model:\n  " + "\n  ".join(problems))
    module.load_state_dict(sd, strict=True)


def load_clip(vision: CLIPVisionTower, text: CLIPTextTower | None, path: str | Path) -> CLIPCheckpoint:
    """Load a checkpoint into the towers (text only when both sides have one)."""
    ckpt = read_clip_checkpoint(path)
    load_tower(vision, ckpt.vision, "CLIP image tower", ckpt.source)
    if text is not None and ckpt.text:
        load_tower(text, ckpt.text, "CLIP text tower", ckpt.source)
    return ckpt


def save_hf_clip_dir(vision: CLIPVisionTower, text: CLIPTextTower, out_dir: str | Path) -> Path:
    """Write our towers as a Hugging Face CLIP directory (``config.json`` + ``model.safetensors``)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {f"visual.{k}": v for k, v in vision.state_dict().items()} | dict(text.state_dict())
    save_file(openai_to_hf(sd), str(out / "model.safetensors"))
    v, t = vision.cfg, text.cfg
    config = {
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": v.embed_dim,
        "vision_config": {"hidden_size": v.width, "intermediate_size": int(v.width * v.mlp_ratio),
                          "num_attention_heads": v.heads, "num_hidden_layers": v.layers,
                          "image_size": v.image_size, "patch_size": v.patch_size, "hidden_act": v.act,
                          "projection_dim": v.embed_dim},
        "text_config": {"hidden_size": t.width, "intermediate_size": int(t.width * t.mlp_ratio),
                        "num_attention_heads": t.heads, "num_hidden_layers": t.layers,
                        "max_position_embeddings": t.context_length, "vocab_size": t.vocab_size,
                        "hidden_act": t.act, "projection_dim": t.embed_dim},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out

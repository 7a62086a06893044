"""Assemble ``manifest.json`` (DESIGN.md section 3) from what the export produced.

The bundle format itself (atomic writing, reading, sha256 verification, the JSON Schema) lives in
:mod:`udc.sdk.runtime.bundle`, because apps and the SDK read bundles without ``udc.export``.
"""
from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

from udc.sdk.runtime.bundle import SCHEMA_VERSION
from udc.sdk.models.components import COMPONENTS, FAMILY_CHAIN, family_of
from udc.sdk.models.config import lrdif_label
from udc.sdk.faces.landmarks import ALIGNMENT_POINTS, canonical_landmarks, layout

from .artifact import Artifact
from .reference import INPUTS, OUTPUT

TOOLS = ("torch", "executorch", "torchao", "coremltools", "onnx", "onnxscript", "onnxruntime", "numpy", "udc")


def tool_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in TOOLS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["python"] = platform.python_version()
    return out


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def preprocessing(cfg, family: str = "lrdif") -> dict[str, Any]:
    s = cfg.image_size
    points = int(getattr(cfg, "num_landmarks", len(canonical_landmarks())))
    landmarks = {
        "input": "landmarks",
        "shape": [1, points, 2],
        "layout": "ibug-68 (see landmark_layout)",
        "units": "crop units 0..1: (x, y) / crop_size after alignment, origin top-left, x right, y down",
    }
    if family == "ddamfn":
        landmarks["model_input"] = False
        landmarks["note"] = ("the face pipeline still finds these points to align the crop; the model takes no "
                             "landmarks (no component input is wired to input:landmarks)")
    return {
        "crop_size": s,
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "input": "image",  # the app-level input the normalised crop feeds (see wiring: input:image)
        "value_range": [0, 255],
        "scale": 1.0 / 255.0,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "formula": "x = (rgb_uint8 / 255 - mean[c]) / std[c], shape [1, 3, crop_size, crop_size]",
        "alignment": {
            "method": "least-squares similarity (rotation + uniform scale + translation) of the alignment points "
                      "onto the canonical face, bilinear warp, black fill (udc.sdk.faces.align.align_face)",
            "alignment_points": list(ALIGNMENT_POINTS),
            "canonical_landmarks": [[round(float(x), 6), round(float(y), 6)] for x, y in canonical_landmarks().tolist()],
            "canonical_units": "crop units (multiply by crop_size for pixels)",
            "source_units": "image pixels, continuous: MediaPipe normalized landmark (x * width, y * height)",
            "sampling": "crop pixel (i, j) takes the bilinear sample (pixel centres at k + 0.5, neighbours clamped "
                        "at the edge) of the image at (u, v) = M^-1 (i + 0.5, j + 0.5), pixel k covering [k, k + 1); "
                        "the value truncated to uint8; (u, v) outside [0, width) x [0, height) gets 'fill' (exactly PIL's "
                        "Image.transform AFFINE BILINEAR)",
            "fill": [0, 0, 0],
        },
        "landmarks": landmarks,
    }


def diffusion(model) -> dict[str, Any]:
    d, sched = model.cfg.diffusion, model.diffusion.schedule
    c = model.cfg.fpen.epr_dim
    return {
        "steps": d.steps,
        "beta_start": d.beta_start,
        "beta_end": d.beta_end,
        "betas": [float(b) for b in sched.betas.tolist()],
        "schedule": "betas = linspace(sqrt(beta_start), sqrt(beta_end), T) ** 2 (DiffIR)",
        "parameterization": d.parameterization,
        "reverse": f"deterministic (no noise injected), all {d.steps} steps unrolled inside the denoiser component",
        "noise": {"input": "noise", "component": "denoiser", "shape": [1, c], "dtype": "float32",
                  "distribution": "N(0, I), drawn by the caller (the graph has no random op)"},
    }


def wiring(names: list[str]) -> dict[str, str]:
    """Where every component input comes from: the app (``input:x``) or another component's output."""
    produced = {OUTPUT[c]: c for c in COMPONENTS}  # DDAMFN's one component takes only input:image
    out = {}
    for comp in names:
        for inp in INPUTS[comp]:
            src = produced.get(inp) if comp != "pipeline" else None
            out[f"{comp}.{inp}"] = f"{src}.{inp}" if src and src != comp else f"input:{inp}"
    return out


def execution(names: list[str], family: str = "lrdif") -> dict[str, Any]:
    """How an app runs the bundle: the components in order (inputs from ``wiring``), or the fused one alone."""
    order = [c for c in FAMILY_CHAIN[family] if c in names]
    return {
        "order": order,
        "fused": "pipeline" if "pipeline" in names else None,
        "result": OUTPUT[order[-1]] if order else OUTPUT["pipeline"],  # (a partial bundle may hold the pipeline only)
        "activation": "softmax",
        "description": "run the components of 'order' one after the other, every input taken from 'wiring' "
                       "(input:<name> = the app's tensor, <component>.<output> = an earlier output); or run "
                       "'fused' alone with the same app inputs. Class probabilities = softmax(result), in the "
                       "order of 'labels'.",
    }


def model_section(model, random_init: bool) -> dict[str, Any]:
    cfg = model.cfg
    if family_of(model) == "ddamfn":
        return {
            "family": "ddamfn",
            "label": "DDAMFN",
            "config": cfg.name,
            "random_init": random_init,
            "image_size": cfg.image_size,
            "num_classes": cfg.num_classes,
            "num_heads": cfg.num_heads,
            "config_dict": cfg.to_dict(),
        }
    return {
        "family": "lrdif",
        "config": cfg.name,
        "random_init": random_init,
        "label_encoder": model.label_encoder,
        "clip_source": model.clip_source,
        "label": lrdif_label(model.clip_source),  # "LRDif without pretrained CLIP" unless a CLIP checkpoint was loaded
        "image_size": cfg.image_size,
        "epr_dim": cfg.fpen.epr_dim,
        "num_classes": cfg.num_classes,
        "config_dict": cfg.to_dict(),
    }


def component_entry(a: Artifact, entry: dict[str, Any], bp_entry: dict[str, Any] | None) -> dict[str, Any]:
    out = {**entry, "format": a.format, "inputs": a.inputs, "outputs": a.outputs, "delegation": a.delegation,
           "quantization": a.quantization}
    if bp_entry is not None:
        out["bundled_program"] = {**bp_entry, **{k: v for k, v in a.bundled_program.items() if k != "file"}}
    return out


def build_manifest(*, name: str, target: str, backend: str, quant: str, model, random_init: bool,
                   source: dict[str, Any], components: dict[str, dict[str, Any]], quantization: dict[str, Any],
                   parity: dict[str, Any], created: str | None = None) -> dict[str, Any]:
    lay = dict(layout())
    family = family_of(model)
    out = {
        "schema_version": SCHEMA_VERSION,
        "format": "udc-bundle",
        "name": name,
        "family": family,
        "created": created or now_utc(),
        "target": target,
        "backend": backend,
        "quant": quant,
        "components": components,
        "wiring": wiring(list(components)),
        "execution": execution(list(components), family),
        "quantization": quantization,
        "preprocessing": preprocessing(model.cfg, family),
        "labels": list(model.cfg.labels),
        "diffusion": diffusion(model) if family == "lrdif" else None,  # DDAMFN: no diffusion section
        "landmark_layout": lay,
        "model": model_section(model, random_init),
        "source": source,
        "tools": tool_versions(),
        "parity": parity,
    }
    if out["diffusion"] is None:
        del out["diffusion"]
    return out

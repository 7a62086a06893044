"""Tiny-config bundles for the SDK tests, exported once per test session (process) and shared by the
SDK test modules' module-scoped fixtures: exporting is the slow part (tens of seconds each).

``UDC_TEST_BUNDLE_CACHE=DIR`` keeps the exported bundles in DIR and reuses them in later runs (for
working on the SDK tests; a stale bundle fails its schema/sha256 check loudly). Unset: a fresh export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

_CACHE: dict[tuple, Path] = {}


def export_bundle(root: Path, target: str, quant: str = "fp32", eval_n: int = 8, calib_n: int = 32,
                  family: str = "lrdif") -> Path:
    """A tiny random-init bundle of ``family`` (``lrdif`` or ``ddamfn``), exported once per session."""
    from udc.export.exporter import ExportRequest, run_export

    import os

    key = (family, target, quant)
    name = f"tiny-{target}-{quant}.udc" if family == "lrdif" else f"{family}-tiny-{target}-{quant}.udc"
    cache = os.environ.get("UDC_TEST_BUNDLE_CACHE")
    if cache and (Path(cache) / name / "manifest.json").is_file():
        _CACHE[key] = Path(cache) / name
    if key not in _CACHE or not _CACHE[key].exists():
        out = Path(cache or root) / name
        req = ExportRequest(output=out, target=target, config="tiny", family=family, quant=quant, eval_n=eval_n,
                            calib_n=calib_n, threads=1, force=True)
        _CACHE[key] = run_export(req, log=lambda *_: None).path
    return _CACHE[key]


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rehash(bundle: Path, component: str) -> None:
    """Rewrite the manifest's sha256/size of ``component`` after its file was changed on purpose."""
    from udc.sdk.bundle import file_entry

    mf = bundle / "manifest.json"
    m = json.loads(mf.read_text())
    c = m["components"][component]
    c.update({k: v for k, v in file_entry(bundle, c["file"]).items() if k != "file"})
    mf.write_text(json.dumps(m, indent=2))


def perturb_onnx_weights(bundle: Path, component: str = "udcformer", scale: float = 0.5, seed: int = 0) -> int:
    """Add noise (``scale`` x each tensor's std) to every float initializer of an ONNX component, then
    re-hash it in the manifest: a bundle that verifies but whose weights are wrong. Returns the count."""
    import onnx
    from onnx import numpy_helper

    path = bundle / json.loads((bundle / "manifest.json").read_text())["components"][component]["file"]
    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    n = 0
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.size < 8:
            continue
        noisy = w + rng.standard_normal(w.shape).astype(np.float32) * scale * (float(w.std()) + 1e-3)
        init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
        n += 1
    onnx.save(model, str(path))
    rehash(bundle, component)
    return n


def write_face_folder(d: Path, per_class: int, size: int = 64, seed: int = 0) -> Path:
    """Synthetic test faces as a photo folder plus the ``landmarks68.npz`` cache ``udc-data`` writes."""
    from PIL import Image

    from udc.train.synthetic.dataset import generate_arrays

    images, _, points = generate_arrays(per_class, size=size, seed=seed, split="test")
    keys = []
    for i, img in enumerate(images):
        Image.fromarray(img).save(d / f"{i:03d}.png")
        keys.append(f"{i:03d}.png")
    np.savez(d / "landmarks68.npz", keys=np.array(keys), points=points)
    return d

"""Tiny-config bundles for the SDK tests, exported once per test session (process) and shared by the
SDK test modules' module-scoped fixtures: exporting is the slow part (tens of seconds each).

The LRDif bundles are exported from :func:`e2e_model`, not from a fresh random init: a fresh UDCformer
ignores Z (its Z-modulation weights start at zero), so its logits would not depend on ``clip_image``,
``fpen_s2`` or the denoiser, and no test could see wrong wiring, a wrong noise vector or a broken
upstream component. Every LRDif bundle passes :func:`assert_upstream_reaches_logits` (perturbing
``clip_image``'s output, the EPR vector or the noise changes the logits) before a test gets it.

``UDC_TEST_BUNDLE_CACHE=DIR`` keeps the exported bundles (and their checkpoint) in DIR and reuses them in
later runs (for working on the SDK tests; a stale bundle fails its schema/sha256 check loudly). Unset,
tests/conftest.py sets it to a fresh directory for the session, which pytest-xdist's workers share: each
bundle is exported once per run, by whichever worker needs it first, under a file lock (:func:`_shared`)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

_CACHE: dict[tuple, Path] = {}
_CONTROLLED: set[Path] = set()

#: Z-modulation weight std of the end-to-end fixtures (measured, tiny, head fitted: replacing the EPR vector by
#: another face's moves the logits by ~0.17 (median max|d|), the noise by ~6e-3, against top-2 margins of ~2.7;
#: at 0.05 the noise's effect on a model without a fitted head stays below the fp32 parity bound). Not larger:
#: int8 UDCformers of models whose logits hang on tiny feature differences fail any int8 parity.
E2E_Z_STD = 0.2
#: The positive control: each perturbation must move the logits (median over faces of max|d logits|) by
#: at least 10x the fp32 parity bound (1e-4).
CONTROL_MIN_DELTA = 1e-3


def modulate_by_z(model, std: float = 0.05):
    """Z-modulation kernels start at zero (UDCformer ignores Z at init); give them random weights, as training
    does, so that Z, and everything upstream of it, reaches the logits in tests that use a random model."""
    from udc.sdk.models.lrdif.dt_network import ZModulation

    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for m in model.udcformer.modules():
            if isinstance(m, ZModulation):
                m.kernel.weight.copy_(torch.randn(m.kernel.weight.shape, generator=g) * std)
    return model


def e2e_model(seed: int = 0, std: float = E2E_Z_STD):
    """The tiny LRDif of the end-to-end fixtures: random init (``seed``), Z-modulation weights, head fitted to
    clusters of its features (:func:`fit_head_to_clusters`), in eval mode. Its logits depend on clip_image,
    fpen_s2, the denoiser and the noise (:func:`model_upstream_deltas`)."""
    import warnings

    from udc.sdk.models.registry import random_init_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = random_init_model("lrdif", "tiny", seed)
    return fit_head_to_clusters(modulate_by_z(model, std))


@torch.no_grad()
def tiny_reference(n: int, seed: int = 0):
    """``(model, ReferenceIO)``: a random-init tiny LRDif (``torch.manual_seed(0)``, embedding label
    encoder) and its float reference on ``n`` synthetic test faces."""
    import warnings

    from udc.export.quant.calibration import synthetic_faces
    from udc.export.reference import reference_io
    from udc.sdk.models.config import tiny
    from udc.sdk.models.lrdif.model import LRDif

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LRDif(tiny(), "embedding").eval()
    return model, reference_io(model, synthetic_faces(model.cfg, n, seed=seed, split="test"))


def _head_features(model, faces) -> torch.Tensor:
    feats = []
    hook = model.udcformer.head.register_forward_hook(lambda m, a, o: feats.append(a[0].detach()))
    try:
        model(faces.images, faces.landmarks, faces.noise)
    finally:
        hook.remove()
    return feats[0]


def fit_head_to_clusters(model, n: int = 280, seed: int = 3):
    """Fit the classification head to 7 k-means clusters of the model's own head-input features on synthetic
    training faces (see tests/export_checks.py's docstring: class boundaries in low-density regions, as a
    trained classifier has them, so top-1 agreement measures an export's error against real margins)."""
    from udc.export.quant.calibration import synthetic_faces

    x = _head_features(model, synthetic_faces(model.cfg, n, seed=seed, split="train"))
    centers = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:7]].clone()
    for _ in range(50):
        assign = torch.cdist(x, centers).argmin(1)
        centers = torch.stack([x[assign == j].mean(0) if (assign == j).any() else centers[j] for j in range(7)])
    head = model.udcformer.head
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    with torch.enable_grad():
        for _ in range(1000):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(x), assign).backward()
            opt.step()
    return model.eval()


def _shared(key: tuple, root: Path, name: str, ready: Callable[[Path], bool], make: Callable[[Path], None]) -> Path:
    """The session's one copy of a test artefact: ``UDC_TEST_BUNDLE_CACHE/name`` (else ``root/name``), reused when
    ``ready(path)`` says a cached one is complete, else made by ``make(path)``. Looked up and made under a file lock:
    the workers of a parallel run share the cache directory, and two of them must not write the same one at once."""
    from filelock import FileLock

    cache = os.environ.get("UDC_TEST_BUNDLE_CACHE")
    path = Path(cache or root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if cache and ready(path):
            _CACHE[key] = path
        if key not in _CACHE or not _CACHE[key].exists():
            make(path)
            _CACHE[key] = path
    return _CACHE[key]


def e2e_checkpoint(root: Path) -> Path:
    """:func:`e2e_model` saved once per session (in ``UDC_TEST_BUNDLE_CACHE`` when set, else under ``root``): the checkpoint of every
    LRDif test bundle and of tests/test_export.py."""
    from udc.sdk.models.checkpoint import save_checkpoint

    def make(path: Path) -> None:
        save_checkpoint(e2e_model(), path, extra={
            "note": "tests: tiny, random init + Z-modulation weights, head fitted to 7 clusters of its features "
                    "(tests/sdk_bundles.py)"})

    return _shared(("checkpoint",), root, "tiny-e2e.pt", Path.is_file, make)


#: Held-out faces of the shared ExecuTorch fp32 export's parity run (tests/export_checks.py's EVAL_N).
SHARED_EVAL_N = 200


def executorch_fp32_cli(root: Path) -> tuple[Path, str]:
    """``(bundle, udc-export's output)``: the full ExecuTorch/XNNPACK fp32 bundle of :func:`e2e_checkpoint`,
    exported once per session through the CLI (``--eval-n 200 --threads 1``). Lowering the four components
    is the slow part; tests/test_export.py checks this bundle in full, the SDK tests use the same one."""
    from click.testing import CliRunner

    from udc.export.cli import main

    def make(out: Path) -> None:
        res = CliRunner().invoke(main, [str(e2e_checkpoint(root)), "--target", "executorch", "--eval-n",
                                        str(SHARED_EVAL_N), "--threads", "1", "-o", str(out), "--force"])
        assert res.exit_code == 0, res.output + repr(res.exception)
        out.with_suffix(".log").write_text(res.output)

    path = _shared(("lrdif", "executorch", "fp32"), root, "tiny-executorch-fp32.udc",
                   lambda out: (out / "manifest.json").is_file() and out.with_suffix(".log").is_file(), make)
    return controlled_bundle(path), path.with_suffix(".log").read_text()


# ------------------------------------------------------------------------------------------ positive control
def control_faces(n: int = 8, seed: int = 5):
    """Held-out synthetic faces for the positive control, and a second face set whose components
    replace the first's one at a time (another face's features, EPR vector, noise)."""
    from udc.export.quant.calibration import synthetic_faces
    from udc.sdk.models.config import tiny

    a = synthetic_faces(tiny(), n, seed=seed, split="test")
    b = synthetic_faces(tiny(), n, seed=seed + 1, split="test")
    return a, b


def _run_chain(chain, inputs: dict, override: dict | None = None) -> tuple[np.ndarray, dict]:
    """``chain.run`` with some intermediate outputs (``"component.output"``) replaced after they are made."""
    override = override or {}
    values: dict[str, np.ndarray] = {}
    for step in chain.steps:
        feed = {}
        for name in step.inputs:
            src = step.sources.get(name, f"input:{name}")
            feed[name] = inputs[src[6:]] if src.startswith("input:") else values[src]
        for out_name, arr in zip(step.outputs, step.runner(feed)):
            key = f"{step.name}.{out_name}"
            values[key] = override.get(key, np.asarray(arr))
    last = chain.steps[-1]
    return values[f"{last.name}.{last.outputs[0]}"], values


def chain_upstream_deltas(chain, n: int = 8) -> dict[str, list[float]]:
    """Per face, max|d logits| of the chain (a :class:`udc.sdk.runtime.chain.Chain`, any runtime) when
    ``clip_image``'s output, the EPR vector (the denoiser's output) or the noise input is another face's."""
    a, b = control_faces(n)

    def inputs(f, i):
        return {k: np.ascontiguousarray(getattr(f, k)[i:i + 1].numpy(), np.float32)
                for k in ("images", "landmarks", "noise")}

    def rename(d):
        return {"image": d["images"], "landmarks": d["landmarks"], "noise": d["noise"]}

    outs = {s.name: f"{s.name}.{s.outputs[0]}" for s in chain.steps}
    deltas: dict[str, list[float]] = {"clip_image": [], "epr": [], "noise": []}
    for i in range(n):
        ia, ib = rename(inputs(a, i)), rename(inputs(b, i))
        base, va = _run_chain(chain, ia)
        _, vb = _run_chain(chain, ib)
        if "clip_image" in outs:
            got, _ = _run_chain(chain, ia, {outs["clip_image"]: vb[outs["clip_image"]]})
            deltas["clip_image"].append(float(np.max(np.abs(got - base))))
        if "denoiser" in outs:
            got, _ = _run_chain(chain, ia, {outs["denoiser"]: vb[outs["denoiser"]]})
            deltas["epr"].append(float(np.max(np.abs(got - base))))
        got, _ = _run_chain(chain, {**ia, "noise": ib["noise"]})
        deltas["noise"].append(float(np.max(np.abs(got - base))))
    return {k: v for k, v in deltas.items() if v}


@torch.no_grad()
def model_upstream_deltas(model, n: int = 8) -> dict[str, list[float]]:
    """:func:`chain_upstream_deltas` for a PyTorch LRDif (its four components called one after the other)."""
    a, b = control_faces(n)

    def run(x, lm, nz, f=None, z=None):
        f = model.clip_image(x) if f is None else f
        z = model.diffusion(model.fpen_s2(f), nz) if z is None else z
        return model.udcformer(x, lm, z)

    base = run(a.images, a.landmarks, a.noise)
    fb = model.clip_image(b.images)
    zb = model.diffusion(model.fpen_s2(fb), b.noise)

    def per_face(x):
        return (x - base).abs().amax(1).tolist()

    return {"clip_image": per_face(run(a.images, a.landmarks, a.noise, f=fb)),
            "epr": per_face(run(a.images, a.landmarks, a.noise, z=zb)),
            "noise": per_face(run(a.images, a.landmarks, b.noise))}


def assert_upstream_reaches_logits(deltas: dict[str, list[float]], what: str = "",
                                   expect=("clip_image", "epr", "noise")) -> None:
    """Each perturbation moves the logits: median over faces >= :data:`CONTROL_MIN_DELTA` (NaN fails)."""
    assert set(expect) <= set(deltas), (what, sorted(deltas))
    for k in expect:
        med = float(np.median(deltas[k]))
        assert med >= CONTROL_MIN_DELTA, (f"{what}: replacing {k} by another face's moves the logits by only "
                                          f"{med:.3g} (median max|d|): the test cannot see {k}", deltas[k])


def controlled_bundle(path: Path) -> Path:
    """Run the positive control on an LRDif bundle (once per session): on its own runtime where this host
    runs it, else on the PyTorch reference."""
    from udc.sdk.runtime.bundle import load_bundle
    from udc.sdk.runtime.chain import load_chain
    from udc.sdk.models.registry import manifest_family
    from udc.sdk.runtime.runners import host_runtimes

    if path in _CONTROLLED:
        return path
    b = load_bundle(path)
    if manifest_family(b.manifest) == "lrdif":
        runtime = host_runtimes(b.manifest["target"], b.manifest.get("backend"))[0]
        chain = load_chain(b, runtime, threads=1)
        assert_upstream_reaches_logits(chain_upstream_deltas(chain), f"{path.name} on {runtime}",
                                       expect=("clip_image", "epr", "noise") if len(chain.steps) > 1 else ("noise",))
    _CONTROLLED.add(path)
    return path


def export_bundle(root: Path, target: str, quant: str = "fp32", eval_n: int = 32, calib_n: int = 32,
                  family: str = "lrdif") -> Path:
    """A tiny bundle of ``family`` (``lrdif``: from :func:`e2e_checkpoint`, positive control passed;
    ``ddamfn``: random init), exported once per session. LRDif ExecuTorch fp32 is :func:`executorch_fp32_cli`'s
    (its parity run used 200 faces, not ``eval_n``)."""
    from udc.export.exporter import ExportRequest, run_export

    if (family, target, quant) == ("lrdif", "executorch", "fp32"):
        return executorch_fp32_cli(root)[0]  # one ExecuTorch lowering, shared with tests/test_export.py
    name = f"tiny-{target}-{quant}.udc" if family == "lrdif" else f"{family}-tiny-{target}-{quant}.udc"

    def make(out: Path) -> None:
        if family == "lrdif":
            req = ExportRequest(output=out, target=target, checkpoint=e2e_checkpoint(root), quant=quant,
                                eval_n=eval_n, calib_n=calib_n, threads=1, force=True)
        else:
            req = ExportRequest(output=out, target=target, config="tiny", family=family, quant=quant, eval_n=eval_n,
                                calib_n=calib_n, threads=1, force=True)
        run_export(req, log=lambda *_: None)

    return controlled_bundle(_shared((family, target, quant), root, name,
                                     lambda out: (out / "manifest.json").is_file(), make))


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rehash(bundle: Path, component: str) -> None:
    """Rewrite the manifest's sha256/size of ``component`` after its file was changed on purpose."""
    from udc.sdk.runtime.bundle import file_entry

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

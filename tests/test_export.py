"""udc-export end to end on the tiny config: every target, the parity of every exported file against
the PyTorch reference (re-measured here through udc.sdk.runtime.runners, not read back from the manifest),
the manifest, checksums, determinism, and the one-line errors.

The checkpoint (module fixture): a tiny model whose classification head was fitted to 7 clusters of
its own features on synthetic training faces. Why not the expression labels: the tiny model's random
CLIP/UDCformer features do not separate the synthetic expressions (a head fitted to the labels
reaches ~30 % train accuracy and leaves the held-out logits nearly tied, median top-2 gap 0.2 logit),
and then *any* perturbation flips top-1 (measured: 77 % top-1 agreement for int8 at feature cosine
0.9999), which says nothing about the export. A trained classifier puts its class boundaries in
low-density regions of its features; the cluster-fitted head does the same (held-out median top-2
gap ~4 logits), so top-1 agreement measures the export's error against real margins. The thresholds
are the issue's, unchanged: fp32 max|d| <= 1e-4 on logits; int8 plain top-1 agreement >= 97 % on
200 held-out faces and cosine >= 0.99.

The blind spot it closes: a fresh UDCformer ignores Z (zero-init Z-modulation), so its logits would not
depend on clip_image, fpen_s2 or the denoiser and an int8 (or wrongly wired) upstream component could
not show. The checkpoint is the end-to-end fixtures' model (tests/sdk_bundles.py: Z-modulation weights,
its head fitted as described above; shared with the SDK tests' bundles), and the ``reference`` fixture first asserts that replacing clip_image's
output, the EPR vector or the noise with another face's moves the logits (a positive control).

Runtime: every export is done once (module fixtures) and shared between tests. Lowering the
UDCformer to ExecuTorch costs about a minute on one core, so the ExecuTorch int8 case and a few other
heavy cases export a subset of the components (``--components``; the bundle is marked ``partial``);
the int8 end-to-end logits then chain the int8 programs with the float reference for the rest, and
the ONNX int8 case chains all four int8 programs. The full ExecuTorch int8 bundle is built by
benchmarks/export_matrix.py and benchmarks/compare.py (``make demo`` exports fp32/fp16 only); how its
recipes are chosen: docs/int8-recipes.md.
"""
import json
import platform
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from udc.export.cli import main
from udc.sdk.runtime import bundle as B
from udc.sdk.models.config import tiny
from udc.sdk.parity.metrics import THRESHOLDS, compare

EVAL_N = 200
CALIB_N = 32
FOUR = ["clip_image", "fpen_s2", "denoiser", "udcformer"]
pytestmark = pytest.mark.filterwarnings("ignore")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The session's end-to-end checkpoint (tests/sdk_bundles.py): Z-modulated, head fitted to 7 k-means
    clusters of its features (see above); the SDK tests' bundles come from it too."""
    from sdk_bundles import e2e_checkpoint

    return e2e_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def held_faces():
    """The held-out faces the exporter evaluates on (synthetic test split, seed 0)."""
    from udc.export.quant.calibration import synthetic_faces
    from udc.sdk.models.config import tiny

    return synthetic_faces(tiny(), EVAL_N, seed=0, split="test")


@pytest.fixture(scope="module")
def reference(checkpoint, held_faces):
    from udc.export.reference import reference_io
    from udc.sdk.models.checkpoint import load_checkpoint

    from sdk_bundles import assert_upstream_reaches_logits, model_upstream_deltas

    model = load_checkpoint(checkpoint).eval()
    assert_upstream_reaches_logits(model_upstream_deltas(model), "test_export checkpoint")  # before anything else
    ref = reference_io(model, held_faces)
    logits = ref.tensors["logits"]
    top2 = logits.topk(2, dim=1).values
    assert len(torch.unique(logits.argmax(1))) >= 5, "the fitted head should predict most classes"
    assert float((top2[:, 0] - top2[:, 1]).median()) > 1.0, "reference margins too small for top-1 to mean much"
    return model, ref


def _cli_export(out, *args, eval_n=EVAL_N):
    res = CliRunner().invoke(main, [*args, "--eval-n", str(eval_n), "--threads", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return out, res.output


def _api_export(out, checkpoint, **kw):
    from udc.export.exporter import ExportRequest, run_export

    req = ExportRequest(output=out, checkpoint=checkpoint, eval_n=EVAL_N, calib_n=CALIB_N, threads=1, **kw)
    return run_export(req, log=lambda s: None).path


@pytest.fixture(scope="module")
def et_fp32(tmp_path_factory, checkpoint):
    """The full ExecuTorch/XNNPACK fp32 bundle of ``checkpoint``, through the CLI: the session's one export
    (tests/sdk_bundles.py), shared with the SDK tests."""
    from sdk_bundles import SHARED_EVAL_N, executorch_fp32_cli

    assert SHARED_EVAL_N == EVAL_N
    return executorch_fp32_cli(tmp_path_factory.mktemp("et32"))


@pytest.fixture(scope="module")
def coreml_fp16(tmp_path_factory, checkpoint):
    return _api_export(tmp_path_factory.mktemp("cm16") / "c.udc", checkpoint, target="coreml", quant="fp16")


def _runner(bundle, component):
    from udc.sdk.runtime.runners import load

    names = [i["name"] for i in bundle.manifest["components"][component]["inputs"]]
    run = load(bundle.file(component), input_names=names, threads=1)
    return lambda *a: run({n: t.numpy() for n, t in zip(names, a)})


def _run_all(bundle, ref, component):
    """Run one exported component on every held-out face through udc.sdk.runtime.runners."""
    from udc.export.reference import per_sample

    return per_sample(_runner(bundle, component), ref, component)


def _chain(bundle, ref, model):
    """Logits of the bundle's components run one after the other; a component the bundle lacks
    (partial bundle) is the float reference model."""
    from udc.export.reference import CHAIN, OUTPUT, per_sample

    t = dict(ref.tensors)
    comps = bundle.manifest["components"]
    with torch.no_grad():
        for comp in CHAIN:
            if comp in comps:
                t[OUTPUT[comp]] = per_sample(_runner(bundle, comp), ref, comp, inputs=t)
            elif comp == "clip_image":
                pass  # the reference's own image features
            elif comp == "fpen_s2":
                t["condition"] = model.fpen_s2(t["image_features"])
            elif comp == "denoiser":
                t["epr"] = model.diffusion(t["condition"], t["noise"])
            else:
                t["logits"] = model.udcformer(t["image"], t["landmarks"], t["epr"])
    return t["logits"]


def _fp32_matches(bundle, ref, components):
    for comp in components:
        got = _run_all(bundle, ref, comp)
        bound = 1e-4 * max(1.0, float(ref.output(comp).abs().max()))
        assert float((got - ref.output(comp)).abs().max()) <= bound, comp


def _check_manifest(bundle, target, quant, components=FOUR):
    m = bundle.manifest
    assert m["target"] == target and m["quant"] == quant
    assert list(m["components"]) == components
    assert ("partial" in m) is (components[:4] != FOUR)
    assert m["landmark_layout"]["mediapipe_to_68"]["indices"] == json.loads(
        (B.Path(B.__file__).parents[1] / "data" / "landmarks68.json").read_text())["mediapipe_to_68"]["indices"]
    assert m["preprocessing"]["crop_size"] == 64 and m["preprocessing"]["channel_order"] == "RGB"
    assert m["labels"] == list(tiny().labels) and len(m["labels"]) == 7
    assert m["diffusion"]["steps"] == 4 and len(m["diffusion"]["betas"]) == 4
    assert m["parity"]["inputs"]["n"] == EVAL_N
    assert m["parity"]["passed"] is True, m["parity"]
    for tool in ("torch", "executorch", "coremltools", "onnx", "onnxruntime", "udc"):
        assert m["tools"][tool]


def _checksums_match(path):
    """Every file the manifest lists has the sha256 and size it says (recomputed here, not via load_bundle)."""
    from udc.sdk.hashing import file_sha256

    m = json.loads((path / "manifest.json").read_text())
    n = 0
    for entry in m["components"].values():
        for e in (entry, entry.get("bundled_program")):
            if not e:
                continue
            f = path / e["file"]
            digest = B.tree_sha256(f) if f.is_dir() else file_sha256(f)
            assert digest == e["sha256"], e["file"]
            if f.is_file():
                assert f.stat().st_size == e["size_bytes"], e["file"]
            n += 1
    return n


def _check_int8(bundle, ref, logits):
    """Plain top-1 agreement and cosine of the end-to-end logits, at the issue's thresholds."""
    m = compare(ref.tensors["logits"], logits, logits=True)
    assert m["n"] >= 200
    assert m["cosine"] >= THRESHOLDS["int8"]["cosine"] == 0.99, m
    assert m["top1_agreement"] >= THRESHOLDS["int8"]["top1"] == 0.97, m
    e2e = bundle.manifest["parity"]["end_to_end"]
    assert e2e["metrics"]["top1_agreement"] == pytest.approx(m["top1_agreement"])  # reported as measured
    assert e2e["passed"] is True


def _remeasure_int8(bundle, ref, model, components):
    """Each int8 component re-run here (udc.sdk.runtime.runners) on the held-out faces, not read back from the
    manifest: its own output against the reference, and the logits with only it in int8 (float rest). Its
    int8 error must reach the logits (above the fp32 bound: the logits depend on it) and stay within the
    int8 thresholds. Returns max|d logits| per component."""
    from udc.export.reference import downstream_logits

    t = THRESHOLDS["int8"]
    effect = {}
    for comp in components:
        got = _run_all(bundle, ref, comp)
        own = compare(ref.output(comp), got)
        assert own["cosine"] >= t["cosine"], (comp, own)
        logits = downstream_logits(model, comp, got, ref)
        m = compare(ref.tensors["logits"], logits, logits=True)
        assert m["cosine"] >= t["cosine"] and m["top1_agreement"] >= t["top1"], (comp, m)
        effect[comp] = float((logits - ref.tensors["logits"]).abs().max())
        assert effect[comp] > 1e-4, (comp, effect)  # NaN fails too
    return effect


# ------------------------------------------------------------------------------------------ ExecuTorch
@pytest.mark.slow
def test_executorch_xnnpack_fp32(et_fp32, reference):
    model, ref = reference
    out, output = et_fp32
    assert "Delegation report" in output
    assert re.search(r"component\s+format\s+quant\s+size MB\s+delegated %\s+parity vs reference\s+result", output)
    assert "end-to-end" in output and "FAIL" not in output
    bundle = B.load_bundle(out)
    _check_manifest(bundle, "executorch", "fp32")
    assert bundle.manifest["source"]["checkpoint_sha256"] and bundle.manifest["model"]["random_init"] is False
    for comp in FOUR:
        d = bundle.manifest["components"][comp]["delegation"]
        assert d["non_delegated_compute_pct"] < 5 and d["partitions"] >= 1
        assert all(f["reason"] for f in d["fallback_ops"])
    _fp32_matches(bundle, ref, FOUR)
    logits = _chain(bundle, ref, model)
    assert float((logits - ref.tensors["logits"]).abs().max()) <= 1e-4
    assert _checksums_match(out) == 8  # four .pte + four .bpte


@pytest.mark.slow
def test_executorch_bundled_program_checks_itself(et_fp32):
    from executorch.extension.pybindings import portable_lib

    out, _ = et_fp32
    manifest = json.loads((out / "manifest.json").read_text())
    for comp in ("denoiser", "udcformer"):
        bp = manifest["components"][comp]["bundled_program"]
        assert bp["test_cases"] >= 1
        prog = portable_lib._load_bundled_program_from_buffer((out / bp["file"]).read_bytes())
        for i in range(bp["test_cases"]):
            prog.verify_result_with_bundled_expected_output("forward", i, bp["rtol"], bp["atol"])


@pytest.mark.slow
def test_executorch_xnnpack_int8(tmp_path, checkpoint, reference):
    """int8 fpen_s2 and denoiser (PT2E, XNNPACK), chained with the float CLIP tower and UDCformer: lowering a
    PT2E-quantized graph costs ~0.15 s per node here (clip_image int8: ~90 s), see the module docstring."""
    model, ref = reference
    comps = ["fpen_s2", "denoiser"]
    bundle = B.load_bundle(_api_export(tmp_path / "q.udc", checkpoint, target="executorch", quant="int8",
                                       components=tuple(comps)))
    _check_manifest(bundle, "executorch", "int8", comps)
    q = bundle.manifest["quantization"]
    assert q["calibration"]["n"] == CALIB_N and q["calibration"]["split"] == "train"
    for comp in comps:
        rec = bundle.manifest["components"][comp]["quantization"]
        assert [c["recipe"] for c in rec["candidates"]][0] == "all-int8"
        assert rec["recipe"] == q["decision"][comp]["recipe"] and comp in q["float_kept"]
        assert rec["lowered_checks"] and rec["decision"].startswith(rec["recipe"])
        assert rec["lowered_checks"][-1]["passed"] is True
        d = bundle.manifest["components"][comp]["delegation"]
        assert d["non_delegated_compute_pct"] < 5 and all(f["reason"] for f in d["fallback_ops"])
    _remeasure_int8(bundle, ref, model, comps)
    _check_int8(bundle, ref, _chain(bundle, ref, model))  # 200 held-out faces, not the calibration ones


@pytest.mark.slow
def test_executorch_xnnpack_int8_udcformer_paper_form(tmp_path, checkpoint, reference):
    """issue 15: the UDCformer with the paper's DIL form (the default) quantized int8 (PT2E) and lowered to
    XNNPACK: a recipe record whose lowered program passed its check, the whole graph delegated, and the
    program re-run here on the 200 held-out faces against the fp32 PyTorch UDCformer (int8 thresholds; NaN
    fails). The checkpoint fixture is a tiny model, built with tiny()'s default DIL form."""
    model, ref = reference
    assert tiny().udcformer.dil_form == "paper" and model.cfg.udcformer.dil_form == "paper"
    comps = ["udcformer"]
    bundle = B.load_bundle(_api_export(tmp_path / "q.udc", checkpoint, target="executorch", quant="int8",
                                       components=tuple(comps)))
    _check_manifest(bundle, "executorch", "int8", comps)
    q = bundle.manifest["quantization"]
    rec = bundle.manifest["components"]["udcformer"]["quantization"]
    assert rec["mode"] == "int8" and rec["recipe"] == q["decision"]["udcformer"]["recipe"]
    assert rec["recipe"] in [c["recipe"] for c in rec["candidates"]] and "udcformer" in q["float_kept"]
    assert rec["decision"].startswith(rec["recipe"]) and rec["float_kept"] == q["float_kept"]["udcformer"]
    assert rec["lowered_checks"][-1]["recipe"] == rec["recipe"] and rec["lowered_checks"][-1]["passed"] is True
    lowered = rec["lowered_checks"][-1]["end_to_end"]
    assert lowered["cosine"] >= THRESHOLDS["int8"]["cosine"], lowered  # NaN fails
    d = bundle.manifest["components"]["udcformer"]["delegation"]
    assert d["delegated_pct"] == 100.0 and d["non_delegated_nodes"] == 0 and d["partitions"] >= 1, d
    assert d["non_delegated_compute_pct"] < 5, d
    logits = _run_all(bundle, ref, "udcformer")  # the lowered program, 200 held-out faces
    m = compare(ref.tensors["logits"], logits, logits=True)
    assert m["nonfinite"] == 0 and m["ref_nonfinite"] == 0, m
    assert float((logits - ref.tensors["logits"]).abs().max()) > 1e-4, m  # int8 indeed, not a float program
    _check_int8(bundle, ref, logits)  # cosine >= 0.99, top-1 >= 97 %, the manifest reports what was measured


# ------------------------------------------------------------------------------------------ ONNX
@pytest.mark.slow
def test_onnx_fp32_fused(tmp_path, held_faces):
    """The fused pipeline (one program, the four components inside) from the end-to-end fixtures' model: its
    logits depend on the noise input (positive control, first), and match the reference's."""
    from sdk_bundles import assert_upstream_reaches_logits, chain_upstream_deltas, e2e_checkpoint
    from udc.export.reference import reference_io
    from udc.sdk.runtime.chain import load_chain
    from udc.sdk.models.checkpoint import load_checkpoint

    ckpt = e2e_checkpoint(tmp_path)
    comps = ["clip_image", "fpen_s2", "denoiser", "pipeline"]
    out, output = _cli_export(tmp_path / "f.udc", str(ckpt), "--target", "onnx", "--fuse",
                              "--components", ",".join(comps))
    bundle = B.load_bundle(out)
    fused = load_chain(bundle, "onnxruntime", threads=1, fused=True)
    assert fused.components == ["pipeline"]
    assert_upstream_reaches_logits(chain_upstream_deltas(fused), "fused pipeline", expect=("noise",))
    assert "Delegation report" not in output and "pipeline" in output
    _check_manifest(bundle, "onnx", "fp32", comps)
    ref = reference_io(load_checkpoint(ckpt).eval(), held_faces)
    _fp32_matches(bundle, ref, comps)  # pipeline: the logits, max|d| <= 1e-4
    assert bundle.manifest["wiring"]["fpen_s2.image_features"] == "clip_image.image_features"
    assert bundle.manifest["wiring"]["pipeline.noise"] == "input:noise"
    assert _checksums_match(out) == 4


@pytest.mark.slow
def test_onnx_from_a_fresh_model(tmp_path):
    """No checkpoint (--config tiny): a fresh random-init model, said so in the output and the manifest."""
    from udc.export.exporter import ExportRequest, load_model

    out, output = _cli_export(tmp_path / "r.udc", "--config", "tiny", "--target", "onnx", "--components",
                              "fpen_s2", eval_n=16)
    assert "random-init" in output
    bundle = B.load_bundle(out)
    assert bundle.manifest["model"]["random_init"] is True and bundle.manifest["source"]["checkpoint"] is None
    model = load_model(ExportRequest(output=out, target="onnx", config="tiny"))[0]  # the same seed: the same model
    shape = bundle.manifest["components"]["fpen_s2"]["inputs"][0]["shape"]
    run = _runner(bundle, "fpen_s2")
    with torch.no_grad():
        for seed in range(3):
            x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            got = torch.as_tensor(np.asarray(run(x)[0]))
            assert float((got - model.fpen_s2(x)).abs().max()) <= 1e-4


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "issue 19 finding: once the logits depend on Z (Z-modulated checkpoint), the all-int8 ONNX bundle misses the "
    "int8 thresholds on the 200 held-out faces: end-to-end cosine 0.985, top-1 82.5 % (udcformer alone: cosine "
    "0.986, top-1 83 %; fpen_s2 cosine 0.988 and denoiser 0.989 < 0.99), measured 2026-11-30; the export's own "
    "parity says FAIL. Before, the test passed only because the upstream components could not reach the logits"))
def test_onnx_int8(tmp_path, checkpoint, reference):
    """All four components int8 (ORT static QDQ), chained: the whole model in int8."""
    import onnx

    model, ref = reference
    bundle = B.load_bundle(_api_export(tmp_path / "q.udc", checkpoint, target="onnx", quant="int8"))
    _check_manifest(bundle, "onnx", "int8")
    for comp in FOUR:
        rec = bundle.manifest["components"][comp]["quantization"]
        assert rec["candidates"][0]["recipe"] == "all-int8" and rec["recipe"] in [c["recipe"] for c in rec["candidates"]]
        ops = {n.op_type for n in onnx.load(str(bundle.file(comp))).graph.node}
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops, comp
    _remeasure_int8(bundle, ref, model, FOUR)  # the upstream three too, each on its own
    _check_int8(bundle, ref, _chain(bundle, ref, model))


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.slow
@pytest.mark.parametrize("target", ["executorch", "onnx", "coreml"])
def test_second_export_gives_the_same_manifest(tmp_path, checkpoint, target):
    """Same checkpoint, same command: the same manifest (sha256 of every file included) apart from 'created'."""
    args = [str(checkpoint), "--target", target, "--components", "fpen_s2"]
    a, _ = _cli_export(tmp_path / "a" / "x.udc", *args, eval_n=16)
    b, _ = _cli_export(tmp_path / "b" / "x.udc", *args, eval_n=16)
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma.pop("created") and mb.pop("created")
    assert ma == mb
    # a real bundle, altered: refused
    f = b / ma["components"]["fpen_s2"]["file"]
    if f.is_dir():
        f = max((p for p in f.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(B.BundleError, match=r"fpen_s2\.\w+ is truncated or altered"):
        B.load_bundle(b)


# ------------------------------------------------------------------------------------------ Core ML
def _coreml_spec_checks(bundle):
    from udc.sdk.runtime.coreml_runtime import inspect

    m = bundle.manifest
    assert m["target"] == "coreml" and m["backend"] == "coreml"
    for comp, entry in m["components"].items():
        spec = inspect(bundle.file(comp))
        assert [(i["name"], i["shape"]) for i in spec["inputs"]] == [(i["name"], i["shape"]) for i in entry["inputs"]]
        assert [(o["name"], o["shape"]) for o in spec["outputs"]] == [(o["name"], o["shape"]) for o in entry["outputs"]]
        assert spec["inputs"] and spec["outputs"]
        check = entry["quantization"]["fp16_check"]
        assert check["passed"] and check["ranges"]["max_abs_activation"] < 65504 / 8
        assert m["parity"]["components"][comp]["measured_with"].startswith("torch")


@pytest.mark.slow
def test_coreml_fp16_spec_matches_manifest(coreml_fp16, reference):
    bundle = B.load_bundle(coreml_fp16)
    _check_manifest(bundle, "coreml", "fp16")
    _coreml_spec_checks(bundle)
    assert {e["quantization"]["compute_precision"] for e in bundle.manifest["components"].values()} == {"float16"}
    e2e = bundle.manifest["parity"]["end_to_end"]  # emulated (fp16 rounding of weights and activations)
    assert e2e["metrics"]["cosine"] >= THRESHOLDS["fp16"]["cosine"] and e2e["metrics"]["top1_agreement"] >= 0.99
    assert _checksums_match(coreml_fp16) == 4


@pytest.mark.slow
def test_coreml_int4_palettize_spec(tmp_path, checkpoint):
    comps = ["clip_image", "fpen_s2"]
    bundle = B.load_bundle(_api_export(tmp_path / "p.udc", checkpoint, target="coreml", quant="int4-palettize",
                                       components=tuple(comps)))
    assert list(bundle.manifest["components"]) == comps
    _coreml_spec_checks(bundle)
    rec = bundle.manifest["components"]["clip_image"]["quantization"]
    assert rec["fp16_check"]["compressed_weight_fraction"] > 0.5
    # the palettized weights are really in the package: a constexpr_lut_to_dense op in the program
    import coremltools as ct

    spec = ct.utils.load_spec(str(bundle.file("clip_image")))
    ops = {op.type for f in spec.mlProgram.functions.values() for b in f.block_specializations.values()
           for op in b.operations}
    assert "constexpr_lut_to_dense" in ops
    e2e = bundle.manifest["parity"]["end_to_end"]
    t = THRESHOLDS["int4-palettize"]
    ok = e2e["metrics"]["cosine"] >= t["cosine"] and e2e["metrics"]["top1_agreement"] >= t["top1"]
    assert e2e["passed"] is ok  # reported honestly against the mode's thresholds


@pytest.mark.slow
def test_coreml_prediction(coreml_fp16, reference):
    from udc.sdk.runtime.runners import RuntimeUnavailableError

    bundle = B.load_bundle(coreml_fp16)
    if platform.system() != "Darwin":
        with pytest.raises(RuntimeUnavailableError, match="needs macOS"):
            _runner(bundle, "udcformer")
        pytest.skip(f"Core ML prediction needs macOS (coremltools cannot predict on {platform.system()}); "
                    "the spec checks above ran")
    model, ref = reference
    m = compare(ref.tensors["logits"], _chain(bundle, ref, model), logits=True)
    assert m["cosine"] >= THRESHOLDS["fp16"]["cosine"] and m["top1_agreement"] >= THRESHOLDS["fp16"]["top1"], m


# ------------------------------------------------------------------------------------------ errors
def _cli(args):
    return CliRunner().invoke(main, args)


def _one_line_error(res, pattern):
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and re.search(pattern, lines[0]), res.output


@pytest.mark.parametrize("args, pattern", [
    (["--config", "tiny", "--target", "onnx", "--quant", "int4-palettize"],
     r"--quant int4-palettize is not available for --target onnx .*--target coreml"),
    (["--config", "tiny", "--target", "coreml", "--quant", "int8"],
     r"--quant int8 is not available for --target coreml"),
    (["--config", "tiny", "--target", "executorch", "--backend", "portable", "--quant", "int8"],
     r"not available for --target executorch --backend portable"),
    (["--config", "tiny", "--target", "executorch", "--quant", "int4-palettize"],
     r"--quant int4-palettize is not available for --target executorch --backend xnnpack"),
    (["--config", "tiny", "--target", "onnx", "--backend", "xnnpack"], r"does not apply to --target onnx"),
    (["--config", "tiny", "--target", "coreml", "--backend", "xnnpack"], r"does not apply to --target coreml"),
    (["--config", "tiny", "--target", "tflite"], r"Invalid value for '--target'"),
    (["--config", "tiny", "--target", "onnx", "--components", "clip,denoiser"], r"unknown component clip"),
    (["--target", "onnx"], r"give a CHECKPOINT, or --config"),
])
def test_bad_option_combinations(tmp_path, args, pattern):
    res = _cli([*args, "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, pattern)
    assert res.exit_code == 2 and not list(tmp_path.iterdir())


def test_missing_or_empty_calibration_data(tmp_path):
    res = _cli(["--config", "tiny", "--target", "onnx", "--quant", "int8", "--calib", str(tmp_path / "nope"),
                "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"calibration data .*nope does not exist: pass --calib DIR")
    empty = tmp_path / "faces"
    empty.mkdir()
    res = _cli(["--config", "tiny", "--target", "onnx", "--quant", "int8", "--calib", str(empty),
                "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"calibration data .*faces: no dataset recognised")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces"]


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = _cli([str(bad), "--target", "onnx", "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"is not a readable checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt"]


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "x.udc"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    res = _cli(["--config", "tiny", "--target", "onnx", "-o", str(out)])
    _one_line_error(res, r"x.udc already exists: pass --force to replace it")
    assert (out / "manifest.json").read_text() == "{}"


@pytest.mark.slow
def test_coreml_unsupported_op_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from udc.export import exporter
    from udc.sdk.models.components import Component

    class Lgamma(torch.nn.Module):
        def forward(self, image):
            return torch.lgamma(image.mean(dim=(2, 3)).abs() + 1.0)

    x = torch.rand(1, 3, 64, 64)
    monkeypatch.setattr(exporter, "on_device_components",
                        lambda model, fuse=False: [Component("clip_image", Lgamma(), {"image": x}, ("image_features",))])
    res = _cli(["--config", "tiny", "--target", "coreml", "--eval-n", "8", "-o", str(tmp_path / "x.udc")])
    _one_line_error(res, r"Core ML cannot convert clip_image: coremltools \S+ has no converter for lgamma; export it "
                         r"with --target executorch or --target onnx instead")
    assert not list(tmp_path.iterdir())


def test_calibration_faces_from_a_dataset_directory(tmp_path):
    from udc.export.quant.calibration import calibration_sets
    from udc.sdk.models.config import tiny
    from udc.train.synthetic.dataset import generate_dataset

    root = generate_dataset(tmp_path / "synth", counts={"train": 2, "test": 1}, size=80, progress=False)
    calib, held = calibration_sets(tiny(), root, calib_n=10, eval_n=5)
    assert len(calib) == 10 and len(held) == 5
    assert calib.images.shape == (10, 3, 64, 64) and calib.landmarks.shape == (10, 68, 2)
    assert calib.noise.shape == (10, tiny().fpen.epr_dim)
    assert 0.0 < float(calib.landmarks.min()) and float(calib.landmarks.max()) < 1.0
    assert calib.source["kind"] == "dataset" and calib.source["format"] == "folder"
    assert held.source["role"] == "held_out"
    assert sorted(set(calib.labels.tolist())) == list(range(7))  # class-balanced pick
    again, _ = calibration_sets(tiny(), root, calib_n=10, eval_n=5)
    assert torch.equal(again.images, calib.images) and np.array_equal(again.labels, calib.labels)

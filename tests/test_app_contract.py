"""The contract between the demo apps (android_demo/, ios_demo/) and the bundles udc-export writes.

Nothing here compiles or runs the apps (no Android SDK, Gradle, Xcode or phone on this machine). What is
checked is what can fail on either side of the contract:
  * the manifest JSON Schema (sdk/data/manifest.schema.json) validates manifests that udc-export really
    wrote: a tiny fp32 ExecuTorch/XNNPACK bundle (what the Android app runs) and a tiny Core ML bundle
    (what the iOS app runs), each exported once per session, for both model families (LRDif: four
    components, landmarks + noise; DDAMFN: one component, image only, no diffusion section);
  * every manifest key path the Kotlin and Swift sources read (their ManifestKeys.kt / ManifestKeys.swift,
    parsed here) exists in the schema (required there when the app needs it) and in the real manifest;
    no other app source reads the manifest with a literal key, and no constant is dead;
  * the values the apps compare against (format, schema version, target, wiring syntax, RGB/NCHW,
    softmax, float32) are what the schema and the exporter say;
  * the manifest is consistent the way the apps' BundleManifest.check() needs (app tensor shapes, wiring,
    result/labels), and the exported programs take their inputs the way the apps feed them: by position
    in manifest order for .pte (ExecuTorch method metadata), by name for .mlpackage (the Core ML spec);
  * negative tests: a key renamed in an app source, in the manifest or in the schema is reported; every rule of
    app_checks (478->68 table length and range, canonical landmarks, alignment points, a missing wiring entry,
    a non-float32 input, a missing result output, the fused plan) fails on a mutated copy of a consistent
    manifest (issue 19);
  * source rules (issue 17): every frame / load / benchmark / camera call that can throw sits inside a
    try/catch (Kotlin) or do/catch (Swift), directly or at every call site of its function; Android handles
    window insets; both apps ask for the camera permission (iOS links a denial to Settings); iOS cancels a
    superseded load and never blocks a concurrency thread with queue.sync; Android checks the registered
    ExecuTorch backends before loading; the pinned versions agree across Gradle, Podfile, READMEs and
    pyproject.toml under ExecuTorch's compatibility rule. Each rule is shown failing on an edited copy.
"""
from __future__ import annotations

import copy
import json
import re
import warnings

import pytest

from udc.sdk.runtime import bundle as B

import app_contract as A  # tests/app_contract.py (tests/ is on sys.path under pytest's default import mode)

SCHEMA = json.loads((B.Path(B.__file__).parents[1] / "data" / "manifest.schema.json").read_text())
LANGS = ("kotlin", "swift")
TARGET_OF = {"kotlin": "executorch", "swift": "coreml"}


# ------------------------------------------------------------------------------------------ fixtures
def _export(tmp_path_factory, target: str, family: str = "lrdif"):
    from sdk_bundles import export_bundle  # one export per test session, shared with the SDK tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant = "fp16" if (family == "ddamfn" and target == "coreml") else "fp32"
        path = export_bundle(tmp_path_factory.mktemp(f"app-{family}-{target}"), target, quant, family=family)
    return B.load_bundle(path)  # validates against the schema and checks every sha256


@pytest.fixture(scope="module")
def et_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "executorch")


@pytest.fixture(scope="module")
def coreml_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "coreml")


@pytest.fixture(scope="module")
def ddamfn_et_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "executorch", "ddamfn")


@pytest.fixture(scope="module")
def ddamfn_coreml_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "coreml", "ddamfn")


@pytest.fixture
def bundle_for(et_bundle, coreml_bundle):
    return {"kotlin": et_bundle, "swift": coreml_bundle}


@pytest.fixture
def ddamfn_bundle_for(ddamfn_et_bundle, ddamfn_coreml_bundle):
    return {"kotlin": ddamfn_et_bundle, "swift": ddamfn_coreml_bundle}


# ------------------------------------------------------------------------------------------ the schema
@pytest.mark.slow
def test_schema_validates_real_exported_manifests(et_bundle, coreml_bundle):
    import jsonschema

    for b, target in ((et_bundle, "executorch"), (coreml_bundle, "coreml")):
        jsonschema.Draft202012Validator(SCHEMA).validate(b.manifest)
        assert b.manifest["target"] == target
        assert b.manifest["execution"]["order"] == ["clip_image", "fpen_s2", "denoiser", "udcformer"]
        assert b.manifest["preprocessing"]["input"] == "image"
    assert et_bundle.manifest["components"]["clip_image"]["format"] == "pte"
    assert coreml_bundle.manifest["components"]["clip_image"]["format"] == "mlpackage"


@pytest.mark.slow
def test_schema_validates_real_ddamfn_manifests(ddamfn_et_bundle, ddamfn_coreml_bundle):
    import jsonschema

    for b, target, fmt in ((ddamfn_et_bundle, "executorch", "pte"), (ddamfn_coreml_bundle, "coreml", "mlpackage")):
        m = b.manifest
        jsonschema.Draft202012Validator(SCHEMA).validate(m)
        assert m["target"] == target and m["family"] == "ddamfn" and "diffusion" not in m
        assert m["execution"]["order"] == ["ddamfn"] and m["components"]["ddamfn"]["format"] == fmt
        assert m["wiring"] == {"ddamfn.image": "input:" + m["preprocessing"]["input"]}
    m = copy.deepcopy(ddamfn_et_bundle.manifest)
    m["family"] = "lrdif"  # an lrdif manifest without the four components and the diffusion section is refused
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(m))


@pytest.mark.slow  # needs the session's exported bundle (minutes on 2 cores)
def test_old_lrdif_manifests_without_family_still_validate(et_bundle):
    import jsonschema

    m = copy.deepcopy(et_bundle.manifest)
    assert m.pop("family") == "lrdif"  # what manifests written before the field look like
    m["model"].pop("family")
    jsonschema.Draft202012Validator(SCHEMA).validate(m)
    m.pop("diffusion")
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(m))  # LRDif still needs its diffusion section


# ------------------------------------------------------------------------------------------ the key paths
@pytest.mark.parametrize("lang", LANGS)
def test_app_keys_are_schema_paths(lang):
    app = A.load_app_keys(lang)
    assert len(app.keys) >= 30, "the parser found too few keys: did the ManifestKeys layout change?"
    assert A.check_keys(app, SCHEMA) == []


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_app_keys_resolve_in_a_real_manifest(lang, bundle_for):
    app = A.load_app_keys(lang)
    assert A.check_keys(app, SCHEMA, bundle_for[lang].manifest) == []


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_app_keys_resolve_in_a_real_ddamfn_manifest(lang, ddamfn_bundle_for, bundle_for):
    """Every key an app needs is in a DDAMFN manifest too; what it lacks beyond an LRDif manifest is exactly
    the diffusion/noise keys, optional in the app, which reads the family and needs them only for lrdif."""
    app = A.load_app_keys(lang)
    m = ddamfn_bundle_for[lang].manifest
    assert A.check_keys(app, SCHEMA, m) == []

    def absent(manifest):
        return {k.path for k in app.keys if A.manifest_problems(A.Key(k.const, k.path, False), manifest)}

    assert absent(m) - absent(bundle_for[lang].manifest) == {
        "diffusion.steps", "diffusion.noise.input", "diffusion.noise.shape", "diffusion.noise.distribution"}
    assert all(app.paths()[p].optional for p in absent(m))
    assert app.paths()["family"].optional and m["family"] == "ddamfn"


def test_both_apps_read_the_same_core_keys():
    """The preprocessing, execution, diffusion-noise and landmark keys are the same paths on both platforms."""
    kt, sw = (set(A.load_app_keys(lang).paths()) for lang in LANGS)
    core = {p for p in kt | sw if p.split(".")[0] in ("preprocessing", "execution", "diffusion", "landmark_layout",
                                                     "components", "wiring", "labels")}
    kt_only = {p for p in core - sw if p != "components.*.size_bytes"}  # Android checks sizes, iOS hashes trees
    assert kt_only == set() and core - kt == set()


@pytest.mark.parametrize("lang", LANGS)
def test_no_manifest_key_outside_manifest_keys_and_none_unused(lang):
    sources = A.app_sources(lang)
    assert len(sources) >= 6
    app = A.load_app_keys(lang)
    assert A.raw_key_accesses(sources, lang) == []
    assert A.unused_keys(app, sources) == []


def test_app_syntax_constants_match_schema_and_sdk():
    import udc.sdk.runtime.bundle as bundle

    props = SCHEMA["properties"]
    tensor_dtypes = SCHEMA["$defs"]["tensor"]["properties"]["dtype"]["enum"]
    for lang in LANGS:
        v = {k.replace("_", "").lower(): val for k, val in A.load_app_keys(lang).syntax.items()}
        manifest_file, fmt, version, target, wiring_prefix, rgb, nchw, softmax, f32 = (
            v[k] for k in ("manifestfile", "formatvalue", "schemaversionsupported", "targetvalue", "wiringappinput",
                           "channelordervalue", "layoutvalue", "activationsoftmax", "dtypefloat32"))
        assert manifest_file == bundle.MANIFEST
        assert fmt == props["format"]["const"]
        assert version == bundle.SCHEMA_VERSION
        assert target == TARGET_OF[lang] and target in props["target"]["enum"]
        assert wiring_prefix == "input:"
        assert rgb == props["preprocessing"]["properties"]["channel_order"]["const"]
        assert nchw == props["preprocessing"]["properties"]["layout"]["const"]
        assert softmax in props["execution"]["properties"]["activation"]["enum"]
        assert f32 in tensor_dtypes


# ------------------------------------------------------------------------------------------ what the apps rely on
@pytest.mark.slow
def test_real_manifests_pass_what_the_apps_check(et_bundle, coreml_bundle, ddamfn_et_bundle, ddamfn_coreml_bundle):
    for b in (ddamfn_et_bundle, ddamfn_coreml_bundle):  # image only: the wiring asks for nothing else
        assert A.app_checks(b.manifest) == []
    for b in (et_bundle, coreml_bundle):
        m = b.manifest
        assert A.app_checks(m) == []
        prefix = A.load_app_keys("kotlin").syntax["WIRING_APP_INPUT"]
        outputs = {f"{c}.{o['name']}" for c, e in m["components"].items() for o in e["outputs"]}
        for src in m["wiring"].values():  # every source is an app tensor or an earlier output
            assert src.startswith(prefix) or src in outputs, src
        assert m["diffusion"]["noise"]["shape"] == next(
            t["shape"] for t in m["components"]["denoiser"]["inputs"] if t["name"] == m["diffusion"]["noise"]["input"])
        assert m["landmark_layout"]["mediapipe_to_68"]["indices"] == json.loads(
            (B.Path(B.__file__).parents[1] / "data" / "landmarks68.json").read_text())["mediapipe_to_68"]["indices"]


@pytest.mark.slow
def test_pte_inputs_are_positional_in_manifest_order(et_bundle, ddamfn_et_bundle):
    """The Android app calls forward() with the inputs in the order the manifest lists them."""
    from executorch.runtime import Runtime

    rt = Runtime.get()
    for b, comp in [(b, c) for b in (et_bundle, ddamfn_et_bundle) for c in b.manifest["execution"]["order"]]:
        entry = b.manifest["components"][comp]
        meta = rt.load_program(b.file(comp)).load_method("forward").metadata
        assert meta.num_inputs() == len(entry["inputs"]), comp
        for i, t in enumerate(entry["inputs"]):
            assert list(meta.input_tensor_meta(i).sizes()) == t["shape"], (comp, t["name"])
        assert meta.num_outputs() == len(entry["outputs"]), comp
        for k, t in enumerate(entry["outputs"]):
            assert list(meta.output_tensor_meta(k).sizes()) == t["shape"], (comp, t["name"])


@pytest.mark.slow
def test_mlpackage_inputs_are_named_as_in_the_manifest(coreml_bundle, ddamfn_coreml_bundle):
    """The iOS app feeds Core ML by the manifest's input names and reads outputs by name."""
    from udc.sdk.runtime.coreml_runtime import inspect

    for b, comp in [(b, c) for b in (coreml_bundle, ddamfn_coreml_bundle) for c in b.manifest["execution"]["order"]]:
        entry = b.manifest["components"][comp]
        spec = inspect(b.file(comp))
        assert {i["name"]: i["shape"] for i in spec["inputs"]} == {t["name"]: t["shape"] for t in entry["inputs"]}
        got_out = {o["name"]: o for o in spec["outputs"]}
        for t in entry["outputs"]:
            assert got_out[t["name"]]["shape"] == t["shape"], (comp, t["name"])
            # fp16 programs may declare Float16 outputs while the manifest says float32: the Swift runner
            # allocates its output backings in the model's declared type and converts, so both must be handled
            assert got_out[t["name"]]["dtype"] in ("float32", "float16")
        assert all(i["dtype"] == "float32" for i in spec["inputs"])  # the app feeds float32


# ------------------------------------------------------------------------------------------ negative tests
def _renamed_source(lang: str, old: str, new: str) -> str:
    text = (A.KOTLIN_KEYS if lang == "kotlin" else A.SWIFT_KEYS).read_text()
    assert f'"{old}"' in text
    return text.replace(f'"{old}"', f'"{new}"')


@pytest.mark.parametrize("lang", LANGS)
def test_a_key_renamed_in_the_app_fails_the_check(lang):
    app = A.parse_keys(_renamed_source(lang, "preprocessing.crop_size", "preprocessing.crop_px"), lang)
    problems = A.check_keys(app, SCHEMA)
    assert len(problems) == 1 and "no key 'crop_px'" in problems[0]
    app = A.parse_keys(_renamed_source(lang, "components.*.inputs[].name", "components.*.input[].name"), lang)
    assert any("no key 'input'" in p for p in A.check_keys(app, SCHEMA))


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_a_key_renamed_in_the_manifest_or_schema_fails_the_check(lang, bundle_for):
    app = A.load_app_keys(lang)
    m = copy.deepcopy(bundle_for[lang].manifest)
    m["preprocessing"]["crop_px"] = m["preprocessing"].pop("crop_size")
    problems = A.check_keys(app, SCHEMA, m)
    assert any("has no 'crop_size' in 'manifest.preprocessing'" in p for p in problems), problems
    m = copy.deepcopy(bundle_for[lang].manifest)
    for entry in m["components"].values():
        for t in entry["inputs"]:
            t["id"] = t.pop("name")
    assert any("no 'name' in 'manifest.components." in p for p in A.check_keys(app, SCHEMA, m))
    s = copy.deepcopy(SCHEMA)
    noise = s["properties"]["diffusion"]["properties"]["noise"]
    noise["properties"]["size"] = noise["properties"].pop("shape")
    noise["required"] = [r if r != "shape" else "size" for r in noise["required"]]
    assert any("no key 'shape' in 'manifest.diffusion.noise'" in p for p in A.check_keys(app, s))
    s = copy.deepcopy(SCHEMA)
    s["properties"]["preprocessing"]["required"].remove("input")  # made optional: the app needs it
    assert any("'input' is optional in the schema" in p for p in A.check_keys(app, s))


def test_literal_keys_and_dead_constants_are_caught():
    kt = {"ManifestKeys.kt": A.KOTLIN_KEYS.read_text(),
          "Other.kt": 'val n = root.getJSONObject("preprocessing").getInt("crop_size")\nval s = w.opt("$a.$b")\n'}
    assert [b.split(":")[0] for b in A.raw_key_accesses(kt, "kotlin")] == ["Other.kt"]
    sw = {"ManifestKeys.swift": A.SWIFT_KEYS.read_text(), "Other.swift": 'let l = json["labels"] as? [String]\n'}
    assert len(A.raw_key_accesses(sw, "swift")) == 1
    app = A.load_app_keys("kotlin")
    assert set(A.unused_keys(app, kt)) == {k.const for k in app.keys}  # Other.kt uses no constant


@pytest.mark.slow
def test_app_checks_catch_an_inconsistent_manifest(et_bundle):
    m = copy.deepcopy(et_bundle.manifest)
    m["diffusion"]["noise"]["shape"] = [1, 3]
    assert any("denoiser.noise has shape" in p for p in A.app_checks(m))
    m = copy.deepcopy(et_bundle.manifest)
    m["labels"] = m["labels"][:-1]
    assert any("one value per label" in p for p in A.app_checks(m))
    m = copy.deepcopy(et_bundle.manifest)
    m["wiring"]["udcformer.epr"] = "fpen_s2.nothing"
    assert any("which nothing before it makes" in p for p in A.app_checks(m))
    m = copy.deepcopy(et_bundle.manifest)
    m["partial"] = {"components": ["clip_image"], "reason": "debugging"}
    assert any("partial bundle" in p for p in A.app_checks(m))
    m = copy.deepcopy(et_bundle.manifest)
    del m["diffusion"]  # an lrdif bundle without its noise spec: the apps refuse it (and the denoiser has no input)
    assert any("needs diffusion.noise" in p for p in A.app_checks(m))
    m = copy.deepcopy(et_bundle.manifest)
    m["family"] = "resnet"
    assert any("family 'resnet'" in p for p in A.app_checks(m))


# ------------------------------------------------------------------------------------------ the preprocessing spec
def test_the_apps_preprocessing_reproduces_the_sdk_face_pipeline(model):
    """The apps' crop (FacePreprocessor.kt/.swift, ported to numpy in app_contract.reference_preprocess) made
    from the manifest's values equals udc.sdk's FacePipeline + to_model_input on a real photo (to one uint8
    step on under 0.1 % of the pixels: PIL computes in float32; rounding instead of truncating would move ~half). MediaPipe's 478 points are simulated: the 68 face points at the table's mesh
    indices (a rotated, scaled, noisy canonical face on the astronaut), the rest random."""
    import math

    import numpy as np
    from skimage import data

    from udc.export import bundle_writer
    from udc.sdk.faces.pipeline import FacePipeline, to_model_input
    from udc.sdk.faces.landmarks import canonical_landmarks, layout

    cfg = model.cfg
    manifest = {"preprocessing": bundle_writer.preprocessing(cfg), "landmark_layout": dict(layout())}
    rgb = data.astronaut()
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(0)
    ang, scale = 0.25, 2.6
    rot = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    lm68 = (canonical_landmarks().numpy() * 64) @ rot.T * scale + [160, 30] + rng.normal(0, 1.5, (68, 2))
    mesh = rng.uniform(0, 1, (478, 2))
    mesh[manifest["landmark_layout"]["mediapipe_to_68"]["indices"]] = lm68 / [w, h]
    x, lms = A.reference_preprocess(manifest, rgb, mesh)
    face = FacePipeline(crop_size=cfg.image_size)(rgb, landmarks=(mesh * [w, h])[
        manifest["landmark_layout"]["mediapipe_to_68"]["indices"]])
    want = to_model_input([face.image], cfg.mean, cfg.std).numpy()
    assert x.shape == want.shape == (1, 3, cfg.image_size, cfg.image_size)
    levels = np.abs(x - want) * np.asarray(cfg.std, np.float32)[None, :, None, None] * 255  # in uint8 steps
    assert levels.max() < 1 + 1e-3 and (levels > 1e-3).mean() < 1e-3  # PIL's float32 math: a rare 1-step tie
    np.testing.assert_allclose(lms, face.landmarks, atol=1e-5)


# ------------------------------------------------------------------------------------------ issue 19: the app checks fail
def _synthetic_manifest() -> dict:
    """A small, consistent LRDif manifest with a fused 'pipeline' (the exporter's own preprocessing, wiring and
    execution sections; shapes made up), so every rule of app_checks can be shown failing without an export."""
    from types import SimpleNamespace

    from udc.export import bundle_writer as BW
    from udc.sdk.faces.landmarks import layout

    cfg = SimpleNamespace(image_size=32, mean=[0.5] * 3, std=[0.25] * 3, num_landmarks=68)
    names = ["clip_image", "fpen_s2", "denoiser", "udcformer", "pipeline"]
    shapes = {"image": [1, 3, 32, 32], "landmarks": [1, 68, 2], "noise": [1, 8], "image_features": [1, 16],
              "condition": [1, 8], "epr": [1, 8], "logits": [1, 7]}
    tensor = lambda n: {"name": n, "shape": list(shapes[n]), "dtype": "float32"}  # noqa: E731
    return {
        "family": "lrdif",
        "labels": ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"],
        "preprocessing": BW.preprocessing(cfg),
        "diffusion": {"steps": 4, "noise": {"input": "noise", "shape": [1, 8], "distribution": "N(0, I)"}},
        "landmark_layout": copy.deepcopy(dict(layout())),
        "execution": BW.execution(names),
        "wiring": BW.wiring(names),
        "components": {c: {"format": "pte", "inputs": [tensor(i) for i in BW.INPUTS[c]],
                           "outputs": [tensor(BW.OUTPUT[c])]} for c in names},
    }


def _table(m):
    return m["landmark_layout"]["mediapipe_to_68"]["indices"]


def _inp(m, comp, name):
    return next(t for t in m["components"][comp]["inputs"] if t["name"] == name)


# (rule, fused plan?, mutation, what the report must say)
APP_CHECK_FAILURES = [
    ("478->68 table one entry short", False, lambda m: _table(m).pop(), "does not have one entry per landmark"),
    ("478->68 table one entry long", False, lambda m: _table(m).append(0), "does not have one entry per landmark"),
    ("478->68 index past the mesh", False, lambda m: _table(m).__setitem__(5, 478), "indexes outside MediaPipe's 478"),
    ("478->68 negative index", False, lambda m: _table(m).__setitem__(0, -1), "indexes outside MediaPipe's 478"),
    ("canonical landmarks one short", False,
     lambda m: m["preprocessing"]["alignment"]["canonical_landmarks"].pop(), "canonical_landmarks does not have one"),
    ("alignment point outside the 68", False,
     lambda m: m["preprocessing"]["alignment"]["alignment_points"].__setitem__(0, 68), "alignment_points outside"),
    ("missing wiring entry", False, lambda m: m["wiring"].pop("udcformer.epr"), "wiring has no udcformer.epr"),
    ("missing wiring entry of an app input", False, lambda m: m["wiring"].pop("clip_image.image"),
     "wiring has no clip_image.image"),
    ("non-float32 intermediate", False, lambda m: _inp(m, "fpen_s2", "image_features").update(dtype="float16"),
     "fpen_s2.image_features is float16"),
    ("non-float32 app input", False, lambda m: _inp(m, "clip_image", "image").update(dtype="int8"),
     "clip_image.image is int8"),
    ("missing result output", False, lambda m: m["execution"].update(result="probs"), "udcformer has no output 'probs'"),
    ("result output renamed in the last component", False,
     lambda m: m["components"]["udcformer"]["outputs"][0].update(name="scores"), "udcformer has no output 'logits'"),
    ("an intermediate from nowhere", False, lambda m: m["wiring"].update({"udcformer.epr": "fpen_s2.epr"}),
     "which nothing before it makes"),
    # the fused path: the plan is the 'pipeline' component alone
    ("fused: input wired to an unfused component's output", True,
     lambda m: m["wiring"].update({"pipeline.noise": "denoiser.epr"}), "pipeline.noise comes from 'denoiser.epr'"),
    ("fused: missing wiring entry", True, lambda m: m["wiring"].pop("pipeline.landmarks"),
     "wiring has no pipeline.landmarks"),
    ("fused: non-float32 input", True, lambda m: _inp(m, "pipeline", "image").update(dtype="float16"),
     "pipeline.image is float16"),
    ("fused: crop shape differs from the app's", True, lambda m: _inp(m, "pipeline", "image").update(shape=[1, 3, 64, 64]),
     "pipeline.image has shape [1, 3, 64, 64]"),
    ("fused: missing result output", True,
     lambda m: m["components"]["pipeline"]["outputs"][0].update(name="probs"), "pipeline has no output 'logits'"),
    ("fused: names no component", True, lambda m: m["execution"].update(fused="pipeline_v2"), "'pipeline_v2' (execution)"),
]


@pytest.fixture(scope="module")
def synthetic_manifest():
    m = _synthetic_manifest()
    # positive control, before anything else: the unmutated manifest passes on both plans
    assert A.app_checks(m) == [] and A.app_checks(m, fused=True) == []
    return m


@pytest.mark.parametrize("rule,fused,mutate,expected", APP_CHECK_FAILURES, ids=[r[0] for r in APP_CHECK_FAILURES])
def test_app_checks_fail_on_each_rule(synthetic_manifest, rule, fused, mutate, expected):
    m = copy.deepcopy(synthetic_manifest)
    mutate(m)
    problems = A.app_checks(m, fused=fused)
    assert any(expected in p for p in problems), (rule, problems)


def test_app_checks_follow_the_chosen_plan(synthetic_manifest):
    """A fault in the unfused chain does not concern the fused plan and the other way round: each plan is
    checked on what it runs."""
    m = copy.deepcopy(synthetic_manifest)
    m["wiring"].pop("udcformer.epr")
    assert A.app_checks(m, fused=True) == [] and A.app_checks(m)
    m = copy.deepcopy(synthetic_manifest)
    m["wiring"].pop("pipeline.noise")
    assert A.app_checks(m) == [] and A.app_checks(m, fused=True)


# the same rules in the apps' own BundleManifest.check (what the Python port above stands for)
APP_RULES = {
    "kotlin": [r"ManifestKeys\.MEDIAPIPE_TO_68\}? has", r"it !in 0 until ManifestSyntax\.MEDIAPIPE_MESH_POINTS",
               r"ManifestKeys\.CANONICAL_LANDMARKS", r"ManifestKeys\.ALIGNMENT_POINTS",
               r"does not say where", r"spec\.dtype != ManifestSyntax\.DTYPE_FLOAT32", r"has no output '\$result'",
               r"fun plan\(useFused: Boolean\)"],
    "swift": [r"ManifestKeys\.mediapipeTo68\)? has", r"\$0 >= ManifestSyntax\.mediapipeMeshPoints",
              r"ManifestKeys\.canonicalLandmarks", r"ManifestKeys\.alignmentPoints",
              r"does not say where", r"spec\.dtype != ManifestSyntax\.dtypeFloat32", r"has no output '\\\(result\)'",
              r"func plan\(useFused: Bool\)"],
}


@pytest.mark.parametrize("lang", LANGS)
def test_both_apps_implement_each_rule(lang):
    text = A.app_sources(lang)["BundleManifest.kt" if lang == "kotlin" else "BundleManifest.swift"]
    missing = [r for r in APP_RULES[lang] if not re.search(r, text)]
    assert missing == []
    assert A.load_app_keys(lang).syntax["MEDIAPIPE_MESH_POINTS" if lang == "kotlin" else "mediapipeMeshPoints"] == \
        A.MEDIAPIPE_MESH_POINTS


# ------------------------------------------------------------------------------------------ issue 17: source rules
FRAME_FILE = {"kotlin": "MainActivity.kt", "swift": "DemoModel.swift"}


@pytest.mark.parametrize("lang", LANGS)
def test_every_frame_path_is_inside_a_try_catch(lang):
    assert A.frame_path_problems(lang) == []


# (lang, what is broken, edit of the source) -> the checker must report it
UNGUARDED = [
    ("kotlin", "catch narrowed", lambda s: s.replace("catch (e: Throwable)", "catch (e: IllegalStateException)")),
    ("kotlin", "analyze without try", lambda s: s.replace(
        "            analyzeFrame(image, lmk, p, r, out)\n", "").replace(
        "    private fun analyze(image: ImageProxy) {\n", "    private fun analyze(image: ImageProxy) {\n"
        "        analyzeFrame(image, landmarker!!, pre!!, runner!!, result!!)\n")),
    ("kotlin", "a new unguarded caller", lambda s: s.replace(
        "    companion object {", "    private fun again() { runner?.run() }\n\n    companion object {")),
    ("swift", "process without do/catch", lambda s: s.replace(
        "        do {\n            let t0 = DispatchTime", "        if true {\n            let t0 = DispatchTime")),
    ("swift", "a throwing helper nobody guards", lambda s: s.replace(
        "    static func findBundle()", "    func again() throws {\n        guard let runner = runner else { return }\n        try runner.run()\n    }\n\n"
        "    static func findBundle()")),
    ("swift", "reload catches only cancellation", lambda s: s.replace(
        "            } catch {\n                guard generation", "            } catch let e as ManifestError {\n"
        "                guard generation")),
]


@pytest.mark.parametrize("lang,what,edit", UNGUARDED, ids=[f"{u[0]}-{u[1]}" for u in UNGUARDED])
def test_an_unguarded_frame_path_is_reported(lang, what, edit):
    sources = A.app_sources(lang)
    edited = edit(sources[FRAME_FILE[lang]])
    assert edited != sources[FRAME_FILE[lang]], f"the edit '{what}' no longer applies: update it"
    assert A.frame_path_problems(lang, {**sources, FRAME_FILE[lang]: edited})


def test_window_insets_are_handled():
    text = (A.KOTLIN_DIR / "MainActivity.kt").read_text()
    assert A.inset_problems(text) == []
    broken = {
        "no listener": text.replace("ViewCompat.setOnApplyWindowInsetsListener(binding.root)", "run"),
        "controls not padded": re.sub(r"binding\.controls\.updatePadding\([^\n]*\n", "\n", text),
        "status not padded": re.sub(r"binding\.status\.updatePadding\([^\n]*\n", "\n", text),
        "never installed": text.replace("        applyWindowInsets()\n", ""),
        "not edge to edge below Android 15": text.replace("WindowCompat.setDecorFitsSystemWindows(window, false)", ""),
    }
    for what, t in broken.items():
        assert t != text, what
        assert A.inset_problems(t), what


@pytest.mark.parametrize("lang", LANGS)
def test_camera_permission_is_asked_for(lang):
    if lang == "kotlin":
        text, decl = (A.KOTLIN_DIR / "MainActivity.kt").read_text(), (A.ANDROID_DIR / "app/src/main/AndroidManifest.xml").read_text()
        cuts = ["ActivityResultContracts.RequestPermission()", "Manifest.permission.CAMERA) == "]
        decl_cut = '<uses-permission android:name="android.permission.CAMERA" />'
    else:
        text, decl = (A.SWIFT_DIR / "DemoModel.swift").read_text(), (A.IOS_DIR / "project.yml").read_text()
        cuts = ["AVCaptureDevice.requestAccess(for: .video)", "AVCaptureDevice.authorizationStatus(for: .video)"]
        decl_cut = "NSCameraUsageDescription:"
    assert A.permission_problems(lang, text, decl) == []
    for cut in cuts:
        assert cut in text
        assert A.permission_problems(lang, text.replace(cut, "x()"), decl), cut
    assert decl_cut in decl and A.permission_problems(lang, text, decl.replace(decl_cut, ""))


def test_ios_links_a_denied_camera_to_settings():
    view = A.strip_code((A.SWIFT_DIR / "ContentView.swift").read_text())
    assert "UIApplication.openSettingsURLString" in view and "case .denied" in view
    assert re.search(r"model\.startCameraIfAllowed\(\)", view)  # re-checked when the app comes back from Settings


def test_ios_loads_are_cancelled_and_never_block_a_concurrency_thread():
    model = A.strip_code((A.SWIFT_DIR / "DemoModel.swift").read_text())
    assert "queue.sync" not in model
    assert re.search(r"previous\?\.cancel\(\)", model) and re.search(r"await previous\?\.value", model)
    assert "withCheckedThrowingContinuation" in model
    service = (A.SWIFT_DIR / "FaceLandmarkerService.swift").read_text()
    assert re.search(r"^import Foundation\b", service, re.M)


def test_android_closes_the_runtime_on_the_worker_and_forgets_it():
    code = A.strip_code((A.KOTLIN_DIR / "MainActivity.kt").read_text())
    on_destroy = next(code[a:b] for name, a, b in A.functions(code, "kotlin") if name == "onDestroy")
    assert re.search(r"clearAnalyzer\(\)", on_destroy)
    assert re.search(r"worker\.execute\s*\{[^}]*runner\s*=\s*null", on_destroy, re.S)
    runner = A.strip_code((A.KOTLIN_DIR / "UdcRunner.kt").read_text())
    assert "ExecuTorchRuntime.getRegisteredBackends()" in runner and "getMethodMetadata(" in runner
    set_up = next(runner[a:b] for name, a, b in A.functions(runner, "kotlin") if name == "setUp")
    assert set_up.index("getRegisteredBackends") < set_up.index("loadMethod")  # refused before any method loads


# ------------------------------------------------------------------------------------------ pinned versions
def test_pinned_versions_agree_everywhere():
    assert A.version_problems(A.version_texts()) == []


def test_a_version_drift_is_reported():
    t = A.version_texts()
    v = A.pinned_versions(t)
    drift = {
        "README names another tasks-vision": ("android_readme", lambda s: s.replace(
            f"tasks-vision:{v['tasks_vision']}", "tasks-vision:0.10.21")),
        "Podfile bumped, iOS README not": ("podfile", lambda s: s.replace(f"'{v['pod']}'", "'0.10.99'")),
        "Python exports with a newer executorch": ("pyproject", lambda s: s.replace(
            f'"executorch=={v["executorch_python"]}"', '"executorch==9.0.0"')),
        "Gradle too old for AGP": ("wrapper", lambda s: s.replace(f"gradle-{v['gradle']}-", "gradle-8.10.2-")),
        "BuildConfig not the pinned version": ("app_gradle", lambda s: s.replace("\"\\\"$executorchVersion\\\"\"", '"\\"1.0.0\\""')),
        "main README behind": ("readme_apps", lambda s: s.replace(f"executorch-android` {v['executorch_android']}", "executorch-android` 1.4.1")),
    }
    for what, (key, edit) in drift.items():
        edited = edit(t[key])
        assert edited != t[key], f"the edit '{what}' no longer applies: update it"
        assert A.version_problems({**t, key: edited}), what


@pytest.mark.parametrize("exporter,runtime,verdict", [
    ("1.5.1", "1.5.1", "OK"), ("1.5.0", "1.5.1", "OK"), ("1.5.1", "1.6.0", "OK"), ("1.5.1", "1.4.1", "RUNTIME_TOO_OLD"),
    ("1.5.1", "1.7.0", "BEYOND_GUARANTEE"), ("1.5.1", "2.0.0", "BEYOND_GUARANTEE"), ("2.0.0", "1.9.9", "RUNTIME_TOO_OLD"),
    ("1.5.0+cpu", "1.5.1", "OK"), ("1.6.0.dev20260801", "1.5.1", "RUNTIME_TOO_OLD"), ("unknown", "1.5.1", "UNKNOWN"),
])
def test_executorch_compatibility_rule(exporter, runtime, verdict):
    """ExecuTorch runtime/COMPATIBILITY.md, as RuntimeChecks.kt applies it (ported in app_contract)."""
    assert A.executorch_verdict(exporter, runtime) == verdict


@pytest.mark.parametrize("lang,source,flagged", [
    ("kotlin", "fun a() { try { b.run() } catch (e: Exception) { } }", False),
    ("kotlin", "fun a() { try { b.run() } catch (e: java.io.IOException) { } }", True),
    ("kotlin", "fun a() { try { b.run() } finally { } }", True),
    ("kotlin", "fun a() { c() }\nfun c() { b.run() }", True),
    ("kotlin", "fun a() { try { c() } catch (e: Throwable) { } }\nfun c() { b.run() }", False),
    ("kotlin", "fun a() { try { c() } catch (e: Throwable) { } }\nfun d() { c() }\nfun c() { b.run() }", True),
    ("kotlin", 'fun a() { val s = "b.run()" // b.run()\n}', False),
    ("swift", "func a() { do { try b.run() } catch { } }", False),
    ("swift", "func a() { do { try b.run() } catch let e as MyError { } }", True),
    ("swift", "func a() throws { try b.run() }", True),
    ("swift", "func a() { _ = try? b.run() }", False),
    ("swift", "func a() { q.async { do { try b.run() } catch { print(error) } } }", False),
])
def test_the_try_catch_checker_itself(lang, source, flagged):
    assert bool(A.unguarded_calls(source, lang, [r"\bb\.run\(\)"])) == flagged

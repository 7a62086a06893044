"""``--recipes-from BUNDLE`` (udc.export.quant.recipe_hints): an earlier int8 bundle's recipe is scored first and,
if it meets the thresholds here, is the choice; if it misses, the search runs exactly as without it. The bundle
is refused when it cannot guide this model (not int8, another config, damaged records, unknown layers)."""
from __future__ import annotations

import json
import math
import shutil

import pytest
from click.testing import CliRunner

from sdk_bundles import export_bundle
from test_recipe_selection import LAYERS, LOW_TOP1, PASS, R0, R1, R2, TOP, Script, _sens, metrics
from udc.export.quant.recipe_hints import RecipeHint, RecipeHintError, read_hints
from udc.export.quant.recipes import RECIPES, candidate_passes, choose_recipe, sensitive_recipe


# ------------------------------------------------------------------------------------------ choose_recipe
SEARCH = {(R0, ()): LOW_TOP1, (R1, ()): LOW_TOP1, (R2, ()): LOW_TOP1, _sens(1): LOW_TOP1, _sens(2): PASS}


def _choose(table, hint):
    ev = Script(table, LAYERS)
    logged = []
    out = choose_recipe(ev, RECIPES, ranking=ev.ranking, n_layers=len(LAYERS), log=logged.append, hint=hint)
    return ev, out, logged


def test_a_hint_that_passes_is_the_only_candidate_scored():
    hint = RecipeHint(sensitive_recipe(2), tuple(TOP[:2]), "old.udc")
    ev, (chosen, cands, extra), _ = _choose(SEARCH, hint)
    assert chosen == sensitive_recipe(2) and ev.calls == [_sens(2)] and ev.rankings == 0
    assert [c.recipe for c in cands] == [chosen] and cands[0].passed
    assert extra["kept"] == {chosen: TOP[:2]} and extra["ranking"] is None
    assert "old.udc" in extra["basis"] and extra["basis"].startswith("thresholds")
    assert extra["hint"]["passed"] is True and extra["hint"]["from"] == "old.udc"
    assert extra["hint"]["kept_layers"] == TOP[:2]


@pytest.mark.parametrize("bad", [LOW_TOP1, metrics(cos=math.nan), metrics(comp=math.nan), metrics(top1=math.nan)])
def test_a_hint_that_misses_leaves_the_search_as_without_it(bad):
    """The hinted recipe is scored first; when it misses (NaN included) the search's calls, candidates and choice
    are those of a run without the hint, and the hint's verdict is kept aside."""
    hint = RecipeHint(R1, (), "old.udc")
    ev, (chosen, cands, extra), logged = _choose({**SEARCH, (R1, ()): bad}, hint)
    plain = Script({**SEARCH, (R1, ()): bad}, LAYERS)
    want = choose_recipe(plain, RECIPES, ranking=plain.ranking, n_layers=len(LAYERS))
    assert ev.calls == [(R1, ())] + plain.calls  # the hint first, then the whole search
    assert (chosen, [c.recipe for c in cands]) == (want[0], [c.recipe for c in want[1]])
    assert chosen == sensitive_recipe(2) and extra["basis"] == want[2]["basis"]
    assert extra["hint"]["passed"] is False and extra["hint"]["failures"] == candidate_passes(bad)[1]
    assert any("missed here" in line for line in logged)


def test_a_missed_sensitive_hint_does_not_stand_in_for_the_search_candidate_of_the_same_name():
    """The hint keeps layers a and b float and misses; the search's own gemm-int8-sensitive-2 (the ranking's
    top-2) passes and is the one chosen and recorded."""
    hint = RecipeHint(sensitive_recipe(2), ("a", "b"), "old.udc")
    ev, (chosen, cands, extra), _ = _choose({**SEARCH, (sensitive_recipe(2), ("a", "b")): LOW_TOP1}, hint)
    assert chosen == sensitive_recipe(2) and extra["kept"][chosen] == TOP[:2]
    assert [c.recipe for c in cands].count(chosen) == 1 and cands[-1].metrics is PASS


# ------------------------------------------------------------------------------------------ read_hints
@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory):
    return export_bundle(tmp_path_factory.mktemp("hint-bundles"), "onnx")  # tiny lrdif, shared in the session


def _as_int8(src, dst, recipes):
    """A copy of a real bundle whose manifest says int8 with ``recipes`` {component: (recipe, kept layers)}."""
    shutil.copytree(src, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["quant"] = "int8"
    for name, (recipe, kept) in recipes.items():
        m["components"][name]["quantization"] = {"mode": "int8", "recipe": recipe,
                                                 "float_kept": ["residual adds"] + [f"layer {k}" for k in kept]}
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def test_read_hints(fp32_bundle, tmp_path):
    b = _as_int8(fp32_bundle, tmp_path / "old.udc", {"fpen_s2": ("gemm-int8", ()),
                                                      "udcformer": ("gemm-int8-sensitive-2", ("x.qkv", "head"))})
    hints = read_hints(b, "lrdif", "tiny", ["fpen_s2", "udcformer", "pipeline"])
    assert hints == {"fpen_s2": RecipeHint("gemm-int8", (), "old.udc"),
                     "udcformer": RecipeHint("gemm-int8-sensitive-2", ("x.qkv", "head"), "old.udc")}
    hints["udcformer"].check_layers("udcformer", ["x.qkv", "head", "stem"])
    with pytest.raises(RecipeHintError, match="does not have"):
        hints["udcformer"].check_layers("udcformer", ["x.qkv", "stem"])


@pytest.mark.parametrize("case, match", [
    ("fp32", "has no int8 recipes"),
    ("config", "'mobile' model"),
    ("unknown recipe", "no known int8 recipe"),
    ("kept count", "keeps 3 layers float but its record names 1"),
    ("no manifest", "not a udc bundle"),
    ("missing", "no such bundle"),
])
def test_read_hints_refuses(fp32_bundle, tmp_path, case, match):
    b = tmp_path / "old.udc"
    if case == "fp32":
        b = fp32_bundle
    elif case == "unknown recipe":
        _as_int8(fp32_bundle, b, {"fpen_s2": ("int7-magic", ())})
    elif case == "kept count":
        _as_int8(fp32_bundle, b, {"fpen_s2": ("gemm-int8-sensitive-3", ("x",))})
    elif case == "no manifest":
        b.mkdir()
    elif case != "missing":
        _as_int8(fp32_bundle, b, {"fpen_s2": ("gemm-int8", ())})
    config = "mobile" if case == "config" else "tiny"
    with pytest.raises(RecipeHintError, match=match):
        read_hints(b, "lrdif", config, ["fpen_s2"])


# ------------------------------------------------------------------------------------------ udc-export
def _export(*args):
    from udc.export.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_refuses_recipes_from_outside_int8_and_a_wrong_bundle(fp32_bundle, tmp_path):
    res = _export("--config", "tiny", "--target", "onnx", "--recipes-from", fp32_bundle, "-o", tmp_path / "x.udc")
    assert res.exit_code == 2 and "guides the int8 recipe search" in res.output, res.output
    res = _export("--config", "tiny", "--target", "onnx", "--quant", "int8", "--recipes-from", fp32_bundle,
                  "-o", tmp_path / "y.udc")
    assert res.exit_code == 2 and "has no int8 recipes" in res.output, res.output
    assert not any(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("args, match", [
    (("--int8-top1", "0.99"), "sets the int8 bundle's top-1 agreement target"),  # not an int8 export
    (("--quant", "int8", "--int8-top1", "0.9"), "between the int8 default 0.97 and 1"),  # looser than the default
    (("--quant", "int8", "--int8-top1", "1.5"), "between the int8 default 0.97 and 1"),
    (("--quant", "int8", "--int8-top1", "nan"), "between the int8 default 0.97 and 1"),
])
def test_cli_refuses_a_bad_int8_top1(tmp_path, args, match):
    res = _export("--config", "tiny", "--target", "executorch", *args, "-o", tmp_path / "x.udc")
    assert res.exit_code == 2 and match in res.output, res.output
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.slow
def test_int8_top1_reaches_the_search_and_the_parity_check(tmp_path):
    """``--int8-top1 0.99``: each component's share of the flips is a quarter of 1 % (the manifest's selection
    thresholds, every candidate judged by them), and the bundle's parity thresholds hold 0.99, which udc-parity
    then applies (``thresholds_for``)."""
    from udc.sdk.parity.metrics import thresholds_for

    out = tmp_path / "strict.udc"
    res = _export("--config", "tiny", "--target", "executorch", "--quant", "int8", "--components", "fpen_s2",
                  "--calib-n", "16", "--eval-n", "16", "--threads", "1", "--int8-top1", "0.99", "-o", out)
    assert res.exit_code in (0, 1), res.output  # 1: parity below the thresholds is allowed on 16 random-init faces
    m = json.loads((out / "manifest.json").read_text())
    sel = m["quantization"]["selection"]
    assert sel["end_to_end_thresholds"]["top1"] == 0.99 and sel["thresholds"]["top1"] == pytest.approx(0.9975)
    assert m["parity"]["thresholds"]["top1"] == 0.99 and m["parity"]["thresholds"]["mode"] == "int8"
    assert thresholds_for("int8", m)["top1"] == 0.99
    rec = m["components"]["fpen_s2"]["quantization"]
    assert rec["candidates"]
    for c in rec["candidates"]:
        t1 = c["end_to_end"]["top1_agreement"]
        assert c["passed"] is (t1 >= 0.9975 and c["end_to_end"]["cosine"] >= sel["thresholds"]["cosine"]
                               and c["component"]["cosine"] >= sel["thresholds"]["cosine"]), c


@pytest.mark.slow
def test_export_starts_from_the_hinted_recipe(fp32_bundle, tmp_path):
    """The search alone picks all-int8 for the tiny fpen_s2 (the first recipe, it passes); a bundle that chose
    gemm-int8 makes the export score gemm-int8 first, and only it, then lower and check it."""
    old = _as_int8(fp32_bundle, tmp_path / "old.udc", {"fpen_s2": ("gemm-int8", ())})
    out = tmp_path / "new.udc"
    res = _export("--config", "tiny", "--target", "executorch", "--quant", "int8", "--components", "fpen_s2",
                  "--calib-n", "16", "--eval-n", "16", "--threads", "1", "--recipes-from", old, "-o", out)
    assert res.exit_code == 0, res.output
    assert "recipes from old.udc, tried first: fpen_s2 gemm-int8" in res.output
    rec = json.loads((out / "manifest.json").read_text())["components"]["fpen_s2"]["quantization"]
    assert rec["recipe"] == "gemm-int8" and [c["recipe"] for c in rec["candidates"]] == ["gemm-int8"]
    assert rec["recipe_hint"]["passed"] is True and rec["recipe_hint"]["from"] == "old.udc"
    assert "--recipes-from" in rec["basis"] and rec["sensitivity_ranking"] is None
    assert rec["lowered_checks"][-1]["recipe"] == "gemm-int8" and rec["lowered_checks"][-1]["passed"] is True


@pytest.mark.slow
def test_a_hint_that_misses_once_lowered_falls_back_to_the_full_search(fp32_bundle, tmp_path, monkeypatch):
    """The hinted gemm-int8 passes in simulation; its lowered program is made to miss (the lowered check's verdict
    patched to fail, the simulation's left alone): the export runs the full search as without the hint, and the
    record keeps the hint with its failed lowered check."""
    from udc.export.exporter import ExportRequest, run_export
    from udc.export.targets import executorch_export as ete

    def lowered_fails(metrics, **kw):
        return False, ["lowered program made to miss (test)"]

    monkeypatch.setattr(ete, "candidate_passes", lowered_fails)
    old = _as_int8(fp32_bundle, tmp_path / "old.udc", {"fpen_s2": ("gemm-int8", ())})
    logs: list[str] = []
    r = run_export(ExportRequest(output=tmp_path / "new.udc", target="executorch", config="tiny", quant="int8",
                                 components=("fpen_s2",), calib_n=16, eval_n=16, threads=1, recipes_from=old),
                   log=logs.append)
    rec = r.manifest["components"]["fpen_s2"]["quantization"]
    assert any("missed once lowered: the full search" in line for line in logs), logs
    assert rec["recipe_hint"]["passed"] is True and rec["recipe_hint"]["lowered_check"]["passed"] is False
    assert rec["candidates"][0]["recipe"] == "all-int8"  # the search from the start, not the hint
    assert "--recipes-from" not in rec["basis"] and all(not c["passed"] for c in rec["lowered_checks"])


@pytest.mark.slow
def test_a_lowered_program_that_cannot_hold_sends_the_search_on(tmp_path, monkeypatch):
    """The tiny fpen_s2's all-int8 passes in simulation; its lowered program is made to miss both its share and
    the bundle's whole thresholds (the lowered check's verdicts patched for the first lowering only). The search
    goes on past it in simulation, lowers its next passing choice (gemm-int8), and that one is kept."""
    from udc.export.exporter import ExportRequest, run_export
    from udc.export.targets import executorch_export as ete

    real, seen = ete.candidate_passes, []

    def first_lowering_misses(metrics, **kw):
        seen.append(kw.get("chained"))
        if len(seen) <= 2:  # the share and the whole thresholds of the first lowered program
            return False, ["lowered program made to miss (test)"]
        return real(metrics, **kw)

    monkeypatch.setattr(ete, "candidate_passes", first_lowering_misses)
    logs: list[str] = []
    r = run_export(ExportRequest(output=tmp_path / "q.udc", target="executorch", config="tiny", quant="int8",
                                 components=("fpen_s2",), calib_n=16, eval_n=16, threads=1), log=logs.append)
    rec = r.manifest["components"]["fpen_s2"]["quantization"]
    assert seen[:2] == [4, 1]  # the share of four chained components, then the whole budget
    assert any("misses the bundle's thresholds by itself: the search goes on past it" in line for line in logs), logs
    assert [(c["recipe"], c["passed"]) for c in rec["lowered_checks"]] == [("all-int8", False), ("gemm-int8", True)]
    assert rec["recipe"] == "gemm-int8" and "held once lowered" in rec["decision"], rec["decision"]
    cands = {c["recipe"]: c for c in rec["candidates"]}
    assert cands["all-int8"]["passed"] is False and "its lowered program missed" in cands["all-int8"]["failures"][-1]
    assert cands["gemm-int8"]["passed"] is True


def test_a_fused_pipeline_composed_from_the_four_gives_no_hint_of_its_own(fp32_bundle, tmp_path):
    """A ``--fuse --quant int8`` bundle's pipeline records ``per-component`` (composed from the four programs): as
    ``--recipes-from`` it hints the four, and the pipeline is composed again from this export's."""
    b = _as_int8(fp32_bundle, tmp_path / "fused.udc", {"fpen_s2": ("all-int8", ())})
    m = json.loads((b / "manifest.json").read_text())
    m["components"]["pipeline"] = {**m["components"]["fpen_s2"],
                                   "quantization": {"mode": "int8", "recipe": "per-component", "float_kept": []}}
    (b / "manifest.json").write_text(json.dumps(m))
    assert read_hints(b, "lrdif", "tiny", ["fpen_s2", "pipeline"]) == {"fpen_s2": RecipeHint("all-int8", (), "fused.udc")}


def test_composed_recipe_from_the_four_programs_records():
    """The pipeline's composed recipe takes each program's recipe and, for a sensitive-K one, its K float layers;
    anything it cannot trust (a missing component, an unknown recipe, a K that disagrees with the layers named)
    gives None, and the pipeline then runs its own search."""
    from udc.export.quant.recipe_hints import ComposedRecipe, composed_from

    four = ("clip_image", "fpen_s2", "denoiser", "udcformer")
    q = {"clip_image": {"recipe": "gemm-int8", "float_kept": ["add (3 of 3)"]},
         "fpen_s2": {"recipe": "all-int8", "float_kept": []},
         "denoiser": {"recipe": "gemm-int8-ends-float", "float_kept": ["layer net.0", "layer net.4"]},
         "udcformer": {"recipe": "gemm-int8-sensitive-2", "float_kept": ["mul (2 of 9)", "layer head", "layer x.qkv"]}}
    c = composed_from(q, four)
    assert c == ComposedRecipe((("clip_image", "gemm-int8", ()), ("fpen_s2", "all-int8", ()),
                                ("denoiser", "gemm-int8-ends-float", ()),
                                ("udcformer", "gemm-int8-sensitive-2", ("head", "x.qkv"))))
    assert c.record()["udcformer"] == {"recipe": "gemm-int8-sensitive-2", "kept_layers": ["head", "x.qkv"]}
    assert composed_from({k: v for k, v in q.items() if k != "denoiser"}, four) is None
    assert composed_from({**q, "fpen_s2": {"recipe": "int7-magic"}}, four) is None
    assert composed_from({**q, "fpen_s2": {"recipe": None}}, four) is None
    assert composed_from({**q, "udcformer": {"recipe": "gemm-int8-sensitive-3", "float_kept": ["layer head"]}},
                         four) is None

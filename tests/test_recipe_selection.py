"""int8 recipe selection (udc.export.quant.recipes): ``selection_thresholds``, ``candidate_passes`` and
``choose_recipe`` driven by a scripted evaluator, one table row per branch (first recipe, a later recipe,
sensitive-K, the margin-aware fallback, nothing passes). No model, no quantizer: milliseconds."""
from __future__ import annotations

import math

import pytest

from udc.export.quant.recipes import (
    CHAINED,
    Candidate,
    RECIPES,
    candidate_passes,
    choose_recipe,
    int8_thresholds,
    selection_thresholds,
    sensitive_recipe,
)
from udc.sdk.parity.metrics import THRESHOLDS

SEL = selection_thresholds("int8", CHAINED)
EPS = 1e-6


def metrics(comp=1.0, cos=1.0, top1=1.0, ma=None):
    """What an evaluator returns: the component's own cosine and the end-to-end logits' scores."""
    return {"component": {"cosine": comp},
            "end_to_end": {"cosine": cos, "top1_agreement": top1,
                           "top1_agreement_margin_aware": top1 if ma is None else ma}}


PASS = metrics()
LOW_TOP1 = metrics(top1=SEL["top1"] - 0.01)                       # plain top-1 misses, margin-aware too
TIED = metrics(top1=SEL["top1"] - 0.01, ma=1.0)                    # plain top-1 misses at near-ties only
LOW_COS = metrics(cos=SEL["cosine"] - 0.001, ma=1.0)               # end-to-end cosine misses


class Script:
    """An evaluator that answers from a table keyed by (recipe, kept layers) and records its calls."""

    def __init__(self, table, ranked=()):
        self.table, self.ranked = table, list(ranked)
        self.calls, self.rankings = [], 0

    def __call__(self, recipe, kept):
        self.calls.append((recipe, tuple(kept)))
        return self.table[(recipe, tuple(kept))]

    def ranking(self):
        self.rankings += 1
        return self.ranked


LAYERS = [(f"blocks.{i}.proj", 0.1 / (i + 1)) for i in range(16)]  # most sensitive first
TOP = [p for p, _ in LAYERS]


def _sens(k):
    return (sensitive_recipe(k), tuple(TOP[:k]))


# ------------------------------------------------------------------------------------------ thresholds
@pytest.mark.parametrize("quant", sorted(THRESHOLDS))
@pytest.mark.parametrize("chained", [1, 2, 4])
def test_selection_thresholds_split_the_allowed_loss(quant, chained):
    t, s = THRESHOLDS[quant], selection_thresholds(quant, chained)
    for key in ("cosine", "top1"):
        assert t[key] <= s[key] <= 1.0
        # `chained` components each losing their share lose exactly the mode's allowance
        assert 1.0 - chained * (1.0 - s[key]) == pytest.approx(t[key], abs=1e-12)
    if chained == 1:
        assert s == {"cosine": t["cosine"], "top1": t["top1"]}


def test_selection_thresholds_default_is_four_int8_components():
    assert CHAINED == 4 and selection_thresholds() == selection_thresholds("int8", 4)
    assert selection_thresholds("int8", 4)["top1"] > selection_thresholds("int8", 1)["top1"]


# ------------------------------------------------------------------------------------------ candidate_passes
@pytest.mark.parametrize("m, margin_aware, failing", [
    (metrics(SEL["cosine"], SEL["cosine"], SEL["top1"]), False, []),  # exactly at the thresholds: pass
    (metrics(comp=SEL["cosine"] - EPS), False, ["component cosine"]),
    (metrics(cos=SEL["cosine"] - EPS), False, ["end-to-end cosine"]),
    (metrics(top1=SEL["top1"] - EPS), False, ["end-to-end top-1"]),
    (metrics(top1=SEL["top1"] - EPS, ma=1.0), True, []),  # margin-aware: plain top-1 not looked at
    (metrics(top1=1.0, ma=SEL["top1"] - EPS), True, ["end-to-end margin-aware top-1"]),
    (metrics(0.5, 0.5, 0.5), False, ["component cosine", "end-to-end cosine", "end-to-end top-1"]),
])
def test_candidate_passes_table(m, margin_aware, failing):
    ok, fails = candidate_passes(m, "int8", margin_aware=margin_aware)
    assert ok is (not failing)
    assert len(fails) == len(failing)
    for f, prefix in zip(fails, failing):
        assert f.startswith(prefix), fails


def test_candidate_passes_uses_the_chain_length():
    m = metrics(top1=0.98)  # passes one component's whole int8 budget (0.97), not a quarter of it
    assert candidate_passes(m, "int8", chained=1)[0] is True
    assert candidate_passes(m, "int8", chained=4)[0] is False


@pytest.mark.parametrize("field", ["comp", "cos", "top1"])
def test_candidate_passes_fails_on_nan(field):
    assert candidate_passes(metrics(**{field: math.nan}))[0] is False


# ------------------------------------------------------------------------------------------ choose_recipe
R0, R1, R2 = RECIPES

CASES = {
    # name: (table, n_layers, ranking given, expected recipe, expected calls, expected basis prefix)
    "first recipe passes": (
        {(R0, ()): PASS}, 16, True, R0, [(R0, ())], "thresholds"),
    "a later recipe passes": (
        {(R0, ()): LOW_TOP1, (R1, ()): LOW_COS, (R2, ()): PASS}, 16, True, R2,
        [(R0, ()), (R1, ()), (R2, ())], "thresholds"),
    "sensitive-K: K=1 fails, K=2 passes": (
        {(R0, ()): LOW_TOP1, (R1, ()): LOW_TOP1, (R2, ()): LOW_TOP1, _sens(1): LOW_TOP1, _sens(2): PASS},
        16, True, sensitive_recipe(2), [(R0, ()), (R1, ()), (R2, ()), _sens(1), _sens(2)], "thresholds"),
    "sensitive-K up to a quarter of the layers (12 -> K = 1, 2, 3), then the best cosine": (
        {(R0, ()): metrics(cos=0.90, top1=0.5), (R1, ()): metrics(cos=0.95, top1=0.5),
         (R2, ()): metrics(cos=0.93, top1=0.5), _sens(1): metrics(cos=0.96, top1=0.5),
         _sens(2): metrics(cos=0.97, top1=0.5), _sens(3): metrics(cos=0.94, top1=0.5)},
        12, True, sensitive_recipe(2), [(R0, ()), (R1, ()), (R2, ()), _sens(1), _sens(2), _sens(3)], "best"),
    "no ranking: no sensitive-K, the best cosine": (
        {(R0, ()): metrics(cos=0.9, top1=0.5), (R1, ()): metrics(cos=0.98, top1=0.5),
         (R2, ()): metrics(cos=0.95, top1=0.5)},
        16, False, R1, [(R0, ()), (R1, ()), (R2, ())], "best"),
    "one layer: no sensitive-K": (
        {(R0, ()): LOW_TOP1, (R1, ()): metrics(cos=0.9, top1=0.5), (R2, ()): LOW_TOP1}, 1, True, R0,
        [(R0, ()), (R1, ()), (R2, ())], "best"),
    "margin-aware fallback: the best plain top-1 among the margin-aware passers": (
        {(R0, ()): metrics(top1=0.95, ma=1.0), (R1, ()): metrics(top1=0.98, ma=1.0),
         (R2, ()): metrics(cos=0.999999, top1=0.99, ma=0.5),  # best plain top-1 and cosine, but a real flip
         _sens(1): metrics(top1=0.97, ma=1.0), _sens(2): metrics(top1=0.98, ma=1.0),
         _sens(4): metrics(top1=0.96, ma=1.0)},
        16, True, R1, [(R0, ()), (R1, ()), (R2, ()), _sens(1), _sens(2), _sens(4)], "margin-aware"),
    "margin-aware fallback, no ranking: equal plain top-1 -> the first (most int8)": (
        {(R0, ()): metrics(top1=0.9, ma=0.5), (R1, ()): TIED, (R2, ()): TIED}, 16, False, R1,
        [(R0, ()), (R1, ()), (R2, ())], "margin-aware"),
    "nothing passes, not even margin-aware: the best end-to-end cosine": (
        {(R0, ()): metrics(cos=0.95, top1=0.5), (R1, ()): metrics(cos=0.97, top1=0.5),
         (R2, ()): metrics(cos=0.96, top1=0.5), _sens(1): metrics(cos=0.5, top1=0.5),
         _sens(2): metrics(cos=0.6, top1=0.5), _sens(4): metrics(cos=0.7, top1=0.5)},
        16, True, R1, [(R0, ()), (R1, ()), (R2, ()), _sens(1), _sens(2), _sens(4)], "best"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_choose_recipe_table(name):
    table, n_layers, with_ranking, want, calls, basis = CASES[name]
    ev = Script(table, LAYERS[:n_layers])
    logged = []
    chosen, cands, extra = choose_recipe(ev, RECIPES, ranking=ev.ranking if with_ranking else None,
                                         n_layers=n_layers, log=logged.append)
    assert chosen == want
    assert ev.calls == calls  # the order tried, and where it stopped
    assert [c.recipe for c in cands] == [r for r, _ in calls]
    for c, (r, kept) in zip(cands, calls):  # every candidate's verdict is candidate_passes'
        assert c.metrics is table[(r, kept)]
        assert (c.passed, c.failures) == candidate_passes(c.metrics, "int8")
    assert extra["basis"].startswith(basis), extra["basis"]
    sensitive = [r for r, _ in calls if r.startswith("gemm-int8-sensitive-")]
    assert ev.rankings == (1 if sensitive else 0)  # ranked once, and only when the fixed recipes all failed
    if sensitive:
        assert extra["ranking"][0] == {"layer": TOP[0], "one_minus_cosine": pytest.approx(LAYERS[0][1])}
        assert len(extra["ranking"]) == min(12, n_layers)
        assert extra["kept"] == {r: list(kept) for r, kept in calls if r in sensitive}
        assert any("sensitivity" in line for line in logged)
    else:
        assert extra["ranking"] is None and extra["kept"] == {}


def test_chained_one_uses_the_whole_budget():
    """A DDAMFN-style single component: 98 % top-1 misses a quarter budget but meets the whole one."""
    table = {(R0, ()): metrics(top1=0.98), (R1, ()): PASS}
    four, one = Script(table), Script(table)
    assert choose_recipe(four, RECIPES)[0] == R1
    assert choose_recipe(one, RECIPES, chained=1)[0] == R0 and one.calls == [(R0, ())]


# ------------------------------------------------------------------------------------------ --int8-top1
def test_int8_thresholds_raise_top1_and_never_loosen():
    assert int8_thresholds() == {"mode": "int8", **THRESHOLDS["int8"]}
    strict = int8_thresholds(0.99)
    assert strict == {"mode": "int8", "cosine": THRESHOLDS["int8"]["cosine"], "top1": 0.99}
    assert selection_thresholds(strict, 4)["top1"] == pytest.approx(0.9975)  # a quarter of the 1 % of flips each
    assert selection_thresholds(strict, 4)["cosine"] == SEL["cosine"]
    assert int8_thresholds(1.0)["top1"] == 1.0 and int8_thresholds(THRESHOLDS["int8"]["top1"]) == int8_thresholds()
    for bad in (0.5, THRESHOLDS["int8"]["top1"] - 1e-9, 1.01, math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="between the int8 default"):
            int8_thresholds(bad)


def test_a_stricter_top1_target_moves_the_choice():
    """99.5 % end-to-end top-1 on the calibration faces meets a quarter of the default 3 % of flips (99.25 %) but
    not a quarter of 1 % (99.75 %): with --int8-top1 0.99 the search goes on to the next recipe."""
    table = {(R0, ()): metrics(top1=0.995), (R1, ()): metrics(top1=0.998)}
    default, strict = Script(table), Script(table)
    assert choose_recipe(default, RECIPES)[0] == R0 and default.calls == [(R0, ())]
    chosen, cands, _ = choose_recipe(strict, RECIPES, quant=int8_thresholds(0.99))
    assert chosen == R1 and strict.calls == [(R0, ()), (R1, ())]
    assert cands[0].failures == ["end-to-end top-1 0.9950 < 0.9975"]


def test_lowering_order_tries_only_simulation_passes_and_is_bounded():
    """An int8 export lowers (minutes each) the chosen recipe, then other simulation passes, at most
    MAX_LOWERED: a failing candidate is never lowered, and the list is never empty."""
    from udc.export.targets.executorch_export import MAX_LOWERED, lowering_order

    def c(r, ok):
        return Candidate(r, {}, ok, [] if ok else ["x"])

    cands = [c("all-int8", False), c("gemm-int8", True), c("gemm-int8-ends-float", True), c("s-1", True)]
    assert lowering_order("gemm-int8", cands, limit=2) == ["gemm-int8", "gemm-int8-ends-float"]
    assert lowering_order("gemm-int8", cands, limit=9) == ["gemm-int8", "gemm-int8-ends-float", "s-1"]
    # nothing passed: only the chosen (best-cosine) one is lowered, not every remaining candidate
    failed = [c("all-int8", False), c("gemm-int8", False), c("s-16", False)]
    assert lowering_order("s-16", failed) == ["s-16"]
    assert lowering_order("s-16", failed, limit=0) == ["s-16"]
    assert MAX_LOWERED >= 1 and len(lowering_order("gemm-int8", cands)) == min(3, MAX_LOWERED)


# ------------------------------------------------------------------------------------------ lowered misses
def test_a_rejected_recipe_fails_and_the_search_goes_past_it():
    """A recipe whose lowered program missed counts as failing whatever its simulation scored: the search goes
    on to the next recipe (and the ranking, after the fixed ones), and no fallback picks it."""
    table = {(R0, ()): PASS, (R1, ()): LOW_TOP1, (R2, ()): PASS}
    ev = Script(table)
    chosen, cands, _ = choose_recipe(ev, RECIPES, rejected={R0: ["end-to-end top-1 0.9825 < 0.9925"]})
    assert chosen == R2 and ev.calls == [(R0, ()), (R1, ()), (R2, ())]
    assert cands[0].passed is False and cands[0].failures == [
        "its lowered program missed (end-to-end top-1 0.9825 < 0.9925)"]
    # after the fixed recipes, the sensitivity recipes
    table = {(R0, ()): PASS, (R1, ()): LOW_TOP1, (R2, ()): LOW_TOP1, _sens(1): PASS}
    ev = Script(table, LAYERS)
    assert choose_recipe(ev, RECIPES, ranking=ev.ranking, n_layers=16, rejected={R0: ["x"]})[0] == sensitive_recipe(1)
    assert ev.rankings == 1
    # the fallbacks never choose a rejected recipe; with every candidate rejected the choice is None
    table = {(R0, ()): TIED, (R1, ()): metrics(cos=0.99, top1=0.5), (R2, ()): metrics(cos=0.9, top1=0.5)}
    chosen, _, extra = choose_recipe(Script(table), RECIPES, rejected={R0: ["x"]})
    assert chosen == R1 and extra["basis"].startswith("best")
    assert choose_recipe(Script(table), RECIPES, rejected={r: ["x"] for r in RECIPES})[0] is None


class Lowering:
    """Scripted lowering: ``verdicts[recipe] = (meets its share, meets the whole thresholds)``; records the order."""

    def __init__(self, verdicts):
        self.verdicts, self.order = verdicts, []

    def __call__(self, recipe, extra):
        from udc.export.targets.executorch_export import LoweredCheck

        self.order.append(recipe)
        share, alone = self.verdicts[recipe]
        m = metrics(cos=1.0 if share else 0.99)
        return LoweredCheck(recipe, share, alone, [] if share else [f"{recipe} lowered: miss"], recipe, m)


def _search(table, ranked=LAYERS, quant="int8"):
    """A search as the exporter runs it: each (recipe, kept layers) scored once, the ranking run once."""
    ev = Script(table, ranked)
    calls, memo, ranking = [], {}, []

    def evaluate(recipe, kept):
        key = (recipe, tuple(kept))
        if key not in memo:
            memo[key] = ev(recipe, kept)
        return memo[key]

    def rank():
        if not ranking:
            ranking.append(ev.ranking())
        return ranking[0]

    def search(rejected):
        calls.append(dict(rejected))
        return choose_recipe(evaluate, RECIPES, quant=quant, ranking=rank, n_layers=len(ranked), rejected=rejected)

    return search, ev, calls


def test_lower_in_turn_searches_past_a_lowered_program_that_cannot_hold():
    """Measured on the mobile UDCformer with --int8-top1 0.99: all-int8 passed in simulation (100 %) and scored
    98.2 % once lowered, below the bundle's whole 99 % by itself; the export kept it and wrote a bundle failing
    its own target. Now the search goes on past it in simulation and lowers its next passing choice."""
    from udc.export.targets.executorch_export import lower_in_turn

    table = {(R0, ()): PASS, (R1, ()): LOW_TOP1, (R2, ()): PASS}
    search, ev, calls = _search(table)
    low = Lowering({R0: (False, False), R2: (True, True)})
    logs = []
    checks, first, cands, extra = lower_in_turn(search, low, limit=2, log=logs.append, name="udcformer")
    assert low.order == [R0, R2] and [c.passed for c in checks] == [False, True]
    assert first == R0 and calls == [{}, {R0: [f"{R0} lowered: miss"]}]
    assert ev.calls == [(R0, ()), (R1, ()), (R2, ())]  # R0 scored once: the second search re-used nothing new
    assert [c.recipe for c in cands] == [R0, R1, R2] and extra["basis"] == "thresholds"
    assert any("misses the bundle's thresholds by itself" in line for line in logs)


def test_lower_in_turn_keeps_a_share_miss_that_can_still_hold():
    """A lowered program that misses only its share (the other components may use less of the budget) is kept
    when no other candidate passed the simulation: no further search, one lowering (as before)."""
    from udc.export.targets.executorch_export import lower_in_turn

    search, ev, calls = _search({(R0, ()): PASS})
    low = Lowering({R0: (False, True)})
    checks, first, _, _ = lower_in_turn(search, low, limit=2)
    assert low.order == [R0] and len(calls) == 1 and ev.calls == [(R0, ())] and not checks[0].passed


def test_lower_in_turn_is_bounded_and_never_lowers_a_fallback_or_a_recipe_twice():
    from udc.export.targets.executorch_export import lower_in_turn

    # other simulation passes are lowered first (as before), and the bound holds
    table = {(R0, ()): PASS, (R1, ()): PASS, (R2, ()): PASS}
    search, _, _ = _search(table)
    low = Lowering({R0: (False, False), R1: (False, False), R2: (True, True)})
    checks, _, _, _ = lower_in_turn(search, low, limit=2)
    assert low.order == [R0, R1] and len(checks) == 2
    # past the miss, nothing else passes in simulation: the best-cosine fallback is not lowered
    table = {(R0, ()): PASS, (R1, ()): LOW_TOP1, (R2, ()): LOW_TOP1, _sens(1): LOW_TOP1, _sens(2): LOW_TOP1,
             _sens(4): LOW_TOP1}
    search, ev, calls = _search(table)
    low = Lowering({R0: (False, False)})
    checks, _, _, extra = lower_in_turn(search, low, limit=2)
    assert low.order == [R0] and len(calls) == 2 and extra["basis"].startswith("best")
    assert ev.rankings == 1
    # a limit of one: no second lowering, no second search
    search, _, calls = _search({(R0, ()): PASS, (R1, ()): PASS})
    low = Lowering({R0: (False, False), R1: (True, True)})
    assert [c.recipe for c in lower_in_turn(search, low, limit=1)[0]] == [R0] and len(calls) == 1


def test_lower_in_turn_a_nan_lowered_score_searches_on():
    """Fail closed: a lowered program whose scores are NaN meets neither its share nor the whole thresholds."""
    from udc.export.quant.recipes import candidate_passes as cp
    from udc.export.targets.executorch_export import LoweredCheck, lower_in_turn

    nan = metrics(comp=math.nan, cos=math.nan, top1=math.nan)
    assert cp(nan, chained=1)[0] is False

    def low(recipe, extra):
        m = nan if recipe == R0 else PASS
        share, alone = cp(m)[0], cp(m, chained=1)[0]
        return LoweredCheck(recipe, share, alone, cp(m)[1], recipe, m)

    search, _, _ = _search({(R0, ()): PASS, (R1, ()): PASS})
    checks, _, _, _ = lower_in_turn(search, low, limit=2)
    assert [(c.recipe, c.passed) for c in checks] == [(R0, False), (R1, True)]


def test_sensitivity_ranks_on_the_first_faces_only():
    """The ranking runs on the first ``faces`` calibration faces (every tensor sliced alike, the chain
    finished on the same faces); with ``faces`` at least the set size it is the full-set ranking."""
    import torch
    from sdk_bundles import tiny_reference

    from udc.export.quant.sensitivity import component_sensitivity, layer_sensitivity
    from udc.export.reference import downstream_logits
    from udc.sdk.models.components import on_device_components

    model, ref = tiny_reference(12)
    sub = ref.head(5)
    assert len(sub) == 5 and len(sub.faces.labels) == 5
    assert all(v.shape[0] == 5 and torch.equal(v, ref.tensors[k][:5]) for k, v in sub.tensors.items())
    assert len(ref.head(100)) == 12

    comp = next(c for c in on_device_components(model) if c.name == "udcformer")
    paths = [n for n, m in comp.module.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][:4]
    assert paths
    seen = []
    real = comp.module.forward
    comp.module.forward = lambda *a: seen.append(a[0].shape[0]) or real(*a)
    try:
        on5 = component_sensitivity(model, "udcformer", comp.module, paths, ref, faces=5)
        assert seen and set(seen) == {5}
        manual = layer_sensitivity(comp.module, paths, sub.inputs("udcformer"),
                                   lambda out: downstream_logits(model, "udcformer", out, sub), sub.tensors["logits"])
        full = component_sensitivity(model, "udcformer", comp.module, paths, ref, faces=100)
    finally:
        comp.module.forward = real
    assert on5 == manual and len(on5) == len(paths)
    assert {p for p, _ in full} == set(paths) and all(math.isfinite(v) for _, v in full)
    assert full != on5  # different faces, different scores: the subset really is a subset


# ------------------------------------------------------------------------------------------ stopped candidates
def _stopped(m):
    return {**m, "stopped": "scored on 8 of 100 faces, most near-tied first: 1 top-1 flip(s), more than the 0"}


def test_a_stopped_candidate_fails_and_is_completed_only_when_nothing_passes():
    """A candidate scored until its top-1 failed carries ``stopped``: it fails (its reason in the failures), and
    ``complete`` re-scores it on every face only when the choice falls back to comparing failing candidates."""
    full = {(R0, ()): metrics(cos=0.95, top1=0.5), (R1, ()): metrics(cos=0.999, top1=0.5, ma=1.0),
            (R2, ()): metrics(cos=0.96, top1=0.5)}
    partial = {k: _stopped(metrics(cos=0.999, top1=0.875)) for k in full}
    completed = []

    def complete(r, kept):
        completed.append((r, tuple(kept)))
        return full[(r, tuple(kept))]

    chosen, cands, extra = choose_recipe(Script(partial), RECIPES, complete=complete)
    assert completed == list(full)  # each stopped candidate, once
    assert chosen == R1 and extra["basis"].startswith("margin-aware")  # on the completed scores
    assert [c.metrics for c in cands] == [full[k] for k in full]

    # a later candidate passes: the stopped ones are never completed, and say why they failed
    completed.clear()
    table = {(R0, ()): partial[(R0, ())], (R1, ()): PASS}
    chosen, cands, _ = choose_recipe(Script(table), RECIPES, complete=complete)
    assert chosen == R1 and completed == []
    assert not cands[0].passed and any("most near-tied first" in f for f in cands[0].failures)

    # a stopped candidate whose partial scores would pass is still a failure
    table = {(R0, ()): _stopped(PASS), (R1, ()): PASS}
    chosen, cands, _ = choose_recipe(Script(table), RECIPES, complete=complete)
    assert chosen == R1 and not cands[0].passed


@pytest.fixture(scope="module")
def tiny_udcformer():
    from sdk_bundles import tiny_reference

    from udc.sdk.models.components import on_device_components

    model, ref = tiny_reference(40)
    comp = next(c for c in on_device_components(model) if c.name == "udcformer")
    return model, ref, comp


def test_near_tied_first_orders_by_the_top2_gap():
    import torch

    from udc.export.targets.executorch_export import near_tied_first

    logits = torch.tensor([[3.0, 0.0, 1.0], [1.0, 1.1, 0.0], [5.0, 5.0, 0.0], [0.0, 3.0, -1.0]])
    assert near_tied_first(logits) == [2, 1, 0, 3]  # gaps 2, 0.1, 0, 3


def test_scored_until_failed_scores_every_face_when_nothing_flips(tiny_udcformer):
    import torch

    from udc.export.quant.threads import torch_threads
    from udc.export.reference import per_sample
    from udc.export.targets.executorch_export import _metrics, scored_until_failed

    model, ref, comp = tiny_udcformer
    calls = []
    fn = lambda *a: calls.append(1) or comp.module(*a)  # noqa: E731 - the float component: no flips
    with torch.no_grad():
        m = scored_until_failed(fn, "udcformer", model, ref, top1=0.99)
        with torch_threads(1):  # as the search scores a candidate
            out = per_sample(comp.module, ref, "udcformer")
        want = _metrics("udcformer", model, out, ref)
    assert "stopped" not in m and len(calls) == len(ref)
    assert m == want  # every face, in the set's order: the metrics of scoring them all


@pytest.mark.parametrize("broken", ["noise", "nan"])
def test_scored_until_failed_stops_once_top1_cannot_pass(tiny_udcformer, broken):
    import torch

    from udc.export.quant.recipes import candidate_passes
    from udc.export.targets.executorch_export import SCORE_CHUNK, scored_until_failed

    model, ref, comp = tiny_udcformer
    calls = []
    gen = torch.Generator().manual_seed(0)

    def fn(*a):
        calls.append(1)
        out = comp.module(*a)
        return out + 100 * torch.randn(out.shape, generator=gen) if broken == "noise" else out * float("nan")

    with torch.no_grad():
        m = scored_until_failed(fn, "udcformer", model, ref, top1=0.99)
    assert "stopped" in m and len(calls) == SCORE_CHUNK < len(ref)
    assert m["end_to_end"]["n"] == SCORE_CHUNK and f"of {len(ref)} faces" in m["stopped"]
    assert not candidate_passes(m, "int8")[0]


def test_scored_until_failed_refuses_an_empty_face_set(tiny_udcformer):
    from udc.export.targets.executorch_export import scored_until_failed
    from udc.sdk.parity.metrics import ParityInputError

    model, ref, comp = tiny_udcformer
    with pytest.raises(ParityInputError, match="nothing to compare"):
        scored_until_failed(comp.module, "udcformer", model, ref.take([]), top1=0.99)

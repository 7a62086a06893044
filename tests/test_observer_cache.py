"""ObserverCache: recipes calibrated once and restored must convert to bit-identical int8 modules."""
from __future__ import annotations

import pytest
import torch
from sdk_bundles import tiny_reference


@pytest.fixture(scope="module")
def denoiser():
    from udc.sdk.models.components import on_device_components

    model, ref = tiny_reference(6)
    # the denoiser: concatenations (one observer shared by several nodes under all-int8) and linears
    comp = next(c for c in on_device_components(model) if c.name == "denoiser")
    return comp, [ref.sample("denoiser", i) for i in range(len(ref))]


def _pt2e(comp):
    from udc.export.quant.recipes import PT2E
    from udc.export.targets import rewrites

    return PT2E(comp.module, tuple(comp.inputs.values()), rewrite=rewrites.decompose)


def _outputs(gm, samples):
    with torch.no_grad():
        return [gm(*s) for s in samples]


def _same(a, b) -> bool:
    flat = lambda xs: [t for x in xs for t in (x if isinstance(x, (tuple, list)) else (x,))]  # noqa: E731
    fa, fb = flat(a), flat(b)
    return len(fa) == len(fb) > 0 and all(torch.equal(x, y) for x, y in zip(fa, fb))


def test_restored_recipes_convert_bit_identical(denoiser):
    from torchao.quantization.pt2e.observer import ObserverBase

    comp, samples = denoiser
    cached = _pt2e(comp)
    layers = cached.layer_paths()
    plan = [("all-int8", ()), ("gemm-int8", ()), ("gemm-int8-sensitive-1", layers[:1])]
    for recipe, kept in plan:
        p, _ = cached.calibrate(recipe, samples, kept)
        assert not [m for m in p.modules() if isinstance(m, ObserverBase) and "forward" in m.__dict__]  # unsilenced
        got = _outputs(cached.convert(p), samples)
        fresh = _pt2e(comp)
        p2, _ = fresh.calibrate(recipe, list(samples), kept)
        want = _outputs(fresh.convert(p2), samples)
        assert _same(got, want), recipe
    # all-int8 shares one observer over each concatenation's inputs and output, gemm-int8 observes the
    # concatenation alone: a different observer, so gemm-int8 is calibrated, its other observers restored
    # from all-int8's and silenced; the sensitive recipe's observers are all gemm-int8's, so it is restored
    assert (cached.cache.calibrated, cached.cache.partial, cached.cache.restored) == (2, 1, 1)
    assert cached.cache.ranges  # histogram searches memoized


def test_other_faces_are_calibrated_not_restored(denoiser):
    comp, samples = denoiser
    q = _pt2e(comp)
    q.calibrate("gemm-int8", samples)
    first = q.cache
    p, _ = q.calibrate("gemm-int8", samples[:3])  # another samples object: calibrated, into a new cache
    assert q.cache is not first and (q.cache.calibrated, q.cache.restored) == (1, 0)
    other = _pt2e(comp)
    p2, _ = other.calibrate("gemm-int8", samples[:3])
    assert _same(_outputs(q.convert(p), samples), _outputs(other.convert(p2), samples))


def test_a_wrong_cached_state_is_visible(denoiser):
    """The identity check above can fail: corrupt one cached histogram and the restored module differs."""
    comp, samples = denoiser
    q = _pt2e(comp)
    p, _ = q.calibrate("gemm-int8", samples)
    want = _outputs(q.convert(p), samples)
    for state in q.cache.states.values():
        if "histogram" in state:
            state["max_val"].mul_(4.0)
    q.cache.ranges.clear()
    p, _ = q.calibrate("gemm-int8", samples)
    assert q.cache.restored == 1
    assert not _same(_outputs(q.convert(p), samples), want)


def test_restore_refuses_an_unknown_observer(denoiser):
    from udc.export.quant.observer_cache import ObserverCache

    comp, samples = denoiser
    q = _pt2e(comp)
    p, _ = q.calibrate("gemm-int8", samples)
    assert not ObserverCache().restore(p)  # empty cache: nothing restored, nothing changed

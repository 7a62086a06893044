"""torch.export of every on-device component (tiny config): this guards the later export pipeline.

The exported graphs must carry no random ops, no norm ops, no ``.item()`` and no tensor of rank > 5,
and must compute what eager PyTorch computes.
"""
import pytest
import torch

from udc.sdk.components import on_device_components

FORBIDDEN = {  # aten op names: random draws, norm ops, host syncs, dropout
    "rand", "randn", "rand_like", "randn_like", "randint", "normal", "bernoulli", "native_dropout", "dropout",
    "linalg_vector_norm", "norm", "frobenius_norm", "_local_scalar_dense",
}


def aten_name(target) -> str:
    parts = str(target).split(".")  # "aten.layer_norm.default" -> "layer_norm"
    return parts[1] if len(parts) == 3 and parts[0] == "aten" else str(target)


@pytest.fixture(scope="module")
def exported():
    from udc.sdk.config import tiny
    from udc.sdk.models.lrdif import LRDif

    torch.manual_seed(0)
    model = LRDif(tiny(), "embedding").eval()
    out = {}
    for comp in on_device_components(model, fuse=True):
        ep = torch.export.export(comp.module, tuple(comp.inputs.values()), strict=False)
        out[comp.name] = (comp, ep)
    return out


@pytest.mark.parametrize("name", ["clip_image", "fpen_s2", "denoiser", "udcformer", "pipeline"])
def test_component_exports_cleanly(exported, name):
    comp, ep = exported[name]
    targets = [aten_name(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert "addmm" in targets or "linear" in targets or "conv2d" in targets  # the check sees real op names
    bad = [t for t in targets if t in FORBIDDEN]
    assert not bad, f"{name}: forbidden ops in the exported graph: {bad}"
    ranks = [n.meta["val"].dim() for n in ep.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)]
    assert max(ranks) <= 5, f"{name}: a tensor of rank {max(ranks)}"
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(*comp.inputs.values()), comp.module(*comp.inputs.values()))


def test_exported_denoiser_uses_the_noise_input(exported):
    comp, ep = exported["denoiser"]
    cond, noise = comp.inputs.values()
    f = ep.module()
    assert not torch.allclose(f(cond, noise), f(cond, noise + 1.0))

"""Graph-level facts of the XNNPACK export: the channel-mean rewrite (export/targets/rewrites.py) and the measured
int8 / float census of a converted PT2E graph (``op_precision``, the manifest's ``float_kept`` for ExecuTorch).
Small hand-made modules and the tiny config: seconds."""
from __future__ import annotations

import torch
from torch import nn

from udc.sdk.models.lrdif.layers import ChannelLayerNorm


class ChannelNormConv(nn.Module):
    """conv -> channel LayerNorm (the UDCformer's Z-modulation norm) -> conv."""

    def __init__(self, c: int = 8):
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, c, 3, padding=1), ChannelLayerNorm(c), nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.b(self.norm(self.a(x)))


def _ops(ep) -> list[str]:
    return [str(n.target) for n in ep.graph_module.graph.nodes if n.op == "call_function"]


def _channel_means(ep) -> int:
    return sum(1 for n in ep.graph_module.graph.nodes if n.op == "call_function" and "mean" in str(n.target)
               and len(n.args) > 1 and list(n.args[1]) in ([1], [-3]))


def test_channel_mean_is_a_constant_conv_only_when_lowering():
    """``decompose`` (before the int8 quantizer) leaves the channel means alone; ``for_xnnpack`` (the lowering)
    makes each a 1x1 conv with a folded constant 1/C weight, and the program computes the same thing."""
    from udc.export.targets import rewrites

    torch.manual_seed(0)
    m = ChannelNormConv().eval()
    x = torch.randn(1, 3, 12, 12)
    ref = m(x)
    before = rewrites.decompose(torch.export.export(m, (x,), strict=False))
    assert _channel_means(before) == 2 and sum("conv2d" in o for o in _ops(before)) == 2
    after = rewrites.for_xnnpack(torch.export.export(m, (x,), strict=False))
    assert _channel_means(after) == 0 and sum("conv2d" in o for o in _ops(after)) == 4, _ops(after)
    assert not any("permute" in o for o in _ops(after))  # nothing moved to take the mean
    assert not any(o.startswith("aten.full") for o in _ops(after))  # the 1/C weight is a folded constant
    consts = [v for v in after.constants.values() if isinstance(v, torch.Tensor) and v.shape == (1, 8, 1, 1)]
    assert consts and all(torch.equal(c, torch.full((1, 8, 1, 1), 1 / 8)) for c in consts)
    y = after.module()(x)
    assert torch.isfinite(y).all() and torch.allclose(y, ref, atol=1e-5), float((y - ref).abs().max())


def test_other_means_keep_their_rewrite():
    """Only a kept-dim mean over the channels of a 4-D map with more than one channel becomes a conv."""
    from udc.export.targets import rewrites

    class Means(nn.Module):
        def forward(self, x, y):
            return x.mean(dim=1), x.mean(dim=(2, 3), keepdim=True), y.mean(dim=1, keepdim=True), x.mean(-1)

    x, y = torch.randn(1, 4, 5, 6), torch.randn(1, 1, 5, 6)
    ep = rewrites.for_xnnpack(torch.export.export(Means(), (x, y), strict=False))
    assert not any("conv" in o for o in _ops(ep)), _ops(ep)
    for a, b in zip(ep.module()(x, y), Means()(x, y)):
        assert torch.allclose(a, b, atol=1e-6)


def test_lowered_channel_norm_runs_whole_in_xnnpack():
    from executorch.runtime import Runtime

    from udc.export.targets.executorch_export import lower

    torch.manual_seed(0)
    m = ChannelNormConv().eval()
    x = torch.randn(1, 3, 12, 12)
    edge, et = lower(torch.export.export(m, (x,), strict=False), "xnnpack", "fp32")
    left = [str(n.target) for n in edge.exported_program().graph_module.graph.nodes if n.op == "call_function"
            and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)]
    assert left == [], left  # one delegate call, nothing outside it
    out = Runtime.get().load_program(et.buffer).load_method("forward").execute([x])[0]
    assert torch.allclose(out, m(x), atol=1e-5)


# ------------------------------------------------------------------------------------------ op_precision
def _converted(recipe: str, module: nn.Module, example: tuple):
    from udc.export.quant.recipes import PT2E
    from udc.export.targets import rewrites

    q = PT2E(module, example, rewrite=rewrites.decompose)
    prepared, kept = q.calibrate(recipe, [example], ())
    return q.convert(prepared), kept


def test_op_precision_counts_what_the_recipes_quantize():
    """all-int8 stores the channel norm's arithmetic in int8; gemm-int8 the convolutions and, unasked, one of the
    norm's means (neither said so in the recipes' descriptions, hence the census); every op counted once; the
    manifest list names only float ones."""
    from udc.export.quant.recipes import measured_float_kept, op_precision

    torch.manual_seed(0)
    m = ChannelNormConv().eval()
    ex = (torch.randn(1, 3, 12, 12),)
    every, _ = _converted("all-int8", m, ex)
    gemm, kept = _converted("gemm-int8", m, ex)
    a, g = op_precision(every), op_precision(gemm)
    assert a["conv2d"] == {"int8": 2, "float": 0} and g["conv2d"] == {"int8": 2, "float": 0}
    assert a["mean"]["int8"] == 2 and a["sub"]["int8"] == 1 and a["mul"]["int8"] >= 2
    # gemm-int8: the quantizer still stores the first mean (read straight off an int8 conv output) in int8
    assert g["mean"] == {"int8": 1, "float": 1} and g["sub"] == {"int8": 0, "float": 1} and g["mul"]["int8"] == 0
    assert sum(sum(c.values()) for c in a.values()) == sum(sum(c.values()) for c in g.values())
    listed = measured_float_kept(gemm, ["b"])
    assert "mean (1 of 2)" in listed and listed[-1] == "layer b" and not any(s.startswith("conv2d") for s in listed)
    assert not any(s.startswith(("mean", "sub", "conv2d")) for s in measured_float_kept(every, []))


def test_op_precision_fails_closed_on_a_float_graph_and_an_empty_one():
    """Nothing quantized: every op float (never int8 by default); no op at all: an empty census."""
    from udc.export.quant.recipes import measured_float_kept, op_precision

    m = ChannelNormConv().eval()
    gm = torch.export.export(m, (torch.randn(1, 3, 8, 8),), strict=False).module()
    census = op_precision(gm)
    assert census and all(c["int8"] == 0 and c["float"] > 0 for c in census.values()), census
    assert measured_float_kept(gm, []) and op_precision(torch.fx.symbolic_trace(nn.Identity())) == {}

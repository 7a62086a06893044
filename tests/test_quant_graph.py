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


# ------------------------------------------------------------------------------------------ patch embedding
class PatchEmbed(nn.Module):
    """A ViT patch embedding as CLIP writes it: conv (kernel = stride) -> tokens ``[B, L, W]``."""

    def __init__(self, k: int = 8, c: int = 3, w: int = 16, bias: bool = True, **conv):
        super().__init__()
        self.conv = nn.Conv2d(c, w, k, **({"stride": k} | conv), bias=bias)

    def forward(self, x):
        y = self.conv(x)
        return y.reshape(y.shape[0], y.shape[1], -1).transpose(1, 2)


def test_patch_embedding_conv_becomes_a_linear_layer():
    """kernel = stride >= 8, no padding: patchify + one linear layer with the kernel as its weight (folded into a
    constant when lowering), the same numbers as the conv, in fp32 and through the int8 quantizer."""
    from udc.export.quant.recipes import op_precision
    from udc.export.targets import rewrites

    torch.manual_seed(0)
    m = PatchEmbed().eval()
    x = torch.randn(1, 3, 32, 48)  # 4 x 6 patches: rows and columns are not interchangeable
    ref = m(x)
    ep = rewrites.decompose(torch.export.export(m, (x,), strict=False))
    assert not any("conv" in o for o in _ops(ep)) and sum("linear" in o for o in _ops(ep)) == 1, _ops(ep)
    y = ep.module()(x)
    assert y.shape == ref.shape == (1, 24, 16) and torch.allclose(y, ref, atol=1e-5), float((y - ref).abs().max())
    low = rewrites.for_xnnpack(torch.export.export(m, (x,), strict=False))
    assert any(isinstance(v, torch.Tensor) and v.shape == (16, 192) for v in low.constants.values())
    assert torch.allclose(low.module()(x), ref, atol=1e-5)
    cq, _ = _converted("gemm-int8", m, (x,))
    census = op_precision(cq)
    assert census.get("linear") == {"int8": 1, "float": 0} and "conv2d" not in census, census
    yq = cq(x)
    assert torch.isfinite(yq).all() and torch.nn.functional.cosine_similarity(yq.flatten(), ref.flatten(), 0) > 0.99


def test_other_convolutions_stay_convolutions():
    """Overlapping, padded, dilated, grouped, small-kernel or ragged-input convs are not patch embeddings."""
    from udc.export.targets import rewrites

    cases = [(PatchEmbed(k=4), (1, 3, 32, 32)),  # kernel below PATCH_LINEAR_MIN_KERNEL
             (PatchEmbed(stride=4), (1, 3, 32, 32)),  # overlapping patches
             (PatchEmbed(padding=1), (1, 3, 30, 30)),
             (PatchEmbed(dilation=2, stride=8), (1, 3, 64, 64)),
             (PatchEmbed(c=4, groups=2), (1, 4, 32, 32)),
             (PatchEmbed(), (1, 3, 36, 32))]  # 36 is not a multiple of 8: the conv drops the last rows
    for m, shape in cases:
        x = torch.randn(shape)
        ep = rewrites.decompose(torch.export.export(m.eval(), (x,), strict=False))
        assert sum("conv2d" in o for o in _ops(ep)) == 1 and not any("linear" in o for o in _ops(ep)), (m, _ops(ep))
        assert torch.allclose(ep.module()(x), m(x), atol=1e-5)


def test_lowered_patch_embedding_runs_whole_in_xnnpack():
    from executorch.runtime import Runtime

    from udc.export.targets.executorch_export import lower

    torch.manual_seed(0)
    m = PatchEmbed(k=16, w=32).eval()
    x = torch.randn(1, 3, 64, 32)
    edge, et = lower(torch.export.export(m, (x,), strict=False), "xnnpack", "fp32")
    left = [str(n.target) for n in edge.exported_program().graph_module.graph.nodes if n.op == "call_function"
            and "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)]
    assert left == [], left
    out = Runtime.get().load_program(et.buffer).load_method("forward").execute([x])[0]
    assert torch.allclose(out, m(x), atol=1e-5), float((out - m(x)).abs().max())


# ------------------------------------------------------------------------------------------ per-component recipe
class TwoParts(nn.Module):
    """Two components and glue between them, as the fused pipeline holds the four: ``m.a`` (conv, channel norm,
    conv), a glue multiply, ``m.b`` (two linear layers)."""

    def __init__(self):
        super().__init__()
        self.m = nn.Module()
        self.m.a = ChannelNormConv()
        self.m.b = nn.Module()
        self.m.b.l1, self.m.b.l2 = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        y = self.m.a(x).mean(dim=(2, 3)) * 2.0
        return self.m.b.l2(self.m.b.l1(y))


def _per_component(parts, module, example):
    from udc.export.quant.recipes import PER_COMPONENT, PT2E
    from udc.export.targets import rewrites

    q = PT2E(module, example, rewrite=rewrites.decompose)
    prepared, kept = q.calibrate(PER_COMPONENT, [example], parts=parts)
    return q.convert(prepared), kept


def test_per_component_recipe_quantizes_each_part_as_its_own_program():
    """Each part gets its own recipe (``m.a`` all-int8: the norm's arithmetic too; ``m.b`` gemm-int8-sensitive-1 with
    l2 float) and the glue stays float; the part quantized alone with its recipe has the same census."""
    from udc.export.quant.recipes import op_precision

    torch.manual_seed(0)
    m = TwoParts().eval()
    ex = (torch.randn(1, 3, 12, 12),)
    gm, kept = _per_component({"m.a": ("all-int8", ()), "m.b": ("gemm-int8-sensitive-1", ("l2",))}, m, ex)
    assert kept == ["m.b.l2"]
    census = op_precision(gm)
    assert census["linear"] == {"int8": 1, "float": 1}  # l1 int8, l2 kept float
    alone, _ = _converted("all-int8", m.m.a, ex)
    for op, c in op_precision(alone).items():  # the part's ops are stored as its own all-int8 program stores them
        assert census[op]["int8"] >= c["int8"], (op, census[op], c)
    assert census["conv2d"] == {"int8": 2, "float": 0} and census["sub"]["int8"] == 1
    from udc.export.quant.recipes import PT2E, composed_filter, module_path
    from udc.export.targets import rewrites

    g = PT2E(m, ex, rewrite=rewrites.decompose).gm
    keep, _ = composed_filter({"m.a": ("all-int8", ()), "m.b": ("gemm-int8-sensitive-1", ("l2",))}, g)
    glue = [n for n in g.graph.nodes if n.op == "call_function" and not module_path(n).startswith("m.")]
    assert glue and not any(keep(n) for n in glue)  # the glue (mean, multiply) is never asked int8
    assert [module_path(n) for n in g.graph.nodes if n.op == "call_function" and keep(n)
            and n.target == torch.ops.aten.linear.default] == ["m.b.l1"]
    out, ref = gm(*ex), m(*ex)
    assert torch.isfinite(out).all() and torch.nn.functional.cosine_similarity(out, ref).item() > 0.99

    gm2, kept2 = _per_component({"m.a": ("gemm-int8", ()), "m.b": ("all-int8", ())}, m, ex)
    c2 = op_precision(gm2)
    assert kept2 == [] and c2["linear"] == {"int8": 2, "float": 0} and c2["sub"] == {"int8": 0, "float": 1}


def test_per_component_recipe_refuses_what_does_not_fit_the_graph():
    import pytest

    from udc.export.quant.recipes import PER_COMPONENT, PT2E

    torch.manual_seed(0)
    m, ex = TwoParts().eval(), (torch.randn(1, 3, 12, 12),)
    with pytest.raises(ValueError, match="does not have"):
        _per_component({"m.b": ("gemm-int8-sensitive-1", ("l9",))}, m, ex)
    with pytest.raises(ValueError, match="unknown recipe"):
        _per_component({"m.b": ("int7-magic", ())}, m, ex)
    with pytest.raises(ValueError, match="no linear or conv layer"):
        _per_component({"m.nowhere": ("gemm-int8", ())}, m, ex)
    with pytest.raises(ValueError, match="needs the components' recipes"):
        PT2E(m, ex).calibrate(PER_COMPONENT, [ex])


class MiniFour(nn.Module):
    """Four parts wired as LRDif's (clip_image -> fpen_s2 -> diffusion(cond, noise) -> udcformer(image, landmarks,
    epr)), a few linear layers each, so a fused pipeline lowers in seconds."""

    def __init__(self):
        super().__init__()
        self.clip_image = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16))
        self.fpen_s2 = nn.Sequential(nn.Linear(16, 8), nn.GELU(), nn.Linear(8, 8))
        self.diffusion = _Den()
        self.udcformer = _Head()

    def forward(self, image, landmarks, noise):
        return self.udcformer(image, landmarks, self.diffusion(self.fpen_s2(self.clip_image(image)), noise))


class _Den(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(8, 8)

    def forward(self, cond, noise):
        return self.net(cond + noise)


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj, self.head = nn.Linear(8, 16), nn.Linear(16, 7)

    def forward(self, image, landmarks, epr):
        return self.head(self.proj(epr)) + landmarks.mean() + image.mean()


def _mini_pipeline(n: int = 24):
    from udc.export.reference import ReferenceIO
    from udc.sdk.models.components import Component, Pipeline

    torch.manual_seed(0)
    model = MiniFour().eval()
    t = {"image": torch.randn(n, 3, 8, 8), "landmarks": torch.rand(n, 68, 2), "noise": torch.randn(n, 8)}
    with torch.no_grad():
        t["image_features"] = model.clip_image(t["image"])
        t["condition"] = model.fpen_s2(t["image_features"])
        t["epr"] = model.diffusion(t["condition"], t["noise"])
        t["logits"] = model.udcformer(t["image"], t["landmarks"], t["epr"])
    calib = ReferenceIO(list(range(n)), t)
    comp = Component("pipeline", Pipeline(model), {k: t[k][:1].clone() for k in ("image", "landmarks", "noise")},
                     ("logits",))
    return model, comp, calib


def test_composed_pipeline_is_checked_once_lowered_and_a_miss_runs_its_own_search(tmp_path, monkeypatch):
    """The composed pipeline is lowered and run on the calibration faces: it passes the int8 thresholds here (the record
    says per-component, its parts, one lowered check); against thresholds nothing int8 can meet (cosine 1.0) it
    misses, and the pipeline's own search (stubbed here) runs and keeps the composed attempt's failures."""
    from udc.export.quant.recipe_hints import ComposedRecipe
    from udc.export.targets import executorch_export as ee
    from udc.sdk.parity.metrics import THRESHOLDS

    model, comp, calib = _mini_pipeline()
    composed = ComposedRecipe((("clip_image", "gemm-int8", ()), ("fpen_s2", "all-int8", ()),
                               ("denoiser", "all-int8", ()), ("udcformer", "gemm-int8-sensitive-1", ("head",))))
    example, names = tuple(comp.inputs.values()), list(comp.inputs)
    logged: list[str] = []
    # top-1 at 50 %: this random model's 24 faces have near-tied logits that int8 rounding may flip on another CPU;
    # the cosine threshold (0.99) is the int8 one
    loose = {**THRESHOLDS["int8"], "top1": 0.5}
    _, _, rec = ee._export_int8_composed(comp, model, example, calib, "xnnpack", names, tmp_path / "p.pte", 1,
                                         logged.append, composed, loose)
    assert rec["recipe"] == "per-component" and rec["parts"]["udcformer"]["kept_layers"] == ["head"]
    assert rec["lowered_checks"][0]["passed"] and rec["lowered_checks"][0]["end_to_end"]["cosine"] > 0.99
    assert "layer model.udcformer.head" in rec["float_kept"] and (tmp_path / "p.pte").stat().st_size > 0

    searched = []
    monkeypatch.setattr(ee, "_export_int8", lambda *a, **k: searched.append(k) or ("edge", "et", {"recipe": "own"}))
    strict = {**THRESHOLDS["int8"], "cosine": 1.0}
    edge, et, rec = ee._export_int8_composed(comp, model, example, calib, "xnnpack", names, tmp_path / "q.pte", 1,
                                             logged.append, composed, strict)
    assert (edge, et, rec["recipe"]) == ("edge", "et", "own") and searched == [{"thresholds": strict}]
    assert rec["composed"]["passed"] is False and any("cosine" in f for f in rec["composed"]["failures"])
    assert "the pipeline's own recipe search" in logged[-1]

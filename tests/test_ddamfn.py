"""DDAMFN (seed 003): shapes, the seed's parameter/FLOP table, export, attention loss wiring, checkpoint mapping."""
from __future__ import annotations

import pytest
import torch

from udc.sdk.models.ddamfn_config import DDAMFNConfig, ddamfn_config_from_dict, get_ddamfn_config, paper, tiny
from udc.train.losses.fer import attention_loss, ddamfn_total_loss
from udc.sdk.models.ddamfn.model import DDAMFN, convert_official_state_dict
from udc.sdk.models.profiling import count_macs, count_params


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return DDAMFN(tiny()).eval()


def _image(cfg: DDAMFNConfig, b: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, cfg.image_size, cfg.image_size, generator=g)


def test_tiny_shapes_and_attention_maps(tiny_model):
    cfg = tiny_model.cfg
    x = _image(cfg, 3)
    logits = tiny_model(x)
    assert logits.shape == (3, cfg.num_classes)
    logits2, maps = tiny_model(x, return_attention=True)
    assert torch.equal(logits, logits2)
    s = cfg.feature_size
    assert s == 2 and len(maps) == cfg.num_heads == 2
    for a in maps:
        assert a.shape == (3, cfg.feature_channels, s, s)
        assert float(a.detach().min()) > 0 and float(a.detach().max()) < 1  # product of two sigmoids
    assert not torch.allclose(maps[0], maps[1])  # independently initialised heads


def test_heads_are_combined_by_elementwise_max(tiny_model):
    feats = tiny_model.mfn(_image(tiny_model.cfg))
    y, maps = tiny_model.ddan(feats)
    assert torch.allclose(y, feats * torch.maximum(maps[0], maps[1]))


def test_zero_heads_is_the_plain_mfn_baseline():
    torch.manual_seed(0)
    m = DDAMFN(tiny().replace(num_heads=0)).eval()
    logits, maps = m(_image(m.cfg), return_attention=True)
    assert maps == [] and logits.shape == (2, 7)
    assert count_params(m) < count_params(DDAMFN(tiny()))


def _hand_macs(cfg: DDAMFNConfig) -> int:
    """Multiply-accumulates of every conv and the FC, from the config alone (no module walk)."""
    s = cfg.image_size // 2
    c0 = cfg.stem_channels
    macs = s * s * c0 * 3 * 9 + s * s * c0 * 9  # 3x3 s2 stem, 3x3 depthwise

    def block(cin, cout, hid, kernels, splits, s_in, s_out):
        mip = max(8, hid // cfg.ca_groups)
        return (s_in * s_in * cin * hid  # 1x1 expand
                + s_out * s_out * sum(c * k * k for c, k in zip(splits, kernels))  # mixed depthwise
                + 2 * s_out * hid * mip + 2 * s_out * mip * hid  # coordinate attention: H+W positions
                + s_out * s_out * hid * cout)  # 1x1 projection

    cin = c0
    for st in cfg.stages:
        s_out = s // 2
        macs += block(cin, st.out_channels, st.down_expansion, st.down_kernels, st.down_splits, s, s_out)
        macs += st.blocks * block(st.out_channels, st.out_channels, st.expansion, st.kernels, st.splits, s_out, s_out)
        cin, s = st.out_channels, s_out
    c = cfg.feature_channels
    mip = max(8, c // cfg.ca_groups)
    macs += s * s * cin * c  # 1x1 to the DDAN width
    macs += cfg.num_heads * (2 * c * s * s + 2 * s * c * mip + 2 * s * mip * c)  # (1,W)/(H,1) dw convs, 1x1s
    return macs + c * s * s + c * cfg.num_classes  # GDConv + FC


def test_paper_config_matches_the_seed_table():
    """Seed 003: DDAMFN 4.106 M params, 551.22 M "FLOPs" (thop-style MACs, which also count BN/PReLU/bias
    elements). Our count: conv + FC MACs only (torch.utils.flop_counter, 2 FLOPs = 1 MAC)."""
    cfg = paper()
    with torch.device("meta"):
        m = DDAMFN(cfg).eval()
        x = torch.empty(1, 3, 112, 112)
        macs = count_macs(m, x)
    params = count_params(m)
    assert params == 4_105_999  # the public code's DDAMNet minus the modules it never runs
    assert round(params / 1e6, 3) == 4.106
    assert macs == _hand_macs(cfg) == 539_588_896
    # the seed's 551.22 M also counts ~11.6 M per-element BN/PReLU/bias ops: conv MACs are 97.9 % of it
    assert 0.97 < macs / 551.22e6 < 1.0
    # the backbone alone (MFN up to the 512x7x7 map), heads and classifier
    c, s, mip = 512, 7, 16
    per_head = 2 * (c * s + 2 * c) + (c * mip + mip) + 2 * mip + 2 * (mip * c + c)  # dw (1,7)/(7,1)+BN, 1x1s
    assert count_params(m.ddan) == 2 * per_head == 69_728
    assert count_params(m.gdconv) + count_params(m.fc) == c * s * s + 2 * c + c * 7 + 7
    assert count_params(m.mfn) == 4_006_568
    assert cfg.feature_size == 7


def test_hand_mac_formula_on_tiny_and_variants():
    for cfg in (tiny(), tiny().replace(num_heads=3), tiny().replace(num_heads=0)):
        m = DDAMFN(cfg).eval()
        assert count_macs(m, _image(cfg, 1)) == _hand_macs(cfg)


def test_mixconv_bn_act_option_adds_the_declared_bn_prelu():
    base, with_bn = tiny(), tiny().replace(mixconv_bn_act=True)
    extra = sum(3 * st.down_expansion + st.blocks * 3 * st.expansion for st in base.stages)  # BN w,b + PReLU
    assert count_params(DDAMFN(with_bn)) - count_params(DDAMFN(base)) == extra


@pytest.mark.slow
def test_torch_export_matches_eager(tiny_model):
    x = _image(tiny_model.cfg, 2, seed=3)
    ep = torch.export.export(tiny_model, (x,))
    with torch.no_grad():
        ref = tiny_model(x)
        out = ep.module()(x)
    assert torch.allclose(out, ref, atol=1e-6, rtol=1e-5)
    x2 = _image(tiny_model.cfg, 2, seed=4)  # another input through the same program
    with torch.no_grad():
        assert torch.allclose(ep.module()(x2), tiny_model(x2), atol=1e-6, rtol=1e-5)
    ranks = [len(n.meta["val"].shape) for n in ep.graph.nodes
             if isinstance(n.meta.get("val"), torch.Tensor)]
    assert max(ranks) <= 5
    assert len(ep.graph_signature.user_outputs) == 1  # logits only: the attention maps are not exported
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not targets & {"aten.item.default", "aten._local_scalar_dense.default"}  # no .item()
    assert not any("randn" in t or "linalg_vector_norm" in t for t in targets)


@pytest.mark.slow
def test_export_with_gca_clip_mode():
    torch.manual_seed(0)
    cfg = tiny().replace(gca_stages=(1, 2), gca_clip_len=2, gca_reduction=4)
    m = DDAMFN(cfg).eval()
    x = _image(cfg, 4)  # 2 clips x 2 frames
    ep = torch.export.export(m, (x,))
    with torch.no_grad():
        assert torch.allclose(ep.module()(x), m(x), atol=1e-6, rtol=1e-5)
    assert max(len(n.meta["val"].shape) for n in ep.graph.nodes if isinstance(n.meta.get("val"), torch.Tensor)) <= 5


def test_training_step_uses_the_attention_loss():
    torch.manual_seed(0)
    m = DDAMFN(tiny()).train()
    x, y = _image(m.cfg, 4), torch.tensor([0, 1, 2, 3])
    logits, maps = m(x, return_attention=True)
    loss, parts = ddamfn_total_loss(logits, y, maps, att_weight=0.1)
    assert parts["att"] > 0 and abs(parts["total"] - (parts["ce"] + 0.1 * parts["att"])) < 1e-5
    loss.backward()
    for head in m.ddan.heads:
        assert head.conv2.weight.grad is not None and head.conv2.weight.grad.abs().sum() > 0
    # the attention term alone pushes the heads apart: its gradient reaches both heads' parameters
    m.zero_grad()
    _, maps = m(x, return_attention=True)
    attention_loss(maps).backward()
    assert all(h.linear_h.conv.weight.grad.abs().sum() > 0 for h in m.ddan.heads)


def _to_official_names(sd: dict, n_stages: int) -> dict:
    """Our state dict -> the public DDAMNet key layout (written independently of the converter)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("mfn.conv1."):
            k = "features.0." + k[len("mfn.conv1."):]
        elif k.startswith("mfn.conv2_dw."):
            k = "features.1." + k[len("mfn.conv2_dw."):]
        elif k.startswith("mfn.conv_sep."):
            k = f"features.{2 + 2 * n_stages}." + k[len("mfn.conv_sep."):]
        elif k.startswith("mfn.stages."):
            _, _, i, kind, rest = k.split(".", 4)
            if kind == "down":
                k = f"features.{2 + 2 * int(i)}.{rest}"
            else:
                j, rest = rest.split(".", 1)
                k = f"features.{3 + 2 * int(i)}.model.{j}.{rest}"
            k = k.replace(".conv_dw.convs.", ".conv_dw.mixed_depthwise_conv.").replace(".ca.", ".CA.")
        elif k.startswith("ddan.heads."):
            _, _, i, rest = k.split(".", 3)
            rest = rest.replace("linear_h.", "Linear_h.").replace("linear_w.", "Linear_w.")
            k = f"cat_head{i}.CoordAtt.{rest}"
        elif k.startswith("gdconv."):
            k = "Linear." + k[len("gdconv."):]
        out[k] = v
    return out


def test_official_checkpoint_mapping_round_trips(tiny_model):
    cfg = tiny_model.cfg
    ours = tiny_model.state_dict()
    official = _to_official_names(ours, len(cfg.stages))
    assert "features.3.model.0.CA.conv1.weight" in official and "features.8.conv.weight" in official
    # modules the public code declares but never runs, and DataParallel's prefix
    official["cat_head0.CoordAtt.Linear.conv.weight"] = torch.zeros(1)
    official["bn.running_mean"] = torch.zeros(7)
    official["features.2.conv_dw.bn.weight"] = torch.zeros(16)
    official["features.2.conv_dw.prelu.weight"] = torch.zeros(16)
    official = {"module." + k: v for k, v in official.items()}
    back = convert_official_state_dict(official, cfg)
    assert set(back) == set(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    fresh = DDAMFN(cfg).eval()
    fresh.load_state_dict(back, strict=True)
    x = _image(cfg)
    with torch.no_grad():
        assert torch.equal(fresh(x), tiny_model(x))
    with pytest.raises(KeyError):
        convert_official_state_dict({"features.99.conv.weight": torch.zeros(1)}, cfg)


def test_config_validation_and_round_trip():
    assert get_ddamfn_config("paper") == paper()
    with pytest.raises(ValueError, match="unknown DDAMFN config"):
        get_ddamfn_config("huge")
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny().replace(image_size=40)
    with pytest.raises(ValueError, match="gca_stages"):
        tiny().replace(gca_stages=(5,))
    bad_stage = tiny().stages[0].__class__(8, 1, 16, (3, 5), (8, 4), 16, (3, 5), (12, 4))
    with pytest.raises(ValueError, match="down_splits"):
        tiny().replace(stages=(bad_stage,) + tiny().stages[1:])
    import json

    d = json.loads(json.dumps(paper().to_dict()))
    assert ddamfn_config_from_dict(d) == paper()

"""Shapes and dtypes of every component and the whole pipeline, for every config."""
import pytest
import torch

from udc.sdk.models.components import COMPONENTS, on_device_components
from udc.sdk.models.config import get_config
from udc.sdk.models.lrdif.model import LRDif
from udc.sdk.models.profiling import count_macs, count_params, profile_config


def test_tiny_components_forward(model, cfg):
    comps = on_device_components(model, batch=2, fuse=True)
    assert [c.name for c in comps] == [*COMPONENTS, "pipeline"]
    d, c, k = cfg.vision.embed_dim, cfg.fpen.epr_dim, cfg.num_classes
    expected = {"clip_image": (2, d), "fpen_s2": (2, c), "denoiser": (2, c), "udcformer": (2, k), "pipeline": (2, k)}
    with torch.no_grad():
        for comp in comps:
            out = comp.module(*comp.inputs.values())
            assert out.shape == expected[comp.name], comp.name
            assert out.dtype == torch.float32
            assert torch.isfinite(out).all()
    # image features are unit vectors (CLIP convention)
    f = comps[0].module(comps[0].inputs["image"])
    torch.testing.assert_close(f.pow(2).sum(-1), torch.ones(2))


def test_tiny_stage_paths(model, batch, cfg):
    with torch.no_grad():
        logits1, z1 = model.forward_stage1(batch["image"], batch["landmarks"], batch["labels"])
        logits2, z2 = model.forward_stage2(batch["image"], batch["landmarks"], batch["noise"], z_s1=z1)
        logits_v1, z_v1 = model.forward_stage2(batch["image"], batch["landmarks"], batch["noise"], use_diffusion=False)
    assert logits1.shape == logits2.shape == logits_v1.shape == (3, cfg.num_classes)
    assert z1.shape == z2.shape == z_v1.shape == (3, cfg.fpen.epr_dim)
    torch.testing.assert_close(z_v1, model.fpen_s2(model.clip_image(batch["image"])))


@pytest.mark.parametrize("name", ["mobile", "paper"])
def test_large_configs_on_meta_device(name):
    cfg = get_config(name)
    with torch.device("meta"):
        m = LRDif(cfg, "clip")
        s, c = cfg.image_size, cfg.fpen.epr_dim
        image, lm, noise = torch.empty(2, 3, s, s), torch.empty(2, 68, 2), torch.empty(2, c)
        logits = m(image, lm, noise)
        logits1, z1 = m.forward_stage1(image, lm, torch.zeros(2, dtype=torch.long))
    assert logits.shape == logits1.shape == (2, cfg.num_classes)
    assert z1.shape == (2, c)


def test_paper_clip_towers_match_openai_vit_b32_parameter_counts():
    # OpenAI CLIP ViT-B/32 has 151,277,313 parameters: visual 87,849,216 + text 63,428,096 + logit_scale 1.
    rows = {r.component: r for r in profile_config(get_config("paper"))}
    assert rows["clip_image"].params == 87_849_216
    assert rows["clip_text"].params == 63_428_096


def _vit_macs(cfg) -> int:
    """Hand count of a CLIP ViT's matmul/conv MACs."""
    v = cfg.vision
    n, w, hidden = v.grid**2 + 1, v.width, int(v.width * v.mlp_ratio)
    patch = v.grid**2 * 3 * v.patch_size**2 * w
    per_layer = n * w * 3 * w + 2 * n * n * w + n * w * w + 2 * n * w * hidden
    return patch + v.layers * per_layer + w * v.embed_dim


def _mlp_macs(module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("name", ["tiny", "mobile", "paper"])
def test_mac_counts_agree_with_hand_counts(name):
    cfg = get_config(name)
    rows = {r.component: r for r in profile_config(cfg)}
    assert rows["clip_image"].macs == _vit_macs(cfg)
    with torch.device("meta"):
        m = LRDif(cfg, "clip")
    assert rows["fpen_s2"].macs == _mlp_macs(m.fpen_s2)
    assert rows["denoiser"].macs == cfg.diffusion.steps * _mlp_macs(m.diffusion.net)
    assert rows["fpen_s2"].params == count_params(m.fpen_s2)
    on_device = sum(rows[c].params for c in COMPONENTS)
    assert rows["on-device total"].params == on_device


def test_count_macs_of_a_conv():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == 10 * 10 * 8 * 3 * 9


def test_fresh_udcformer_ignores_z_until_trained_and_bn_neck_is_plain_affine_at_inference(cfg, batch):
    """Z-modulation kernels start at zero: a fresh UDCformer's logits do not depend on Z; one SGD step on a
    CE loss makes them depend on it. The BN-neck uses batch statistics in training and its running ones after."""
    import warnings

    from udc.train.losses.lrdif import ce_loss

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LRDif(cfg, "embedding").eval()
    u, img, lms = m.udcformer, batch["image"], batch["landmarks"]
    z_a, z_b = torch.randn(3, cfg.fpen.epr_dim), torch.randn(3, cfg.fpen.epr_dim)
    with torch.no_grad():
        torch.testing.assert_close(u(img, lms, z_a), u(img, lms, z_b))
    u.train()
    ce_loss(u(img, lms, z_a), batch["labels"]).backward()
    with torch.no_grad():
        for p in u.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    u.eval()
    with torch.no_grad():
        assert (u(img, lms, z_a) - u(img, lms, z_b)).abs().max() > 1e-4
    # the BN-neck: the training step updated its running statistics; at inference it is their fixed affine
    neck = u.norm
    assert int(neck.num_batches_tracked) == 1 and not torch.equal(neck.running_mean, torch.zeros_like(neck.running_mean))
    x = torch.randn(5, cfg.udcformer.fusion_dim)
    ref = torch.nn.functional.batch_norm(x, neck.running_mean, neck.running_var, neck.weight, neck.bias, False, 0.0, neck.eps)
    torch.testing.assert_close(neck(x), ref)
    neck.train()
    ref = torch.nn.functional.batch_norm(x, None, None, neck.weight, neck.bias, True, 0.0, neck.eps)
    torch.testing.assert_close(neck(x), ref, atol=1e-5, rtol=1e-4)

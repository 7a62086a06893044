"""Gradients reach every trainable parameter of each stage, and never the frozen CLIP towers."""
import torch

from udc.train.losses.lrdif import ce_loss, total_loss


def _assert_all_have_grad(params, names):
    dead = [names[id(p)] for p in params if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient for: {dead}"


def test_stage1_gradients(model, batch):
    model.train()
    names = {id(p): n for n, p in model.named_parameters()}
    logits, _ = model.forward_stage1(batch["image"], batch["landmarks"], batch["labels"])
    ce_loss(logits, batch["labels"]).backward()
    _assert_all_have_grad(model.stage_parameters(1), names)
    assert all(p.grad is None for p in model.clip_image.parameters())
    assert all(not p.requires_grad for p in model.clip_image.parameters())


def test_stage2_gradients(model, batch):
    model.train()
    names = {id(p): n for n, p in model.named_parameters()}
    with torch.no_grad():
        z1 = model.epr_stage1(model.clip_image(batch["image"]), batch["labels"])
    logits, z2 = model.forward_stage2(batch["image"], batch["landmarks"], batch["noise"], z_s1=z1)
    loss, _ = total_loss(logits, batch["labels"], z1, z2)
    loss.backward()
    _assert_all_have_grad(model.stage_parameters(2), names)
    assert all(p.grad is None for p in model.fpen_s1.parameters())
    assert all(p.grad is None for p in model.clip_image.parameters())

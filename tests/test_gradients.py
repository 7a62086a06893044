"""Gradients reach every trainable parameter of each stage, and never the frozen CLIP towers."""
import torch

from udc.sdk.losses import ce_loss, total_loss


def _assert_all_have_grad(params, names):
    dead = [names[id(p)] for p in params if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient for: {dead}"


def _step_off_zero_init(model):
    """The Z-modulation kernels start at zero (UDCformer ignores Z at init): at step 0 the loss reaches
    them but not what feeds Z. One plain SGD step on a CE loss moves them; then everything upstream is reached."""
    model.train()
    batch_size, h = 4, model.cfg.image_size
    g = torch.Generator().manual_seed(1)
    image = torch.randn(batch_size, 3, h, h, generator=g)
    lms = torch.rand(batch_size, 68, 2, generator=g)
    labels = torch.arange(batch_size) % model.cfg.num_classes
    z = torch.randn(batch_size, model.cfg.fpen.epr_dim, generator=g)
    ce_loss(model.udcformer(image, lms, z), labels).backward()
    kernels = [m.kernel.weight for m in model.udcformer.modules() if hasattr(m, "kernel")]
    assert kernels and all(k.grad is not None and k.grad.abs().sum() > 0 for k in kernels)
    with torch.no_grad():
        for k in kernels:
            k -= 0.1 * k.grad
    model.zero_grad(set_to_none=True)


def test_stage1_gradients(model, batch):
    _step_off_zero_init(model)
    names = {id(p): n for n, p in model.named_parameters()}
    logits, _ = model.forward_stage1(batch["image"], batch["landmarks"], batch["labels"])
    ce_loss(logits, batch["labels"]).backward()
    _assert_all_have_grad(model.stage_parameters(1), names)
    assert all(p.grad is None for p in model.clip_image.parameters())
    assert all(not p.requires_grad for p in model.clip_image.parameters())


def test_stage2_gradients(model, batch):
    _step_off_zero_init(model)
    names = {id(p): n for n, p in model.named_parameters()}
    with torch.no_grad():
        z1 = model.epr_stage1(model.clip_image(batch["image"]), batch["labels"])
    logits, z2 = model.forward_stage2(batch["image"], batch["landmarks"], batch["noise"], z_s1=z1)
    loss, _ = total_loss(logits, batch["labels"], z1, z2)
    loss.backward()
    _assert_all_have_grad(model.stage_parameters(2), names)
    assert all(p.grad is None for p in model.fpen_s1.parameters())
    assert all(p.grad is None for p in model.clip_image.parameters())

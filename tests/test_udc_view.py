"""On-the-fly UDC degradation (``udc_prob > 0``): the CLIP image branch and UDCformer see the same UDC draw,
as on a phone where both read the one UDC image; the feature cache steps aside for degraded samples.
Also: DDAMFN's official recipe options (random erasing, affine probability) and the recipe defaults."""
import warnings

import numpy as np
import pytest
import torch

from udc.train.config import DDAMFN_OFFICIAL, TrainConfig, recipe_defaults
from udc.train.data import collate, random_erase
from udc.train.trainer import Trainer


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from udc.train.synthetic.dataset import generate_dataset

    root = tmp_path_factory.mktemp("udcview") / "faces"
    generate_dataset(root, {"train": 3, "val": 1, "test": 1}, size=64, seed=0, progress=False)
    return root


def make_trainer(synth, out, **kw):
    base = dict(model="tiny", data=str(synth), out=str(out), epochs=1, batch_size=8, lr=1e-3, num_threads=1,
                flip=False, rotate_deg=0.0, scale_jitter=0.0, shift=0.0, cache_dir=str(out.parent / "cache"))
    base.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(TrainConfig(**base), progress=False, log=lambda *a: None)


class Recorder:
    """Forward pre-hooks that keep the input each module got."""

    def __init__(self, model):
        self.clip, self.udcformer = [], []
        model.clip_image.register_forward_pre_hook(lambda m, a: self.clip.append(a[0].detach().clone()))
        model.udcformer.register_forward_pre_hook(lambda m, a: self.udcformer.append(a[0].detach().clone()))


def one_batch(t, n=8):
    t.model.train()
    t.train_set.set_epoch(0)
    return collate([t.train_set[i] for i in range(n)])


def test_clip_branch_and_udcformer_get_the_same_udc_draw(synth, tmp_path):
    # no geometric augmentation: the two views are the same crop, so with the same draw the inputs are equal
    t = make_trainer(synth, tmp_path / "run", udc_prob=1.0)
    assert t.cache is not None and not t.train_clip
    rec = Recorder(t.model)
    batch = one_batch(t)
    t._forward(batch, 0, batch["label"])
    assert len(rec.clip) == 1 and len(rec.udcformer) == 1
    clip_in, udc_in = rec.clip[0], rec.udcformer[0]
    assert clip_in.shape == udc_in.shape == (8, 3, 64, 64)
    assert torch.equal(clip_in, udc_in)  # the same UDC image reaches both branches
    from udc.sdk.faces.pipeline import to_model_input

    clean = to_model_input(batch["clip"], t.mcfg.mean, t.mcfg.std)
    assert (clip_in - clean).abs().mean() > 0.05  # and it is degraded, not the clean crop
    # the degradation is the draw keyed by (epoch, index): the one UDCformer's view got
    expect, _ = t.udc.degrade(list(batch["image"]), [f"0:{i}" for i in batch["index"].tolist()])
    assert torch.equal(udc_in, to_model_input(np.stack(expect), t.mcfg.mean, t.mcfg.std))


def test_feature_cache_steps_aside_for_degraded_samples_only(synth, tmp_path):
    t = make_trainer(synth, tmp_path / "run", udc_prob=0.5, flip=True, rotate_deg=8.0)
    batch = one_batch(t)
    views, clip_views, rows = t._views(batch, 0, with_clip=True)
    assert 0 < len(rows) < 8, rows  # a mix, so both paths run
    images = t._model_input(views, batch, 0)
    feats = t._clip_features(t.train_crops, batch, images, clip_views, rows)
    from udc.sdk.faces.pipeline import to_model_input

    t.model.eval()
    with torch.no_grad():
        live_degraded = t.model.clip_image(to_model_input(clip_views, t.mcfg.mean, t.mcfg.std))
        live_clean = t.model.clip_image(to_model_input(batch["clip"], t.mcfg.mean, t.mcfg.std))
    clean_rows = [k for k in range(8) if k not in rows]
    torch.testing.assert_close(feats[rows], live_degraded[rows], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(feats[clean_rows], live_clean[clean_rows], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(feats[rows], live_clean[rows], atol=1e-3)
    # the degraded CLIP view carries the draw of the image view: same profile and noise seed, un-augmented crop
    idx = batch["index"].tolist()
    expect, _ = t.udc.degrade([batch["clip"][k] for k in rows], [f"0:{idx[k]}" for k in rows])
    assert np.array_equal(clip_views[rows], np.stack(expect))
    assert np.array_equal(clip_views[clean_rows], batch["clip"][clean_rows])


def test_without_cache_the_frozen_tower_sees_the_degraded_view(synth, tmp_path):
    t = make_trainer(synth, tmp_path / "run", udc_prob=1.0, feature_cache=False)
    assert t.cache is None
    rec = Recorder(t.model)
    batch = one_batch(t)
    t._forward(batch, 0, batch["label"])
    assert torch.equal(rec.clip[0], rec.udcformer[0])


def test_random_erasing_and_affine_probability():
    x = torch.ones(6, 3, 32, 32)
    y = random_erase(x, range(6), seed=0, epoch=0, p=1.0, scale=(0.1, 0.2))
    zero_frac = (y == 0).float().mean(dim=(1, 2, 3))
    assert ((zero_frac >= 0.05) & (zero_frac <= 0.25)).all(), zero_frac
    assert torch.equal(random_erase(x, range(6), 0, 0, p=0.0), x)
    again = random_erase(x, range(6), seed=0, epoch=0, p=1.0, scale=(0.1, 0.2))
    assert torch.equal(y, again)  # keyed by (seed, epoch, index)
    assert not torch.equal(y, random_erase(x, range(6), seed=0, epoch=1, p=1.0, scale=(0.1, 0.2)))


def test_recipe_defaults():
    name, d = recipe_defaults("ddamfn", "paper")
    assert name == "ddamfn-official"
    assert (d["optimizer"], d["lr"], d["weight_decay"], d["schedule"], d["step_size"]) == ("sgd", 0.01, 1e-4, "step", 10)
    assert d["random_erasing"] > 0 and d["att_weight"] == 0.1 and d["batch_size"] == 256
    assert recipe_defaults("lrdif", "tiny") == ("paper", {})
    assert recipe_defaults("lrdif", "fer", 2)[0] == "lrdif-fer-stage2"
    TrainConfig(**{**DDAMFN_OFFICIAL, "family": "ddamfn", "model": "tiny", "data": "x"}).validate()
    from udc.train.cli import _make_config

    cfg = _make_config(1, {"data": "x", "model": "tiny", "epochs": 3}, family="ddamfn")
    assert (cfg.optimizer, cfg.lr, cfg.epochs, cfg.recipe) == ("sgd", 0.01, 3, "ddamfn-official")
    assert _make_config(1, {"data": "x"}).optimizer == "adam"  # LRDif keeps the paper's

"""DDAMFN and IAL in training and evaluation: the DDAMFN family trains and resumes exactly through the
shared trainer, --ial adds exactly lambda * L_IA (both families), udc-eval dispatches on the
checkpoint family (old checkpoints = LRDif) and scores clips (--video)."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from udc.sdk.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from udc.sdk.models.ddamfn_config import get_ddamfn_config
from udc.train.losses.fer import intensity_aware_loss
from udc.sdk.models.registry import checkpoint_family
from udc.sdk.models.ddamfn.model import DDAMFN
from udc.sdk.models.lrdif.model import LRDif
from udc.train.config import TrainConfig
from udc.train.trainer import StageStep, Trainer


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from udc.train.synthetic.dataset import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "faces"
    generate_dataset(root, {"train": 12, "val": 3, "test": 3}, size=64, seed=0, progress=False)
    return root


def make_cfg(synth, out, **kw):
    base = dict(family="ddamfn", model="tiny", data=str(synth), out=str(out), epochs=3, batch_size=16, lr=3e-3,
                num_threads=1, flip=False, rotate_deg=0.0, scale_jitter=0.0, shift=0.0)
    base.update(kw)
    return TrainConfig(**base)


def trainer(cfg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(cfg, progress=False, log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def ddamfn_run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("dd") / "run"
    t = trainer(make_cfg(synth, out, epochs=8, ial_weight=0.1))
    return t, t.fit()


@pytest.mark.slow
def test_ddamfn_training_reduces_the_loss_and_writes_a_ddamfn_checkpoint(ddamfn_run):
    t, res = ddamfn_run
    assert isinstance(t.model, DDAMFN) and t.mcfg.image_size == 32  # crops at the DDAMFN config's size
    assert t.train_crops.images.shape[1:] == (32, 32, 3)
    ce = [h["train_ce"] for h in res["history"]]
    loss = [h["train_loss"] for h in res["history"]]
    assert ce[-1] < ce[0] - 0.1, ce  # the classification part learns, not only the attention term
    assert loss[-1] < loss[0], loss
    payload = read_checkpoint(res["best"])
    assert payload["family"] == "ddamfn" and payload["extra"]["ial_weight"] == 0.1
    assert isinstance(load_checkpoint(res["best"]), DDAMFN)
    loaded = load_checkpoint(Path(res["best"]).parent / "last.pt").eval()  # best.pt is the best-by-val epoch
    assert isinstance(loaded, DDAMFN) and loaded.cfg == t.mcfg
    x = torch.randn(2, 3, 32, 32)
    t.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), t.model(x))
    out = Path(res["best"]).parent
    assert (out / "metrics.csv").exists() and len(json.loads((out / "metrics.json").read_text())) == 8


@pytest.mark.slow
def test_ddamfn_resume_after_an_interrupted_epoch_is_exact(synth, tmp_path):
    kw = dict(epochs=2, flip=True, rotate_deg=8.0)
    full = trainer(make_cfg(synth, tmp_path / "full", **kw))
    full.fit()
    cfg = make_cfg(synth, tmp_path / "killed", save_every=2, **kw)
    killed = trainer(cfg)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(stop_at_step=killed._steps_per_epoch() + 3)
    resumed = trainer(cfg, resume=True)
    spe = resumed._steps_per_epoch()
    assert (resumed.epoch, resumed.step_in_epoch, resumed.global_step) == (1, 2, spe + 2)
    taken = [0]
    forward = resumed._forward

    def counting(*a, **k):
        taken[0] += 1
        return forward(*a, **k)

    resumed._forward = counting
    resumed.fit()
    assert taken == [spe - 2]  # only the rest of epoch 2 ran after the resume
    assert resumed.global_step == full.global_step == 2 * spe
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b) and any("running_mean" in n for n in a)  # same keys: nothing left out
    for n in a:
        assert torch.equal(a[n], b[n]), n  # BN running statistics included
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]


def test_ial_adds_exactly_lambda_times_l_ia_ddamfn():
    from udc.train.ddamfn import DDAMFNStep

    torch.manual_seed(0)
    model = DDAMFN(get_ddamfn_config("tiny")).train()
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 6])
    base_loss, logits, ce = DDAMFNStep(model, ial_weight=0.0)(x, y)
    ial_loss, logits2, _ = DDAMFNStep(model, ial_weight=0.1)(x, y)
    assert torch.equal(logits, logits2)  # train-mode BN: batch statistics, same output
    expected = 0.1 * intensity_aware_loss(logits, y)
    assert expected > 1e-3
    torch.testing.assert_close(ial_loss - base_loss, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, y))


@pytest.mark.parametrize("stage", [1, 2])
def test_ial_adds_exactly_lambda_times_l_ia_lrdif(model, batch, stage):
    y = batch["labels"]
    args = (batch["image"], batch["image"], batch["landmarks"], y, batch["noise"], None)
    torch.manual_seed(1)
    base, logits, ce, _ = StageStep(model, stage, "V4", 1.0, ial_weight=0.0)(*args)
    torch.manual_seed(1)
    with_ial, logits2, ce2, _ = StageStep(model, stage, "V4", 1.0, ial_weight=0.1)(*args)
    assert torch.equal(logits, logits2) and torch.equal(ce, ce2)
    torch.testing.assert_close(with_ial - base, 0.1 * intensity_aware_loss(logits, y), rtol=1e-5, atol=1e-7)
    if stage == 1:
        assert torch.equal(base, ce)  # without --ial stage 1 is eq. 13 exactly, as before


@pytest.mark.slow
def test_ial_flag_reaches_the_step_of_both_families(synth, tmp_path):
    from udc.train.cli import _make_config

    kw = {"data": str(synth), "model": "tiny", "ial": True}
    assert _make_config(1, kw).ial_weight == 0.1
    assert _make_config(1, {**kw, "ial_weight": 0.3}, family="ddamfn").ial_weight == 0.3
    assert _make_config(1, {**kw, "ial": False}).ial_weight == 0.0
    t = trainer(make_cfg(synth, tmp_path / "r", epochs=1, ial_weight=0.25, max_steps_per_epoch=1))
    assert t.step_module.ial_weight == 0.25


def test_old_checkpoints_without_family_load_as_lrdif(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "new.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "lrdif"
    del payload["family"]  # a checkpoint written before the field existed
    torch.save(payload, tmp_path / "old.pt")
    assert checkpoint_family(read_checkpoint(tmp_path / "old.pt")) == "lrdif"
    old = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(old, LRDif) and old.cfg == model.cfg
    payload["family"] = "resnet"
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="unknown model family 'resnet'"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.mark.slow
def test_cli_ddamfn_train_then_eval_prints_war_and_uar(synth, ddamfn_run, tmp_path):
    from udc.train.cli import eval_main, main

    r = CliRunner().invoke(main, ["ddamfn", "--data", str(synth), "--model", "tiny", "--out", str(tmp_path / "run"),
                                  "--epochs", "1", "--batch-size", "16", "--quiet", "--ial", "--heads", "3",
                                  "--gca-stages", "1,2", "--gca-reduction", "4", "--set", "num_threads=1"])
    assert r.exit_code == 0, r.output
    assert "best val acc" in r.output and "ddamfn" in r.output
    ck = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ck.cfg.num_heads == 3 and ck.cfg.gca_stages == (1, 2)
    best = ddamfn_run[1]["best"]
    r = CliRunner().invoke(eval_main, [best, "--data", str(synth), "--split", "test"])
    assert r.exit_code == 0, r.output
    assert "WAR (accuracy) %" in r.output and "UAR %" in r.output and "ddamfn" in r.output
    r = CliRunner().invoke(eval_main, [best, "--data", str(synth), "--split", "test", "--json"])
    out = json.loads(r.output[r.output.index("{"):])
    assert out["family"] == "ddamfn" and out["n"] == 21 and out["war"] == out["accuracy"] and 0 <= out["uar"] <= 1
    bad = CliRunner().invoke(main, ["ddamfn", "--data", str(synth), "--model", "mobile", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "ddamfn model must be one of tiny, paper" in bad.output


@pytest.mark.slow
def test_eval_video_clips_one_prediction_per_clip(ddamfn_run, model, tmp_path):
    from udc.sdk.faces.align import align_face
    from udc.sdk.faces.pipeline import to_model_input
    from udc.sdk.faces.images import load_image
    from udc.sdk.faces.video import sample_clip_indices
    from udc.train.cli import eval_main
    from udc.train.landmark_store import load_landmarks
    from udc.train.trainer import crop_logits
    from udc.train.video_eval import clip_metrics, generate_clip_dataset, index_clips, prepare_clip_frames

    root = generate_clip_dataset(tmp_path / "clips", {"test": 1}, frames=7, size=64)
    best = ddamfn_run[1]["best"]
    r = CliRunner().invoke(eval_main, [best, "--data", str(root), "--video", "--segments", "2",
                                       "--frames-per-segment", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert out["unit"] == "clips" and out["n"] == 7 and out["frames_scored"] == 28 and out["war"] == out["accuracy"]
    r = CliRunner().invoke(eval_main, [best, "--data", str(root), "--video", "--preset", "dfew"])
    assert r.exit_code == 0 and "clips" in r.output and "16x1 frames" in r.output, r.output

    # the clip prediction is the argmax of the mean probability of its sampled frames, checked by hand
    net = load_checkpoint(best).eval()
    clips = index_clips(root, "test")
    frames = prepare_clip_frames(root, clips, 32, 2, 2)
    m = clip_metrics(crop_logits(net, frames.crops, 2, 0, "cpu"), frames, net.cfg.labels)
    points = load_landmarks(root / "landmarks68.npz")
    for c, clip in enumerate(clips):
        files = sorted(clip.path.iterdir())
        idx = sample_clip_indices(len(files), 2, 2)
        crops = [align_face(load_image(files[i]), points[f"{clip.key}/{files[i].name}"], 32)[0] for i in idx]
        with torch.no_grad():
            prob = net(to_model_input(crops, net.cfg.mean, net.cfg.std)).softmax(1).mean(0)
        assert m.predictions[c] == int(prob.argmax())

    # an LRDif checkpoint goes through the same clip path (stage 2, label-free)
    lr = save_checkpoint(model, tmp_path / "lrdif.pt")
    r = CliRunner().invoke(eval_main, [str(lr), "--data", str(root), "--video", "--segments", "2",
                                       "--frames-per-segment", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["family"] == "lrdif"
    missing = CliRunner().invoke(eval_main, [best, "--data", str(root), "--video", "--split", "val"])
    assert missing.exit_code != 0 and "no 'val' split" in missing.output

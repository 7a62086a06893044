"""Training: both stages learn, resume is exact, stage 2 never reads the label, metrics, DDP."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from udc.train.config import TrainConfig
from udc.train.data import Crops
from udc.train.metrics import Metrics, confusion_matrix
from udc.train.trainer import Trainer, evaluate_crops


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from udc.train.synthetic.dataset import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "faces"
    generate_dataset(root, {"train": 12, "val": 3, "test": 3}, size=64, seed=0, progress=False)
    return root


def make_cfg(synth, out, **kw):
    base = dict(model="tiny", data=str(synth), out=str(out), epochs=3, batch_size=16, lr=1e-3, num_threads=2,
                flip=False, rotate_deg=0.0, scale_jitter=0.0, shift=0.0, cache_dir=str(Path(out).parent / "cache"))
    base.update(kw)
    return TrainConfig(**base)


def count_steps(t):
    """Count ``t``'s training steps from now on (the returned list's one entry)."""
    taken = [0]
    forward = t._forward

    def counting(*a, **k):
        taken[0] += 1
        return forward(*a, **k)

    t._forward = counting
    return taken


def trainer(cfg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(cfg, progress=False, log=lambda *a: None, **kw)


@pytest.fixture(scope="module")
def stage1_ckpt(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1") / "run"
    t = trainer(make_cfg(synth, out, stage=1, epochs=4))
    res = t.fit()
    losses = [h["train_loss"] for h in res["history"]]
    return out / "best.pt", losses


@pytest.mark.slow
def test_stage1_reduces_the_loss(stage1_ckpt):
    _, losses = stage1_ckpt
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.slow
def test_stage2_reduces_the_loss_and_never_reads_the_label(synth, stage1_ckpt, tmp_path):
    t = trainer(make_cfg(synth, tmp_path / "s2", stage=2, stage1=str(stage1_ckpt[0])))
    hist = t.fit()["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"], [h["train_loss"] for h in hist]
    crops = t.val_crops
    wrong = Crops(crops.images, crops.landmarks, (crops.labels + 3) % 7, crops.keys, crops.hashes)
    a = evaluate_crops(t.model, crops, 2, 0, t.device)
    b = evaluate_crops(t.model, wrong, 2, 0, t.device)
    assert np.array_equal(a.predictions, b.predictions)
    # the stage-1 path does read it (the upper bound is label-conditioned)
    from udc.sdk.faces.pipeline import to_model_input

    x = to_model_input(crops.images[:4], t.mcfg.mean, t.mcfg.std)
    lm = torch.from_numpy(crops.landmarks[:4] / 64).float()
    with torch.no_grad():
        l1, _ = t.model.forward_stage1(x, lm, torch.from_numpy(crops.labels[:4]))
        l2, _ = t.model.forward_stage1(x, lm, torch.from_numpy(wrong.labels[:4]))
    assert (l1 - l2).abs().max() > 1e-4


@pytest.mark.slow
def test_resume_after_an_interrupted_epoch_is_exact(synth, tmp_path):
    full = trainer(make_cfg(synth, tmp_path / "full", stage=1, epochs=2, flip=True, rotate_deg=8.0))
    full.fit()
    cfg = make_cfg(synth, tmp_path / "killed", stage=1, epochs=2, flip=True, rotate_deg=8.0, save_every=2)
    killed = trainer(cfg)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(stop_at_step=killed._steps_per_epoch() + 3)  # dies in epoch 2, after its step-2 checkpoint
    resumed = trainer(cfg, resume=True)
    spe = resumed._steps_per_epoch()
    assert (resumed.epoch, resumed.step_in_epoch, resumed.global_step) == (1, 2, spe + 2)
    taken = count_steps(resumed)
    resumed.fit()
    assert taken == [spe - 2]  # only the rest of epoch 2 ran after the resume
    assert resumed.global_step == full.global_step == 2 * spe
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b) and len(a) > 0  # same keys in the same order: nothing left out of the comparison
    for n in a:
        assert torch.equal(a[n], b[n]), n
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]


def test_metrics_match_a_hand_computed_confusion_matrix():
    y_true = [0, 0, 1, 1, 1, 2, 2, 3]
    y_pred = [0, 1, 1, 1, 0, 2, 1, 3]
    cm = confusion_matrix(y_true, y_pred, 4)
    expected = np.array([[1, 1, 0, 0], [1, 2, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]])
    assert np.array_equal(cm, expected)
    m = Metrics(cm, ("a", "b", "c", "d"))
    assert m.accuracy == 5 / 8
    assert m.uar == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 1) / 4)
    assert m.per_class_rows()[1] == ["b", 3, "66.7", "50.0"]
    # a class with no samples is left out of UAR, not counted as zero
    m2 = Metrics(confusion_matrix([0, 0], [0, 1], 3), ("a", "b", "c"))
    assert m2.uar == 0.5


@pytest.mark.slow
def test_cli_train_and_eval(synth, stage1_ckpt, tmp_path):
    from udc.train.cli import eval_main, main

    r = CliRunner().invoke(main, ["stage1", "--data", str(synth), "--model", "tiny", "--out", str(tmp_path / "run"),
                                  "--epochs", "1", "--batch-size", "16", "--quiet", "--set", "num_threads=2",
                                  "--set", f"cache_dir={tmp_path / 'cache'}"])
    assert r.exit_code == 0, r.output
    assert "best val acc" in r.output and (tmp_path / "run" / "metrics.csv").exists()
    png = tmp_path / "cm.png"
    r = CliRunner().invoke(eval_main, [str(stage1_ckpt[0]), "--data", str(synth), "--split", "test", "--stage", "1",
                                       "--json", "--confusion", str(png)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{"):])
    assert out["n"] == 21 and 0 <= out["accuracy"] <= 1 and png.exists()
    bad = CliRunner().invoke(main, ["stage2", "--data", str(synth), "--stage1", str(png)])
    assert bad.exit_code != 0 and "not a" in bad.output


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_ddp_two_processes_equal_one(synth, tmp_path, optimizer):
    """2 CPU processes (gloo) with global batch 16 = 1 process with batch 16: every step's loss (the mean of
    the two ranks' half-batch losses) and the epoch's loss agree, and the weights agree.

    SGD: the weights agree to float rounding. Adam divides each step by the running RMS of the
    gradient, so parameters whose true gradient is zero (e.g. the attention key bias, to which
    softmax is invariant) turn rounding noise of ~1e-9 into steps of up to lr: there the losses must
    agree and the weights within a few lr-sized steps.
    """
    script = tmp_path / "run.py"
    script.write_text(f"""
import json, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from udc.train.config import TrainConfig
from udc.train.trainer import Trainer

class Recording(Trainer):  # every step's loss on this rank
    def _forward(self, batch, epoch, labels):
        loss, logits, ce = super()._forward(batch, epoch, labels)
        steps.append([len(batch["label"]), loss.item()])
        return loss, logits, ce

steps = []
cfg = TrainConfig(model="tiny", data={str(synth)!r}, out=sys.argv[1], epochs=1, batch_size=16, lr=1e-3,
                  optimizer={optimizer!r}, num_threads=1, flip=True, rotate_deg=5.0, max_steps_per_epoch=3,
                  cache_dir={str(tmp_path / 'cache')!r})
t = Recording(cfg, progress=False, log=lambda *a: None)
t.fit()
Path(sys.argv[1], f"steps-rank{{t.rank}}.json").write_text(json.dumps({{"world": t.world, "steps": steps}}))
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "single")], check=True, env=env)
    port = str(29500 + os.getpid() % 400)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
                    str(script), str(tmp_path / "ddp")], check=True, env=env, capture_output=True)
    a = torch.load(tmp_path / "single" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    # the run really had 2 processes, each with half of every batch
    assert a["extra"]["train_state"]["world_size"] == 1 and b["extra"]["train_state"]["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "ddp").glob("steps-rank*.json")) == ["steps-rank0.json",
                                                                                  "steps-rank1.json"]
    one = json.loads((tmp_path / "single" / "steps-rank0.json").read_text())
    ranks = [json.loads((tmp_path / "ddp" / f"steps-rank{r}.json").read_text()) for r in (0, 1)]
    assert one["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    assert len(one["steps"]) == 3 and [len(r["steps"]) for r in ranks] == [3, 3]
    assert [n for n, _ in one["steps"]] == [16] * 3 and [n for r in ranks for n, _ in r["steps"]] == [8] * 6
    per_step_one = [loss for _, loss in one["steps"]]
    per_step_ddp = [(l0 + l1) / 2 for (_, l0), (_, l1) in zip(ranks[0]["steps"], ranks[1]["steps"])]
    assert per_step_one == pytest.approx(per_step_ddp, rel=1e-5)  # NaN fails approx
    assert ranks[0]["steps"] != ranks[1]["steps"]  # the two ranks saw different halves
    la = a["extra"]["train_state"]["history"][0]["train_loss"]
    lb = b["extra"]["train_state"]["history"][0]["train_loss"]
    assert la == pytest.approx(lb, rel=1e-5)
    assert la == pytest.approx(sum(per_step_one) / 3, rel=1e-9)  # the epoch loss is the mean of the steps
    atol = 1e-5 if optimizer == "sgd" else 3 * 1e-3
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], atol=atol, rtol=1e-4)

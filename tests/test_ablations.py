"""Paper Table 5 / Fig. 6 study (issue 15): variant names and evaluation, the ablation table with its seed spread,
and `udc-train ablations` end to end on the tiny config (a few steps)."""
import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from udc.sdk.models.config import tiny
from udc.sdk.models.lrdif.model import LRDif
from udc.train.cli import ablation_table
from udc.train.config import PAPER_VARIANT, VARIANT_SETTINGS, VARIANTS, TrainConfig
from udc.train.data import Crops
from udc.train.trainer import crop_logits


def test_the_default_variant_is_the_papers_ours_row():
    assert PAPER_VARIANT == "V3" and TrainConfig().variant == "V3"
    assert set(VARIANT_SETTINGS) == set(VARIANTS) and "Ours" in VARIANT_SETTINGS["V3"]
    assert "noise inserted" in VARIANT_SETTINGS["V3"] and "deterministic" in VARIANT_SETTINGS["V4"]
    with pytest.raises(ValueError, match="parameterization"):
        TrainConfig(data="x", parameterization="v").validate()
    with pytest.raises(ValueError, match="dil_form"):
        TrainConfig(data="x", dil_form="pre").validate()


def _crops(n: int = 4, size: int = 64) -> Crops:
    rng = np.random.default_rng(0)
    return Crops(rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
                 rng.uniform(8, 56, (n, 68, 2)).astype(np.float32), np.arange(n) % 7,
                 [str(i) for i in range(n)], [str(i) for i in range(n)])


def test_v3_is_scored_with_its_step_noise_fixed_per_sample():
    torch.manual_seed(0)
    model = LRDif(tiny().replace(**{"udcformer.dil_form": "paper"})).eval()
    for p in model.udcformer.dt.parameters():  # let Z reach the logits (the Z modulation starts as identity)
        p.data.add_(0.1 * torch.randn_like(p))
    crops = _crops()
    plain = crop_logits(model, crops, 2, 0, "cpu")
    noisy = crop_logits(model, crops, 2, 0, "cpu", noisy_reverse=True)
    assert (plain - noisy).abs().max() > 1e-5  # the step noise reaches the logits
    torch.testing.assert_close(noisy, crop_logits(model, crops, 2, 0, "cpu", noisy_reverse=True))
    # V1 has no diffusion: no step noise either
    torch.testing.assert_close(crop_logits(model, crops, 2, 0, "cpu", use_diffusion=False),
                               crop_logits(model, crops, 2, 0, "cpu", use_diffusion=False, noisy_reverse=True))


def test_ablation_table_shows_each_seed_the_mean_and_the_spread():
    results = [("LRDif_S2-V3 (Ours)", "V3", 4, "x0", "paper", 0, 0.50),
               ("LRDif_S2-V3 (Ours)", "V3", 4, "x0", "paper", 1, 0.54),
               ("LRDif_S2-V1", "V1", 4, "x0", "paper", 0, 0.40),
               ("LRDif_S2-V1", "V1", 4, "x0", "paper", 1, 0.43)]
    header, rows = ablation_table(results, [0, 1], VARIANT_SETTINGS)
    assert header[-4:] == ["seed 0 %", "seed 1 %", "mean %", "spread pp"]
    assert rows[0][0] == "LRDif_S2-V3 (Ours)" and rows[0][-4:] == ["50.0", "54.0", "52.0", "4.0"]
    assert rows[1][-2:] == ["41.5", "3.0"]


def test_ablation_table_fails_closed_on_nan_never_scored_empty_and_missing_seeds():
    row = ("LRDif_S2-V1", "V1", 4, "x0", "paper")
    for bad in (float("nan"), -1.0, 1.5):
        with pytest.raises(ValueError, match="not in"):
            ablation_table([(*row, 0, 0.5), (*row, 1, bad)], [0, 1], VARIANT_SETTINGS)
    with pytest.raises(ValueError, match="no seeds or no results"):
        ablation_table([], [0, 1], VARIANT_SETTINGS)
    _, rows = ablation_table([(*row, 0, 0.5)], [0, 1], VARIANT_SETTINGS)  # seed 1 missing: no mean over one seed
    assert rows[0][-4:] == ["50.0", "-", "-", "-"]
    _, rows = ablation_table([(*row, 0, 0.5), (*row, 1, 0.5)], [0, 1], VARIANT_SETTINGS)  # equal seeds: spread 0
    assert rows[0][-2:] == ["50.0", "0.0"]


def test_finished_run_is_read_back_only_when_its_options_match_and_it_reached_the_last_epoch(tmp_path):
    from udc.sdk.models.checkpoint import save_checkpoint
    from udc.train.cli import _finished_accuracy

    cfg = TrainConfig(data="x", epochs=2, out=str(tmp_path / "run"))
    assert _finished_accuracy(cfg) is None  # nothing there
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict()))
    model = LRDif(tiny())

    def state(epoch, best):
        save_checkpoint(model, out / "last.pt", extra={"train_state": {"epoch": epoch, "best": best}})
        save_checkpoint(model, out / "best.pt")

    state(2, 0.4)
    assert _finished_accuracy(cfg) == 0.4
    assert _finished_accuracy(TrainConfig(data="x", epochs=3, out=str(out))) is None  # other options: rerun
    state(1, 0.4)
    assert _finished_accuracy(cfg) is None  # stopped before the last epoch
    for bad in (float("nan"), -1.0):
        state(2, bad)
        assert _finished_accuracy(cfg) is None
    (out / "last.pt").write_bytes(b"not a checkpoint")
    assert _finished_accuracy(cfg) is None


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from udc.train.synthetic.dataset import generate_dataset

    root = tmp_path_factory.mktemp("synth") / "faces"
    generate_dataset(root, {"train": 4, "val": 1, "test": 1}, size=64, seed=0, progress=False)
    return root


@pytest.mark.slow
def test_ablations_cli_runs_the_whole_study(synth, tmp_path):
    """Stage 1 in both DIL forms, then V1-V4, V3 with the old DIL, V3 with eps, and V3 at T=32: one table."""
    from udc.train.cli import main

    out = tmp_path / "abl"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = CliRunner().invoke(main, [
            "ablations", "--data", str(synth), "--model", "tiny", "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--quiet", "--seeds", "0", "--steps-list", "4,32",
            "--set", "num_threads=1", "--set", "max_steps_per_epoch=1", "--set", f"cache_dir={tmp_path / 'cache'}"])
    assert r.exit_code == 0, r.output
    rows = json.loads((out / "ablations.json").read_text())
    got = {(x["row"], x["variant"], x["T"], x["parameterization"], x["dil_form"]) for x in rows}
    assert got == {
        ("LRDif_S1 (ground-truth label in)", "-", "-", "-", "paper"),
        ("LRDif_S1 (ground-truth label in)", "-", "-", "-", "post"),
        ("LRDif_S2-V1", "V1", 4, "x0", "paper"), ("LRDif_S2-V2", "V2", 4, "x0", "paper"),
        ("LRDif_S2-V3 (Ours)", "V3", 4, "x0", "paper"), ("LRDif_S2-V4", "V4", 4, "x0", "paper"),
        ("LRDif_S2-V3 (Ours), old DIL", "V3", 4, "x0", "post"),
        ("LRDif_S2-V3 (Ours), eps", "V3", 4, "eps", "paper"),
        ("LRDif_S2-V3 (Ours), Fig. 6", "V3", 32, "x0", "paper"),
    }
    assert "spread pp" in r.output and "LRDif_S2-V3 (Ours)" in r.output
    from udc.sdk.models.checkpoint import read_checkpoint

    ck = read_checkpoint(out / "seed0" / "V3-T4-x0-post" / "best.pt")
    assert ck["config"]["udcformer"]["dil_form"] == "post" and ck["extra"]["variant"] == "V3"
    ck = read_checkpoint(out / "seed0" / "V3-T32-x0-paper" / "best.pt")
    assert ck["config"]["diffusion"]["steps"] == 32
    ck = read_checkpoint(out / "seed0" / "V3-T4-eps-paper" / "best.pt")
    assert ck["config"]["diffusion"]["parameterization"] == "eps"
    # --resume reads every finished run back (same table, nothing retrained)
    mtime = (out / "seed0" / "V3-T32-x0-paper" / "last.pt").stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = CliRunner().invoke(main, [
            "ablations", "--data", str(synth), "--model", "tiny", "--out", str(out), "--epochs", "1",
            "--batch-size", "8", "--quiet", "--seeds", "0", "--steps-list", "4,32", "--resume",
            "--set", "num_threads=1", "--set", "max_steps_per_epoch=1", "--set", f"cache_dir={tmp_path / 'cache'}"])
    assert r2.exit_code == 0, r2.output
    assert r2.output.count("finished before") == 9
    assert json.loads((out / "ablations.json").read_text()) == rows
    assert (out / "seed0" / "V3-T32-x0-paper" / "last.pt").stat().st_mtime_ns == mtime
    # --table-only trains nothing: a run that is gone (or was trained with other options) is a row of "-"
    import shutil

    shutil.rmtree(out / "seed0" / "V3-T32-x0-paper")
    r3 = CliRunner().invoke(main, [
        "ablations", "--data", str(synth), "--model", "tiny", "--out", str(out), "--epochs", "1",
        "--batch-size", "8", "--quiet", "--seeds", "0", "--steps-list", "4,32", "--table-only",
        "--set", "num_threads=1", "--set", "max_steps_per_epoch=1", "--set", f"cache_dir={tmp_path / 'cache'}"])
    assert r3.exit_code == 0, r3.output
    assert not (out / "seed0" / "V3-T32-x0-paper").exists() and r3.output.count("finished before") == 8
    t32 = [x for x in json.loads((out / "ablations.json").read_text()) if x["T"] == 32]
    assert len(t32) == 1 and t32[0]["val_acc"] is None
    line = next(ln for ln in r3.output.splitlines() if ln.startswith("LRDif_S2-V3 (Ours), Fig. 6"))
    assert line.split()[-3:] == ["-", "-", "-"]

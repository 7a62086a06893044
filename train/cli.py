"""``udc-train`` (stage1 | stage2 | ablations) and ``udc-eval``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from udc.sdk.table import format_table

from .config import VARIANTS, TrainConfig

CTX = {"help_option_names": ["-h", "--help"]}


def _common(f):
    opts = [
        click.option("--data", help="Dataset root: RAF-DB, FERPlus, KDEF, AffectNet or folder-per-class (auto-detected)."),
        click.option("--format", "data_format", default=None, help="Force the dataset format instead of detecting it."),
        click.option("--model", default=None, help="Model config: tiny | mobile | paper (stage 1; stage 2 takes the stage-1 one)."),
        click.option("--out", default=None, help="Run directory (checkpoints last.pt/best.pt, metrics.csv/json)."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                     help="JSON or TOML file of training options (CLI options override it)."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any training option, e.g. --set lr=1e-3 --set udc_prob=0.5 (repeatable)."),
        click.option("--epochs", type=int, default=None, help="Epochs (paper: 100)."),
        click.option("--batch-size", type=int, default=None, help="Global batch size (paper: 64)."),
        click.option("--lr", type=float, default=None, help="Adam learning rate (paper: 3.5e-4)."),
        click.option("--seed", type=int, default=None, help="Seed of data order, augmentation and noise."),
        click.option("--device", default=None, help="auto | cpu | cuda."),
        click.option("--resume", is_flag=True, help="Continue OUT/last.pt (from the step it was saved at)."),
        click.option("--no-cache", is_flag=True, help="Do not cache frozen CLIP features (re-run the tower every step)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _make_config(stage: int, kw: dict) -> TrainConfig:
    cfg = TrainConfig.load(kw["config_file"]) if kw.get("config_file") else TrainConfig()
    cfg.stage = stage
    for key in ("data", "data_format", "model", "out", "epochs", "batch_size", "lr", "seed", "device",
                "stage1", "variant", "steps", "clip"):
        if kw.get(key) is not None:
            setattr(cfg, key, kw[key])
    if kw.get("no_cache"):
        cfg.feature_cache = False
    if kw.get("overrides"):
        cfg = cfg.override(list(kw["overrides"]))
    if cfg.out == TrainConfig.out:
        cfg.out = f"runs/lrdif-stage{stage}"
    return cfg


def _run(cfg: TrainConfig, resume: bool, quiet: bool) -> dict:
    from .trainer import Trainer

    try:
        trainer = Trainer(cfg, resume=resume, progress=not quiet)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    result = trainer.fit()
    if trainer.rank == 0:
        h = result["history"][-1] if result["history"] else {}
        click.echo(format_table(
            ["stage", "model", "variant", "T", "epochs", "train acc %", "best val acc %", "checkpoint"],
            [[cfg.stage, trainer.mcfg.name, cfg.variant if cfg.stage == 2 else "-", trainer.mcfg.diffusion.steps,
              len(result["history"]), f"{100 * h.get('train_acc', float('nan')):.1f}",
              f"{100 * result['best_val_accuracy']:.1f}", result["best"]]]))
    return result


@click.group(context_settings=CTX)
def main() -> None:
    """Train LRDif: `stage1` (labels in), then `stage2` (label-free diffusion), or the paper's `ablations`.

    Runs on CUDA when present, else CPU; under `torchrun --nproc_per_node N udc-train ...` it trains
    with DDP (gloo on CPU, NCCL on GPU) and the same global batch.
    """


@main.command()
@_common
@click.option("--clip", type=click.Path(exists=True), help="CLIP checkpoint (HF directory or OpenAI state dict).")
def stage1(**kw):
    """Stage 1: Z = FPEN_S1(E_L(y), E_I(x)) guides UDCformer; cross-entropy (eq. 13)."""
    _run(_make_config(1, kw), kw["resume"], kw["quiet"])


@main.command()
@_common
@click.option("--stage1", required=True, type=click.Path(exists=True, dir_okay=False), help="The stage-1 checkpoint (best.pt).")
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help="Ablation (paper Table 5): V1 no diffusion, V2 L_ce only, V3 noise in the reverse steps, V4 full (default).")
@click.option("--steps", type=int, default=None, help="Diffusion steps T (default: the model's, 4).")
def stage2(**kw):
    """Stage 2: FPEN_S2 + denoiser (whole T-step chain) + UDCformer, L_ce + L_kl (eq. 18); no label at inference."""
    _run(_make_config(2, kw), kw["resume"], kw["quiet"])


@main.command()
@_common
@click.option("--stage1", required=True, type=click.Path(exists=True, dir_okay=False), help="The stage-1 checkpoint.")
@click.option("--steps-list", default="1,2,4,8,16", show_default=True, help="T values of the iteration study (Fig. 6).")
def ablations(**kw):
    """Table 5 (V1-V4 at T=4) and the iteration study (V4 at each T), one stage-2 run each, one table."""
    base = _make_config(2, kw)
    root = Path(kw["out"] or "runs/ablations")
    default_t = _stage1_steps(base.stage1)
    sweep = [int(t) for t in kw["steps_list"].split(",") if int(t) != default_t]
    results = []
    for variant, steps in [(v, default_t) for v in VARIANTS] + [("V4", t) for t in sweep]:
        cfg = TrainConfig.from_dict({**base.to_dict(), "variant": variant, "steps": steps,
                                     "out": str(root / f"{variant}-T{steps}")})
        results.append((variant, steps, _run(cfg, kw["resume"], kw["quiet"])["best_val_accuracy"]))
    setting = {"V1": "no diffusion", "V2": "L_ce only", "V3": "L_total, noisy reverse", "V4": "L_total"}
    rows = [[v, t, setting[v], f"{100 * a:.1f}"] for v, t, a in sorted(results, key=lambda r: (r[0], r[1]))]
    click.echo(format_table(["variant", "T", "setting", "best val acc %"], rows,
                            title="LRDif stage-2 ablations (paper Table 5) and iteration study (Fig. 6)"))
    (root / "ablations.json").write_text(json.dumps([{"variant": v, "T": t, "val_acc": a} for v, t, a in results], indent=2))


def _stage1_steps(path: str) -> int:
    from udc.sdk.checkpoint import read_checkpoint

    return int(read_checkpoint(path)["config"]["diffusion"]["steps"])


@click.command(context_settings=CTX)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True, help="Dataset root (any format the loaders read).")
@click.option("--format", "data_format", default="auto", show_default=True)
@click.option("--split", default="test", show_default=True, help="Split to evaluate (train | val | test).")
@click.option("--stage", type=click.IntRange(1, 2), default=2, show_default=True,
              help="1: with the true labels (the stage-1 upper bound); 2: label-free inference.")
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False), help="Write the confusion matrix PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--seed", default=0, show_default=True, help="Seed of the evaluation noise (stage 2).")
def eval_main(checkpoint, data, data_format, split, stage, confusion_png, as_json, seed):
    """Accuracy, UAR and the per-class table of CHECKPOINT on a dataset split."""
    import torch

    from udc.sdk.checkpoint import CheckpointError, load_checkpoint

    from .data import prepare_crops
    from .datasets import DatasetError, open_dataset
    from .datasets.landmark_cache import ensure_landmarks
    from .metrics import save_confusion_png
    from .trainer import evaluate_crops

    try:
        model = load_checkpoint(checkpoint)
        index = open_dataset(data, data_format)
    except (CheckpointError, DatasetError) as e:
        raise click.ClickException(str(e)) from None
    records = index.split(split)
    if not records:
        raise click.ClickException(f"{data} has no '{split}' split (splits: {sorted({r.split for r in index.records})})")
    crops = prepare_crops(records, ensure_landmarks(index, progress=not as_json), model.cfg.image_size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    m = evaluate_crops(model.to(device), crops, stage, seed, device)
    if confusion_png:
        save_confusion_png(m, confusion_png, f"{Path(checkpoint).name} on {index.name}/{split}, stage {stage}: "
                                             f"acc {100 * m.accuracy:.1f}%, UAR {100 * m.uar:.1f}%")
    if as_json:
        click.echo(json.dumps({"checkpoint": checkpoint, "data": data, "split": split, "stage": stage,
                               "skipped_no_face": crops.skipped, **m.to_dict()}, indent=2))
        return
    click.echo(format_table(["class", "n", "recall %", "precision %"], m.per_class_rows(),
                            title=f"{index.name}/{split}, stage {stage} ({'with labels' if stage == 1 else 'label-free'})"))
    click.echo()
    click.echo(format_table(["n", "accuracy (WAR) %", "UAR %", "no face"],
                            [[m.n, f"{100 * m.accuracy:.2f}", f"{100 * m.uar:.2f}", crops.skipped]]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

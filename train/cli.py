"""``udc-train`` (stage1 | stage2 | ablations | ddamfn) and ``udc-eval`` (images or ``--video`` clips)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from udc.sdk.console.table import format_table

from .config import FALLBACK, VARIANTS, TrainConfig, recipe_defaults

CTX = {"help_option_names": ["-h", "--help"]}


def _common(f):
    opts = [
        click.option("--data", help="Dataset root: RAF-DB, FERPlus, KDEF, AffectNet or folder-per-class (auto-detected)."),
        click.option("--format", "data_format", default=None, help="Force the dataset format instead of detecting it."),
        click.option("--model", default=None,
                     help="Model config. LRDif: tiny | mobile | paper | fer (48 px real faces such as FER2013) for "
                          "stage 1 (stage 2 takes the stage-1 one); ddamfn: tiny (32 px) | paper (112 px, 4.1 M "
                          "params). Default tiny. The other options start from the recipe: DDAMFN's official one "
                          "for ddamfn, the fer recipe for fer, else the LRDif paper's."),
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
        click.option("--ial", is_flag=True,
                     help="Add the intensity-aware loss (seed 002): L = L_CE + 0.1 * L_IA (weight: --ial-weight)."),
        click.option("--ial-weight", type=float, default=None, help="lambda of the IAL term (implies --ial; default 0.1)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _lrdif(f):
    """Options only LRDif's verbs have."""
    opts = [
        click.option("--no-cache", is_flag=True, help="Do not cache frozen CLIP features (re-run the tower every step)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _recipe_model(stage: int, kw: dict, file_opts: dict) -> str:
    """The model name that picks the recipe: stage 2 takes its stage-1 checkpoint's model."""
    stage1 = kw.get("stage1") or file_opts.get("stage1")
    if stage == 2 and stage1:
        from udc.sdk.models.checkpoint import read_checkpoint

        try:
            return str(read_checkpoint(stage1)["config"].get("name", ""))
        except Exception:  # noqa: BLE001 - an unreadable stage-1 checkpoint is reported by the trainer
            return ""
    return kw.get("model") or file_opts.get("model") or TrainConfig.model


def _make_config(stage: int, kw: dict, family: str = "lrdif") -> TrainConfig:
    """Options, lowest precedence first: the recipe's defaults (``recipe_defaults``: DDAMFN's official recipe,
    LRDif ``fer``'s, or the paper's), the ``--config`` file, the CLI options, ``--set``."""
    try:
        file_opts = TrainConfig.read_file(kw["config_file"]) if kw.get("config_file") else {}
        recipe, defaults = recipe_defaults(family, _recipe_model(stage, kw, file_opts), stage)
        cfg = TrainConfig.from_dict({**defaults, **file_opts, "recipe": file_opts.get("recipe", recipe)})
    except (ValueError, OSError) as e:
        raise click.ClickException(f"--config {kw['config_file']}: {e}") from None
    cfg.family = family
    cfg.stage = stage
    for key in ("data", "data_format", "model", "out", "epochs", "batch_size", "lr", "seed", "device",
                "stage1", "variant", "steps", "clip", "label_dropout", "heads", "att_weight", "att_form", "gca_reduction"):
        if kw.get(key) is not None:
            setattr(cfg, key, kw[key])
    if kw.get("gca_stages") is not None:
        try:
            cfg.gca_stages = tuple(int(v) for v in kw["gca_stages"].split(",") if v.strip())
        except ValueError:
            raise click.ClickException(f"--gca-stages {kw['gca_stages']!r}: expected stage numbers like 1,2") from None
    if kw.get("ial_weight") is not None:
        cfg.ial_weight = kw["ial_weight"]
    elif kw.get("ial"):
        cfg.ial_weight = 0.1
    if kw.get("no_cache"):
        cfg.feature_cache = False
    if kw.get("overrides"):
        try:
            cfg = cfg.override(list(kw["overrides"]))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
    if cfg.out == TrainConfig.out:
        cfg.out = f"runs/ddamfn-{cfg.model}" if family == "ddamfn" else f"runs/lrdif-stage{stage}"
    return cfg


def _run(cfg: TrainConfig, resume: bool, quiet: bool, crops_memo: dict | None = None) -> dict:
    from .trainer import Trainer

    try:
        trainer = Trainer(cfg, resume=resume, progress=not quiet, crops_memo=crops_memo)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    result = trainer.fit()
    if trainer.rank == 0 and cfg.family == "ddamfn":
        h = result["history"][-1] if result["history"] else {}
        m = trainer.mcfg
        click.echo(format_table(
            ["family", "label", "model", "px", "heads", "GCA stages", "IAL lambda", "epochs", "train acc %",
             "best val acc %", "checkpoint"],
            [["ddamfn", trainer.model_label, m.name, m.image_size, m.num_heads, ",".join(map(str, m.gca_stages)) or "-",
              f"{cfg.ial_weight:g}" if cfg.ial_weight else "off", len(result["history"]),
              f"{100 * h.get('train_acc', float('nan')):.1f}", f"{100 * result['best_val_accuracy']:.1f}",
              result["best"]]]))
    elif trainer.rank == 0:
        h = result["history"][-1] if result["history"] else {}
        click.echo(format_table(
            ["label", "stage", "model", "variant", "T", "epochs", "train acc %", "best val acc %", "checkpoint"],
            [[trainer.model_label, cfg.stage, trainer.mcfg.name, cfg.variant if cfg.stage == 2 else "-", trainer.mcfg.diffusion.steps,
              len(result["history"]), f"{100 * h.get('train_acc', float('nan')):.1f}",
              f"{100 * result['best_val_accuracy']:.1f}", result["best"]]]))
    return result


@click.group(context_settings=CTX)
def main() -> None:
    """Train LRDif: `stage1` (labels in), then `stage2` (label-free diffusion), or the paper's `ablations`;
    or the lightweight DDAMFN baseline: `ddamfn` (one stage). `--ial` adds the intensity-aware loss to any verb.

    Runs on CUDA when present, else CPU; under `torchrun --nproc_per_node N udc-train ...` it trains
    with DDP (gloo on CPU, NCCL on GPU) and the same global batch.
    """


@main.command()
@_common
@_lrdif
@click.option("--clip", type=click.Path(exists=True), help="CLIP checkpoint (HF directory or OpenAI state dict).")
@click.option("--label-dropout", type=click.FloatRange(0.0, 1.0, max_open=True), default=None,
              help="Probability of hiding a sample's label from FPEN-S1 (default: 0.5 without --clip, 0 with it: "
                   "the paper). Without pretrained CLIP, 0 leaves stage 2 at chance (see the README).")
def stage1(**kw):
    """Stage 1: Z = FPEN_S1(E_L(y), E_I(x)) guides UDCformer; cross-entropy (eq. 13)."""
    _run(_make_config(1, kw), kw["resume"], kw["quiet"])


@main.command()
@_common
@_lrdif
@click.option("--stage1", required=True, type=click.Path(exists=True, dir_okay=False), help="The stage-1 checkpoint (best.pt).")
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help="Paper Table 5 row: V1 no diffusion, V2 L_ce only, V3 L_total with noise inserted in the reverse "
                   "steps (the paper's \"Ours\", default), V4 L_total with a deterministic reverse chain.")
@click.option("--steps", type=int, default=None, help="Diffusion steps T (default: the model's, 4).")
def stage2(**kw):
    """Stage 2: FPEN_S2 + denoiser (whole T-step chain) + UDCformer, L_ce + L_kl (eq. 18); no label at inference."""
    _run(_make_config(2, kw), kw["resume"], kw["quiet"])


@main.command()
@_common
@_lrdif
@click.option("--stage1", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Stage-1 checkpoint with the paper's DIL form (dil_form=paper) shared by every seed; default: one "
                   "stage 1 trained per seed.")
@click.option("--stage1-post", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Stage-1 checkpoint with the old DIL form (dil_form=post) for the old-DIL row; default: one "
                   "trained per seed.")
@click.option("--steps-list", default="1,2,4,8,16,32", show_default=True,
              help="T values of the iteration study (paper Fig. 6), each trained as the paper's variant V3.")
@click.option("--seeds", default=None, metavar="LIST",
              help="Run every row once per seed, e.g. 0,1: the table shows each seed, the mean and the spread "
                   "(max - min). Default: --seed alone.")
@click.option("--old-dil/--no-old-dil", default=True, show_default=True,
              help="One more row: V3 with the old DIL form (after the DT-network, per-window query).")
@click.option("--stage2-steps", type=click.IntRange(1), default=None, metavar="N",
              help="Cap every stage-2 row at N steps per epoch (stage 1 keeps max_steps_per_epoch): a short study "
                   "that still gives both stage-1 forms the same training.")
@click.option("--table-only", is_flag=True,
              help="Train nothing: tabulate the runs under OUT that finished with these options ('-' for the others).")
@click.option("--eps/--no-eps", "eps_row", default=True, show_default=True,
              help="One more row: V3 with the other diffusion parameterisation (eps, eq. 16, beside the x0 default).")
def ablations(**kw):
    """Paper Table 5 (LRDif_S1 and LRDif_S2-V1..V4, V3 = "Ours"), the old DIL form, the eps parameterisation and
    the iteration study of Fig. 6 (V3 at each T): one stage-2 run per row and seed, one table."""
    from udc.sdk.models.checkpoint import read_checkpoint

    from .config import PAPER_VARIANT, VARIANT_SETTINGS

    root = Path(kw["out"] or "runs/ablations")
    try:
        seeds = [int(v) for v in kw["seeds"].split(",") if v.strip()] if kw["seeds"] else [kw["seed"] or 0]
        sweep = [int(t) for t in kw["steps_list"].split(",") if t.strip()]
    except ValueError:
        raise click.ClickException("--seeds and --steps-list take comma-separated integers") from None
    results = []  # (row, variant, T, parameterization, dil_form, seed, best val accuracy)
    memo: dict = {}  # aligned crops, prepared once for all the runs of this process

    def run(cfg: TrainConfig) -> float | None:
        done = _finished_accuracy(cfg) if kw["resume"] or kw["table_only"] else None
        if done is not None:
            click.echo(f"{cfg.out}: finished before ({cfg.epochs} epochs, best val {100 * done:.2f} %), not rerun")
            return done
        if kw["table_only"]:
            click.echo(f"{cfg.out}: not finished with these options (--table-only: shown as '-')")
            return None
        return _run(cfg, kw["resume"], kw["quiet"], memo)["best_val_accuracy"]

    def stage1(seed: int, form: str, given: str | None) -> str:
        if given:
            return given
        cfg = _make_config(1, {**kw, "stage1": None, "seed": seed})
        cfg.dil_form, cfg.out = form, str(root / f"seed{seed}" / f"stage1-{form}")
        acc = run(cfg)
        results.append(("LRDif_S1 (ground-truth label in)", "-", "-", "-", form, seed, acc))
        return str(Path(cfg.out) / "best.pt")

    for seed in seeds:
        s1 = {"paper": stage1(seed, "paper", kw["stage1"])}
        if kw["old_dil"]:
            s1["post"] = stage1(seed, "post", kw["stage1_post"])
        if kw["table_only"] and not Path(s1["paper"]).is_file():
            raise click.ClickException(f"--table-only: no stage-1 checkpoint {s1['paper']} (seed {seed}): nothing to tabulate")
        for form, path in s1.items():  # a given checkpoint must have the form its rows are labelled with
            if kw["table_only"] and not Path(path).is_file():
                continue
            has = read_checkpoint(path)["config"]["udcformer"].get("dil_form", "post")
            if has != form:
                opt = "--stage1" if form == "paper" else "--stage1-post"
                raise click.ClickException(f"{opt} {path} has the {has!r} DIL form, its rows need {form!r} (train "
                                           f"it with `udc-train stage1 --set dil_form={form}`)")
        diff = read_checkpoint(s1["paper"])["config"]["diffusion"]
        t0, p0 = int(diff["steps"]), diff.get("parameterization", "x0")
        p_other = "eps" if p0 == "x0" else "x0"
        rows = [(f"LRDif_S2-{v}" + (" (Ours)" if v == PAPER_VARIANT else ""), v, t0, p0, "paper") for v in VARIANTS]
        if kw["old_dil"]:
            rows.append(("LRDif_S2-V3 (Ours), old DIL", PAPER_VARIANT, t0, p0, "post"))
        if kw["eps_row"]:
            rows.append((f"LRDif_S2-V3 (Ours), {p_other}", PAPER_VARIANT, t0, p_other, "paper"))
        rows += [("LRDif_S2-V3 (Ours), Fig. 6", PAPER_VARIANT, t, p0, "paper") for t in sweep if t != t0]
        # run order: the paper's "Ours" and its old-DIL twin first (the comparison the DIL form is settled by, done
        # first when a short budget stops the study), then the rest; the table keeps the order above
        first = [r for r in rows if r[1] == PAPER_VARIANT and r[2] == t0 and r[3] == p0]
        done_rows = len(results)
        for row, variant, steps, param, form in first + [r for r in rows if r not in first]:
            base = _make_config(2, {**kw, "stage1": s1[form], "seed": seed})
            cfg = TrainConfig.from_dict({**base.to_dict(), "variant": variant, "steps": steps, "parameterization": param,
                                         "out": str(root / f"seed{seed}" / f"{variant}-T{steps}-{param}-{form}")})
            if kw["stage2_steps"]:
                cfg.max_steps_per_epoch = kw["stage2_steps"]
            results.append((row, variant, steps, param, form, seed, run(cfg)))
        results[done_rows:] = sorted(results[done_rows:], key=lambda r: rows.index(r[:5]))
    click.echo(format_table(*ablation_table(results, seeds, VARIANT_SETTINGS),
                            title="LRDif ablations (paper Table 5), DIL form, parameterisation and iteration study "
                                  "(Fig. 6): best val accuracy"))
    (root / "ablations.json").write_text(json.dumps(
        [{"row": r, "variant": v, "T": t, "parameterization": p, "dil_form": f, "seed": s, "val_acc": a}
         for r, v, t, p, f, s, a in results], indent=2))


def _finished_accuracy(cfg: TrainConfig) -> float | None:
    """The best validation accuracy of a run OUT already finished with these very options (``train_config.json``
    equal to ``cfg``, ``last.pt`` at the last epoch), else None: ``ablations --resume`` then reads it instead of
    rebuilding the trainer (which re-aligns every face). Anything missing, different or unreadable: None (rerun)."""
    from udc.sdk.models.checkpoint import read_checkpoint

    out = Path(cfg.out)
    try:
        saved = json.loads((out / "train_config.json").read_text())
        if saved != json.loads(json.dumps(cfg.to_dict())) or not (out / "best.pt").is_file():
            return None
        st = read_checkpoint(out / "last.pt")["extra"]["train_state"]
        best = float(st["best"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return best if st["epoch"] >= cfg.epochs and 0.0 <= best <= 1.0 else None  # NaN and -1 (never scored): rerun


def ablation_table(results: list[tuple], seeds: list[int], settings: dict[str, str]) -> tuple[list[str], list[list]]:
    """``(header, rows)``: one row per (row name, variant, T, parameterisation, DIL form), its accuracy per seed,
    the mean and the spread (max - min, percentage points) over the seeds, in the order the rows were run. An
    accuracy that is not a number in [0, 1] (NaN, the trainer's -1 "never scored") raises ValueError; a row that
    lacks one of ``seeds`` (accuracy None: not run) shows "-" for it and for its mean and spread (no mean over fewer
    seeds than the header)."""
    if not seeds or not results:
        raise ValueError("no seeds or no results to tabulate")
    cells: dict[tuple, dict[int, float]] = {}
    for row, variant, t, param, form, seed, acc in results:
        if acc is None:  # not run (ablations --table-only): the row is shown, its cells "-"
            cells.setdefault((row, variant, t, param, form), {})
            continue
        if not 0.0 <= acc <= 1.0:  # False for NaN too
            raise ValueError(f"{row} (seed {seed}): accuracy {acc!r} is not in [0, 1]")
        cells.setdefault((row, variant, t, param, form), {})[seed] = acc
    header = ["row", "setting", "DIL", "T", "Z param"] + [f"seed {s} %" for s in seeds] + ["mean %", "spread pp"]
    table = []
    for (row, variant, t, param, form), accs in cells.items():
        vals = [accs[s] for s in seeds if s in accs]
        setting = settings.get(variant, "labels in (the upper bound)")
        summary = [f"{100 * sum(vals) / len(vals):.1f}", f"{100 * (max(vals) - min(vals)):.1f}"] \
            if len(vals) == len(seeds) else ["-", "-"]
        table.append([row, setting, form, t, param] + [f"{100 * accs[s]:.1f}" if s in accs else "-" for s in seeds]
                     + summary)
    return header, table


@main.command()
@_common
@click.option("--heads", type=click.IntRange(0), default=None, help="DDA attention heads (paper: 2; 0 = plain MFN).")
@click.option("--att-weight", type=float, default=None, help="lambda_a of the attention loss (paper: 0.1).")
@click.option("--att-form", type=click.Choice(["paper", "official"]), default=None,
              help="Attention loss: the seed's formula (paper, default) or the public code's (official, 2x per pair).")
@click.option("--gca-stages", default=None, metavar="LIST",
              help="Put GCA blocks (seed 002) on these MFN stages, e.g. 1,2 (paper stages 0-2; tiny needs "
                   "--gca-reduction <= its widths, e.g. --gca-stages 1,2 --gca-reduction 4).")
@click.option("--gca-reduction", type=click.IntRange(1), default=None, help="GCA bottleneck reduction r (default 16).")
def ddamfn(**kw):
    """DDAMFN baseline (seed 003): MFN + dual-direction attention heads; L = CE + 0.1 L_att (+ 0.1 L_IA with --ial).

    Same data, aligned crops (at the config's size: 32 tiny, 112 paper), augmentation, on-the-fly UDC
    (--set udc_prob=0.5), optimiser/schedule, checkpoints (family "ddamfn"), --resume, metrics and DDP
    as the LRDif stages. Evaluate with `udc-eval OUT/best.pt --data DIR`.
    """
    _run(_make_config(1, kw, family="ddamfn"), kw["resume"], kw["quiet"])


@click.command(context_settings=CTX)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", required=True,
              help="Dataset root: any image format the loaders read, or with --video ROOT/<split>/<class>/<clip>/.")
@click.option("--format", "data_format", default="auto", show_default=True, help="Image dataset format (not --video).")
@click.option("--split", default="test", show_default=True, help="Split to evaluate (train | val | test).")
@click.option("--stage", type=click.IntRange(1, 2), default=2, show_default=True,
              help="LRDif only. 1: with the true labels (the stage-1 upper bound); 2: label-free inference.")
@click.option("--video", is_flag=True,
              help="Clip mode: one prediction per clip (folder of frames or video file) from U x V sampled frames.")
@click.option("--preset", type=click.Choice(["ferv39k", "dfew"]), default=None,
              help="Clip sampling of seed 002: ferv39k = 8 segments x 2 frames (default), dfew = 16 x 1.")
@click.option("--segments", type=click.IntRange(1), default=None, help="U: segments per clip (--video).")
@click.option("--frames-per-segment", type=click.IntRange(1), default=None, help="V: frames per segment (--video).")
@click.option("--aggregate", type=click.Choice(["mean_prob", "mean_logit"]), default="mean_prob", show_default=True,
              help="How the frames' scores make the clip's (--video).")
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False), help="Write the confusion matrix PNG here.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--seed", default=0, show_default=True, help="Seed of the evaluation noise (LRDif stage 2).")
@click.option("--landmark-fallback", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="Faces MediaPipe misses: auto = upscaled retry, then canonical landmarks, for face-crop datasets "
                   "(e.g. FER2013's 48x48); yes = for every image; no = not scored. A face still without landmarks "
                   "counts as wrong (in the denominator).")
def eval_main(checkpoint, data, data_format, split, stage, video, preset, segments, frames_per_segment, aggregate,
              confusion_png, as_json, seed, landmark_fallback):
    """WAR (= accuracy), UAR and the per-class table of CHECKPOINT (LRDif or DDAMFN) on a dataset split.

    The model family is read from the checkpoint. With --video, every clip is scored once: the
    eval-mode U x V frames of seed 002 (udc.sdk.faces.video) are aligned, scored, and their class
    probabilities averaged.
    """
    import torch

    from udc.sdk.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
    from udc.sdk.models.registry import model_family
    from udc.sdk.faces.video import CLIP_PRESETS

    from .data import prepare_crops
    from .datasets import DatasetError, open_dataset
    from .datasets.landmark_cache import ensure_landmarks
    from .metrics import save_confusion_png
    from .trainer import crop_logits, evaluate_crops, model_label

    try:
        model = load_checkpoint(checkpoint)
        variant = read_checkpoint(checkpoint)["extra"].get("variant")  # the Table 5 row it was trained as
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    family = model_family(model)
    # stage 2 is scored as the row was trained: V1 without the diffusion, V3 with noise in the reverse steps
    how = dict(use_diffusion=variant != "V1", noisy_reverse=variant == "V3") if stage == 2 and family == "lrdif" else {}
    stage_txt = "-" if family == "ddamfn" else str(stage)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    info: dict = {}
    if video:
        from .video_eval import clip_metrics, index_clips, prepare_clip_frames

        sampling = CLIP_PRESETS[preset or "ferv39k"]
        u = segments or sampling.segments
        v = frames_per_segment or sampling.frames_per_segment
        try:
            clips = index_clips(data, split)
        except DatasetError as e:
            raise click.ClickException(str(e)) from None
        frames = prepare_clip_frames(data, clips, model.cfg.image_size, u, v, progress=not as_json)
        if not frames.clips:
            raise click.ClickException(f"{data}/{split}: no face found in any sampled frame of {len(clips)} clips")
        m = clip_metrics(crop_logits(model, frames.crops, stage, seed, device, **how), frames, model.cfg.labels,
                         aggregate)
        name, skipped = Path(data).name, frames.skipped_clips
        info = {"clips": len(clips), "segments": u, "frames_per_segment": v, "aggregate": aggregate,
                "frames_scored": len(frames.crops), "frames_without_face": frames.dropped_frames}
        unit = "clips"
    else:
        try:
            index = open_dataset(data, data_format)
        except DatasetError as e:
            raise click.ClickException(str(e)) from None
        records = index.split(split)
        if not records:
            raise click.ClickException(f"{data} has no '{split}' split (splits: {sorted({r.split for r in index.records})})")
        lms = ensure_landmarks(index, progress=not as_json, fallback=FALLBACK[landmark_fallback])
        crops = prepare_crops(records, lms, model.cfg.image_size)
        m = evaluate_crops(model, crops, stage, seed, device, **how)
        name, skipped, unit = index.name, crops.skipped, "images"
        if hasattr(lms, "sources"):
            keys = [r.key for r in records]
            info["landmark_paths"] = {p: sum(lms.sources.get(k) == p for k in keys) for p in lms.counts()}
    label = model_label(model)  # "LRDif without pretrained CLIP" unless the checkpoint's CLIP weights were pretrained
    what = f"{label}, {model.cfg.name}" + (f", stage {stage}" if family == "lrdif" else "")
    if confusion_png:
        save_confusion_png(m, confusion_png, f"{Path(checkpoint).name} ({what}) on {name}/{split}: "
                                             f"WAR {100 * m.war:.1f}%, UAR {100 * m.uar:.1f}%")
    if as_json:
        click.echo(json.dumps({"checkpoint": checkpoint, "family": family, "model": model.cfg.name,
                               "model_label": label, "clip_pretrained": getattr(model, "clip_source", None) is not None,
                               "data": data,
                               "split": split, "stage": None if family == "ddamfn" else stage, "unit": unit,
                               "war": m.war, "skipped_no_face": skipped, **info, **m.to_dict()}, indent=2))
        return
    mode = "label-free" if family == "ddamfn" or stage == 2 else "with labels"
    title = f"{name}/{split}, {what} ({mode})" + (f", clips: {info['segments']}x{info['frames_per_segment']} frames, "
                                                  f"{aggregate}" if video else "")
    click.echo(format_table(["class", "n", "recall %", "precision %"], m.per_class_rows(), title=title))
    click.echo()
    click.echo(format_table(["family", "model", "config", "stage", "unit", "n", "WAR (accuracy) %", "UAR %", "no face (counted wrong)"],
                            [[family, label, model.cfg.name, stage_txt, unit, m.n, f"{100 * m.war:.2f}",
                              f"{100 * m.uar:.2f}", skipped]]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

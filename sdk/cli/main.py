"""``udc``: the SDK's command line. One verb per job; every verb prints a summary table.

    udc info  --config paper     parameters and MACs per component
    udc check --config tiny      build the reference model, run both stages, torch.export the four
                                 on-device components: the end-to-end smoke test of this install
    udc doctor                   the toolchain against its pins, which runtimes run here, what is missing
                                 for Core ML / Android / iOS / GPU: one table (exit 1 if a required part fails)
    udc --version
"""
from __future__ import annotations

import json
import time
import warnings

import click

from ..models.config import CONFIGS, get_config

CONFIG_OPTION = click.option("--config", "config_name", type=click.Choice(list(CONFIGS)), default="tiny",
                             show_default=True, help="Model size: tiny (tests), mobile (on-device), paper (LRDif paper).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=None, package_name="udc", prog_name="udc", message="%(prog)s %(version)s")
def main() -> None:
    """udc: the on-device SDK for LRDif, facial-expression recognition behind under-display cameras."""


def _info(config_name: str, as_json: bool) -> None:
    from ..models.profiling import profile_config
    from ..console.table import format_table, human

    cfg = get_config(config_name)
    rows = profile_config(cfg)
    if as_json:
        click.echo(json.dumps({"config": cfg.name, "components": [r.__dict__ for r in rows]}, indent=2))
        return
    table = format_table(
        ["component", "params", "MACs", "on device", "note"],
        [[r.component, f"{r.params:,} ({human(r.params)})", human(r.macs), "yes" if r.on_device else "-", r.note]
         for r in rows],
        title=f"LRDif config '{cfg.name}': input {cfg.image_size}x{cfg.image_size}, EPR C={cfg.fpen.epr_dim}, "
              f"T={cfg.diffusion.steps}, batch 1",
    )
    click.echo(table)


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(config_name: str, as_json: bool) -> None:
    """Parameter count and MACs of every component for a config (built on the meta device: instant)."""
    _info(config_name, as_json)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info_main(config_name: str, as_json: bool) -> None:
    """Parameter count and MACs of every LRDif component (same as `udc info`)."""
    _info(config_name, as_json)


@main.command()
@CONFIG_OPTION
@click.option("--seed", default=0, show_default=True, help="Seed of the random weights and example inputs.")
@click.option("--export/--no-export", "do_export", default=True, show_default=True,
              help="Also torch.export each on-device component.")
def check(config_name: str, seed: int, do_export: bool) -> None:
    """Run the PyTorch reference end to end on a synthetic input and torch.export its components.

    The weights are random (no checkpoint is read): this checks the install and the graph, not
    accuracy. Exit code 1 if any step fails.
    """
    import torch

    from ..models.components import example_inputs, on_device_components
    from ..models.lrdif.model import build_model
    from ..models.profiling import count_params
    from ..console.table import format_table

    torch.manual_seed(seed)
    cfg = get_config(config_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, clip=None).eval()
    click.echo(f"config {cfg.name}: random init (no CLIP checkpoint), label encoder: {model.label_encoder}")
    ex = example_inputs(model, batch=2, seed=seed)
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        t0 = time.perf_counter()
        logits1, z1 = model.forward_stage1(ex["image"], ex["landmarks"], labels)
        t1 = time.perf_counter()
        logits2, z2 = model.forward_stage2(ex["image"], ex["landmarks"], ex["noise"])
        t2 = time.perf_counter()
        again = model(ex["image"], ex["landmarks"], ex["noise"])
    deterministic = torch.equal(again, logits2)
    click.echo(f"stage 1 (with labels): logits {tuple(logits1.shape)}, Z {tuple(z1.shape)}, {1e3 * (t1 - t0):.1f} ms")
    click.echo(f"stage 2 (label-free, T={cfg.diffusion.steps}): logits {tuple(logits2.shape)}, Z' {tuple(z2.shape)}, "
               f"{1e3 * (t2 - t1):.1f} ms; same noise -> same output: {deterministic}")

    rows, ok = [], deterministic
    for comp in on_device_components(model):
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in comp.inputs.items())
        status, secs = "skipped", 0.0
        if do_export:
            t0 = time.perf_counter()
            try:
                torch.export.export(comp.module, tuple(comp.inputs.values()), strict=False)
                status = "ok"
            except Exception as e:  # noqa: BLE001 - reported in the table, exit code 1
                status, ok = f"FAILED: {type(e).__name__}", False
            secs = time.perf_counter() - t0
        rows.append([comp.name, f"{count_params(comp.module):,}", shapes, status, f"{secs:.2f}"])
    click.echo(format_table(["component", "params", "inputs", "torch.export", "s"], rows))
    if not ok:
        raise SystemExit(1)


@main.command()
@click.option("--no-devices", is_flag=True, help="Skip the phone checks (adb devices, xcrun).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--verbose", is_flag=True, help="Also show third-party log lines (coremltools, torchao, ExecuTorch).")
def doctor(no_devices: bool, as_json: bool, verbose: bool) -> None:
    """What this install can do here: the pinned packages against the versions installed, the torch build
    (CPU or CUDA) and GPU, a tiny program run on every runtime (PyTorch, ExecuTorch XNNPACK, ONNX Runtime,
    Core ML on macOS), MediaPipe's face detector, and what is missing for Android, iOS and LiteRT.

    Exit code 1 when a required part is missing or broken; optional parts (a phone, macOS, a GPU) only
    say what they would take.
    """
    from dataclasses import asdict

    from ..console import quiet
    from .doctor import run_checks, summary

    quiet.setup(verbose)
    rows = run_checks(devices=not no_devices, log=None if as_json else lambda m: click.echo(m, err=True))
    text, code = summary(rows)
    if as_json:
        click.echo(json.dumps({"checks": [asdict(r) for r in rows], "exit_code": code}, indent=2))
    else:
        click.echo(text)
    raise SystemExit(code)

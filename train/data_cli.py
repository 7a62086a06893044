"""``udc-data``: make the synthetic dataset, describe any dataset, cache its landmarks."""
from __future__ import annotations

import json
from pathlib import Path

import click

from udc.sdk.labels import LABELS
from udc.sdk.console.table import format_table

CTX = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=CTX)
def main() -> None:
    """Datasets for LRDif: the procedural synthetic faces, and the real formats users download
    (RAF-DB, FERPlus, KDEF, AffectNet-7, folder-per-class), all mapped to one 7-label order."""


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--train", "n_train", default=300, show_default=True, help="Training faces per expression.")
@click.option("--val", "n_val", default=50, show_default=True, help="Validation faces per expression.")
@click.option("--test", "n_test", default=50, show_default=True, help="Test faces per expression.")
@click.option("--size", default=128, show_default=True, help="Image side in pixels.")
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Render processes.")
@click.option("--difficulty", type=click.Choice(["standard", "easy"]), default="standard", show_default=True,
              help="Expression noise: 'standard' (intensity 0.5-1, jitter, dropped components) or 'easy' "
                   "(near full intensity, little jitter; for short CPU demos).")
@click.option("--force", is_flag=True, help="Replace an existing OUT.")
def synthetic(out, n_train, n_val, n_test, size, seed, workers, difficulty, force):
    """Write the procedural synthetic expression faces (with their 68 landmarks) to OUT."""
    from .synthetic.dataset import generate_dataset

    counts = {"train": n_train, "val": n_val, "test": n_test}
    try:
        generate_dataset(out, counts, size=size, seed=seed, overwrite=force, workers=workers, difficulty=difficulty)
    except FileExistsError as e:
        raise click.ClickException(f"{e}; use --force") from None
    click.echo(format_table(["out", "size", "difficulty", *counts, "images"],
                            [[str(out), size, difficulty, *counts.values(), 7 * sum(counts.values())]]))


@main.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "data_format", default="auto", show_default=True)
@click.option("--write-mapping", is_flag=True, help="Also write ROOT/label_mapping.json (mapping, counts, drops).")
def describe(root, data_format, write_mapping):
    """Detect ROOT's format and print its label mapping and counts per split and class."""
    from .datasets import DatasetError, open_dataset

    try:
        index = open_dataset(root, data_format)
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    counts = index.counts()
    click.echo(format_table(["class", *counts], [[lab, *(counts[s][lab] for s in counts)] for lab in LABELS],
                            title=f"{root}: format {index.name}, {len(index.records)} faces"))
    click.echo()
    click.echo(format_table(["dataset label", "canonical"], sorted(index.label_map.items())))
    if index.dropped:
        click.echo()
        click.echo(format_table(["dropped because", "count"], sorted(index.dropped.items())))
    if write_mapping:
        click.echo(f"wrote {index.write_label_mapping(root / 'label_mapping.json')}")


@main.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "data_format", default="auto", show_default=True)
def landmarks(root, data_format):
    """Detect the 68 landmarks of every face once (MediaPipe) and cache them in ROOT/landmarks68.npz."""
    import numpy as np

    from .datasets import DatasetError, open_dataset
    from .datasets.landmark_cache import ensure_landmarks

    try:
        index = open_dataset(root, data_format)
    except DatasetError as e:
        raise click.ClickException(str(e)) from None
    lm = ensure_landmarks(index)
    missing = sum(1 for v in lm.values() if not np.isfinite(v).all())
    click.echo(json.dumps({"faces": len(lm), "no_face": missing, "cache": str(root / "landmarks68.npz")}))

"""``udc-synth``: degrade face datasets the way real under-display-camera phones do."""
from __future__ import annotations

from pathlib import Path

import click

from udc.sdk.console.table import format_table

from .udc_sim.profiles import PROFILES


def _profiles_table() -> str:
    rows = []
    for p in PROFILES.values():
        rows.append([p.name, f"{p.megapixels:g} MP", f"f/{p.f_number}", f"{p.ppi:g}", p.layout,
                     f"{p.open_fraction:.2f}", "/".join(f"{t:.2f}" for t in p.transmittance),
                     ", ".join(p.published)])
    return format_table(["profile", "camera", "aperture", "PPI", "layout", "open", "T (R/G/B)", "published (rest assumed)"],
                        rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.argument("dst", required=False, type=click.Path(path_type=Path))
@click.option("--profile", default="random", show_default=True,
              help=f"Device profile: {', '.join(PROFILES)}, or 'random' (a jittered device per image).")
@click.option("--seed", default=0, show_default=True, help="Run seed; each image's noise derives from it and its path.")
@click.option("--psf", "psf_path", type=click.Path(exists=True, dir_okay=False),
              help="Measured PSF (.npy, [H,W] or [3,H,W]) replacing the computed one (e.g. DISCNet's ZTE PSFs).")
@click.option("--flare/--no-flare", default=True, show_default=True, help="Add highlight flare from the PSF's far tail.")
@click.option("--batch", default=32, show_default=True, help="Images degraded per FFT batch.")
@click.option("--force", is_flag=True, help="Start over: delete DST's previous or unfinished conversion.")
@click.option("--preview", "preview_image", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Write a side-by-side clean/UDC picture of this image for every profile, then exit.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where --preview writes (default: IMAGE_udc_preview.png).")
@click.option("--size", default=224, show_default=True, help="Face crop size for --preview.")
@click.option("--list-profiles", is_flag=True, help="Print the device profiles and exit.")
def main(src, dst, profile, seed, psf_path, flare, batch, force, preview_image, output, size, list_profiles):
    """Convert the dataset tree SRC into its UDC-degraded twin DST.

    Images keep their relative paths (labels, label files and landmarks68.npz are copied), so any
    format the loaders read stays readable. The run is resumable: rerun the same command after an
    interruption. Images are assumed to be aligned face crops (the face spans ~2/3 of the width):
    the PSF is scaled accordingly.
    """
    from .udc_sim.convert import SynthError, convert_tree

    if list_profiles:
        click.echo(_profiles_table())
        return
    if preview_image is not None:
        from udc.sdk.errors import UdcError

        from .udc_sim.preview import make_preview

        out = output or Path(f"{preview_image.stem}_udc_preview.png")
        try:
            path, how = make_preview(preview_image, out, size=size, seed=seed)
        except UdcError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"wrote {path} ({how}; {len(PROFILES)} profiles, crop {size}x{size})")
        return
    if src is None or dst is None:
        raise click.UsageError("give SRC and DST (or --preview IMAGE, or --list-profiles)")
    try:
        m = convert_tree(src, dst, profile, seed=seed, psf_path=psf_path, flare=flare, batch=batch, force=force)
    except SynthError as e:
        raise click.ClickException(str(e)) from None
    c = m["counts"]
    rate = c["images_degraded"] / m["seconds"] if m["seconds"] > 0 else 0.0
    click.echo(format_table(
        ["dst", "profile", "degraded", "already done", "copied", "failed", "s", "img/s"],
        [[str(dst), profile, c["images_degraded"], c["images_already_done"], c["files_copied"], c["failed"],
          m["seconds"], f"{rate:.1f}"]]))
    if c["failed"]:
        click.echo(f"{c['failed']} files could not be read; see 'failed' in {dst / 'udc_synth_manifest.json'}", err=True)

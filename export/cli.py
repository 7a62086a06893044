"""``udc-export``: build an ExecuTorch, Core ML or ONNX bundle from an LRDif or DDAMFN checkpoint.

    udc-export lrdif.pt --target executorch --quant int8 --calib ~/data/rafdb -o face.udc
    udc-export lrdif.pt --target coreml --quant int4-palettize -o face-ios.udc
    udc-export --config tiny --target onnx -o tiny.udc          # fresh random-init model, says so
    udc-export ddamfn.pt --target executorch --quant int8 -o ddamfn.udc   # DDAMFN: family read from the checkpoint
    udc-export --model ddamfn --config paper --target onnx -o ddamfn-paper.udc   # fresh random-init DDAMFN
    udc-export lrdif.pt --target onnx --components fpen_s2 -o x.udc   # a partial bundle (debugging, tests)

Prints the delegation report (ExecuTorch) and a summary table; exit code 1 when the bundle's
parity is below the thresholds of its quant mode (the bundle is still written, the manifest says
what failed), 2 for a usage error, 1 for any other error (one line, nothing left on disk).
"""
from __future__ import annotations

import logging
import os
import sys

import click

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
# torchao registers an Enum as a pytree constant and torch logs a deprecation line for it on import: noise
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

from udc.sdk.models.config import CONFIGS  # noqa: E402
from udc.sdk.models.ddamfn_config import DDAMFN_CONFIGS  # noqa: E402
from udc.sdk.models.registry import FAMILIES  # noqa: E402

from .options import BACKEND_CHOICES, QUANT_CHOICES, TARGETS  # noqa: E402


def _fail_usage(msg: str) -> None:
    raise click.UsageError(msg)


_EPILOG = """\b
Examples:
  udc-export runs/demo/stage2/best.pt --target executorch -o face-android.udc
  udc-export runs/demo/stage2/best.pt --target coreml -o face-ios.udc
  udc-export lrdif.pt --target executorch --quant int8 --calib ~/data/rafdb -o face-int8.udc
  udc-export lrdif.pt --target executorch --quant int8 --calib ~/data/rafdb --int8-top1 0.99 -o face-int8-99.udc
  udc-export v2.pt --target executorch --quant int8 --calib ~/data/rafdb --recipes-from face-int8.udc --jobs 2 -o v2.udc
  udc-export --config tiny --target onnx --fuse -o tiny.udc    (no checkpoint: fresh random init)
  udc-export runs/ddamfn-paper/best.pt --target executorch --quant int8 -o ddamfn-int8.udc
  udc-export --model ddamfn --config tiny --target coreml -o ddamfn-tiny-ios.udc
\b
Prints the delegation report (ExecuTorch) and a summary table. Exit code 0: bundle written and its
parity meets the bundle's thresholds (the quant mode's; int8 top-1 as --int8-top1 raises it); 1: written
but parity below them (see manifest.json 'parity'), or an error (one line, nothing left on disk); 2: a
usage error."""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("--target", required=True, type=click.Choice(TARGETS), help="Bundle format: .pte, .mlpackage or .onnx.")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default=None,
              help="ExecuTorch delegate: xnnpack (Android/host, default), coreml (iOS), openvino (Intel CPUs, int8; "
                   "needs the 'openvino' extra), portable (none).")
@click.option("--quant", type=click.Choice(QUANT_CHOICES), default=None,
              help="fp32 (default; fp16 for Core ML; int8 for OpenVINO), int8 (ExecuTorch/XNNPACK or OpenVINO, ONNX), "
                   "int8-weight / int4-palettize "
                   "(Core ML weight compression).")
@click.option("--calib", type=click.Path(), default=None,
              help="Face dataset for int8 calibration and the parity report (any format udc reads); default: the "
                   "procedural synthetic faces (with a warning, recorded in the manifest).")
@click.option("--calib-n", type=click.IntRange(min=1), default=256, show_default=True, help="Calibration faces (int8).")
@click.option("--eval-n", type=click.IntRange(min=1), default=224, show_default=True,
              help="Held-out faces for the parity report (fewer than 32: the report says it is not conclusive).")
@click.option("--recipes-from", "recipes_from", type=click.Path(file_okay=False), default=None, metavar="BUNDLE",
              help="int8: an earlier int8 bundle of the same model config; each component tries that bundle's recipe "
                   "first and searches only if it misses the thresholds here (a re-export in minutes instead of the "
                   "full search; the manifest records the hint and whether it held).")
@click.option("--int8-top1", "int8_top1", type=float, default=None, metavar="FRACTION",
              help="int8: the end-to-end top-1 agreement with the float model the bundle must reach (default: the "
                   "int8 threshold, 0.97; at most 1). Each chained component gets its share of the allowed flips in "
                   "the recipe search (0.99 over four components: 99.75 % each on the calibration faces), so a "
                   "stricter target keeps more layers float; the bundle's parity check uses it.")
@click.option("--fuse", is_flag=True, help="Also export the four components fused as one 'pipeline' program.")
@click.option("--components", "components", default=None, metavar="NAME,NAME",
              help="Export only these components (LRDif: clip_image, fpen_s2, denoiser, udcformer, pipeline), for debugging "
                   "and tests: the bundle is marked partial and apps refuse it.")
@click.option("--force", is_flag=True, help="Replace an existing udc bundle (never anything else; a warning when a "
                                            "bundle whose parity passed is replaced by one whose parity failed).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Bundle directory to write: NAME.udc")
@click.option("--model", "family", type=click.Choice(FAMILIES), default=None,
              help="With no CHECKPOINT: the model family of the fresh model (default lrdif). A checkpoint carries its "
                   "family (given anyway, it must match).")
@click.option("--config", "config_name", type=click.Choice(sorted(set(CONFIGS) | set(DDAMFN_CONFIGS))), default=None,
              help="With no CHECKPOINT: export a fresh random-init model of this size (lrdif: tiny, mobile, paper; "
                   "ddamfn: tiny, paper).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random init, faces and noise.")
@click.option("--threads", default=2, show_default=True, help="CPU threads for the host runtimes (parity runs).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Export the components side by side in this many worker processes (ExecuTorch, ONNX): an int8 "
                   "export is mostly single-threaded, so up to one job per core pays; --threads is shared out "
                   "between them. The bundle is the same as with --jobs 1.")
@click.option("--verbose", is_flag=True, help="Also show third-party log lines (ExecuTorch, torchao, coremltools).")
def main(checkpoint, target, backend, quant, calib, calib_n, eval_n, recipes_from, int8_top1, fuse, components, force,
         output, family, config_name, seed, threads, jobs, verbose):
    """Export CHECKPOINT (a udc checkpoint) as a NAME.udc bundle with manifest.json and a parity report.

    \b
    LRDif: clip_image, fpen_s2, denoiser (all T steps unrolled, the noise an input) and udcformer.
    DDAMFN: one component 'ddamfn', image -> logits (no landmarks, no noise)."""
    import warnings

    warnings.filterwarnings("ignore")
    from udc.sdk.runtime.bundle import BundleError
    from udc.sdk.console.quiet import setup

    setup(verbose)
    from udc.sdk.models.checkpoint import CheckpointError
    from udc.sdk.errors import UdcError

    from .quant.calibration import CalibrationError
    from .quant.recipe_hints import RecipeHintError
    from .options import ExportOptionError, resolve

    if checkpoint is None and config_name is None:
        _fail_usage("give a CHECKPOINT, or --config tiny|mobile|paper (--model ddamfn: tiny|paper) to export a fresh "
                    "random-init model")
    if checkpoint is not None and config_name is not None:
        _fail_usage("give either a CHECKPOINT or --config, not both (a checkpoint carries its own config)")
    fam_configs = DDAMFN_CONFIGS if family == "ddamfn" else CONFIGS
    if config_name is not None and config_name not in fam_configs:
        _fail_usage(f"--config {config_name} is not a {family or 'lrdif'} config; choose one of {', '.join(fam_configs)}")
    try:
        resolve(target, backend, quant)
    except ExportOptionError as e:
        _fail_usage(str(e))
    names = None
    if components is not None:
        names = tuple(dict.fromkeys(c.strip() for c in components.split(",") if c.strip()))
        known = ("clip_image", "fpen_s2", "denoiser", "udcformer", "pipeline", "ddamfn")
        bad = [c for c in names if c not in known]
        if bad or not names:
            _fail_usage(f"--components {components!r}: unknown component {', '.join(bad) or '(none given)'}; "
                        f"choose from {', '.join(known)}")
    if calib is not None and not os.path.exists(calib):
        raise click.ClickException(f"calibration data {calib} does not exist: pass --calib DIR with a face dataset "
                                   "(RAF-DB, FERPlus, KDEF, AffectNet or class folders), or omit --calib for "
                                   "synthetic faces")

    from .exporter import ExportRequest, ModelChoiceError, run_export

    req = ExportRequest(output=output, target=target, checkpoint=checkpoint, config=config_name, family=family,
                        backend=backend,
                        quant=quant, calib=calib, calib_n=calib_n, eval_n=eval_n, fuse=fuse, force=force, seed=seed,
                        threads=threads, components=names, recipes_from=recipes_from, jobs=jobs,
                        int8_top1=int8_top1)
    try:
        result = run_export(req, log=click.echo)
    except (ExportOptionError, ModelChoiceError, RecipeHintError) as e:
        _fail_usage(str(e))
    except (BundleError, CalibrationError, CheckpointError, UdcError) as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:  # noqa: BLE001 - dataset errors from udc.train and similar: one line, no traceback
        from udc.train.datasets import DatasetError

        if isinstance(e, DatasetError):
            raise click.ClickException(str(e)) from None
        raise

    from .targets.delegation import format_report

    reports = {a.component: a.delegation for a in result.artifacts if a.delegation}
    if reports:
        click.echo("")
        click.echo(format_report(reports))
    click.echo("")
    click.echo(result.summary_table())
    click.echo(f"\nwrote {result.path} ({result.seconds['total']:.0f} s)")
    for w in result.warnings:  # repeated at the end, on stderr: they must not scroll away with the log
        click.echo(f"WARNING: {w}", err=True)
    if not result.passed:
        failed = [n for n, p in result.manifest["parity"]["components"].items() if p["passed"] is False]
        if result.manifest["parity"]["end_to_end"]["passed"] is False:
            failed.append("end-to-end")
        click.echo(f"parity below the {result.manifest['quant']} thresholds for: {', '.join(failed)} "
                   f"(see {result.path.name}/manifest.json 'parity')", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()

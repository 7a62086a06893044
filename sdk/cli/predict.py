"""``udc-predict``: the expression of the face in each photo, with any bundle on any host runtime.

    udc-predict face.udc selfie.jpg other.png
    udc-predict face.udc selfie.jpg --json
    udc-predict face.udc selfie.jpg --overlay out.png          # box, 68 landmarks and label drawn
    udc-predict face.udc --video clip.mp4 frames_dir/          # one label per clip: U x V sampled frames
    udc-predict face.udc --video clip.mp4 --preset dfew        # 16 segments x 1 frame (seed 002's DFEW rule)

Exit codes: 0 every image predicted, 1 some image had no face or could not be read (its row says
why; the other images are still predicted), 2 the bundle cannot run here (tampered, runtime not on
this host, ...). ``--json`` is strict JSON: a number that is not finite is ``null``, and a prediction
whose model output is not finite is an error row. Third-party log lines (ExecuTorch's cpuinfo, absl,
TFLite, torchao) are hidden unless ``--verbose``.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from ..console.quiet import quiet_native, setup  # noqa: E402
from ..console.table import dumps_json, format_table  # noqa: E402


def overlay_path(out: Path, image: str, many: bool) -> Path:
    return out if not many else out.with_name(f"{out.stem}-{Path(image).stem}{out.suffix or '.png'}")


def draw_overlay(image, pred, out: Path) -> Path:
    """The input image with the face box, the 68 landmarks and ``label confidence`` drawn; written atomically."""
    from PIL import Image, ImageDraw

    from ..faces.images import load_image

    img = Image.fromarray(load_image(image))
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = pred.box
    w = max(2, round(max(img.size) / 300))
    d.rectangle([x0, y0, x1, y1], outline=(0, 255, 0), width=w)
    r = max(1.5, w * 0.8)
    for x, y in np.asarray(pred.landmarks):
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 64, 64))
    text = f"{pred.label} {100 * pred.confidence:.0f}%"
    tb = d.textbbox((x0, y0), text)
    ty = y0 - (tb[3] - tb[1]) - 2 * w if y0 - (tb[3] - tb[1]) - 2 * w > 0 else y1 + w
    box = d.textbbox((x0, ty), text)
    d.rectangle([box[0] - w, box[1] - w, box[2] + w, box[3] + w], fill=(0, 0, 0))
    d.text((x0, ty), text, fill=(255, 255, 255))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix or ".png", dir=out.parent)
    os.close(fd)
    try:
        img.save(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


_EPILOG = """\b
Examples:
  udc-predict face.udc selfie.jpg other.png
  udc-predict face.udc selfie.jpg --runtime torch --json
  udc-predict ddamfn.udc --video clip.mp4 --segments 8 --frames-per-segment 2
  udc-predict ddamfn.udc --video clips/happy_001/ --preset dfew
\b
--video: each argument is a video file or a folder of frame images (name order). The frames are cut into
U segments and the middle V frames of each are scored (seed 002's evaluation rule); the clip's label is the
argmax of the mean of their probabilities. Frames without a face are left out (counted in the table)."""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=_EPILOG)
@click.argument("bundle", type=click.Path())
@click.argument("images", nargs=-1, required=True)
@click.option("--runtime", type=click.Choice(["auto", "executorch", "onnxruntime", "coreml", "torch"]), default="auto",
              show_default=True, help="auto: the bundle's own runtime; torch: the PyTorch reference model.")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="With --runtime torch: the checkpoint the bundle was exported from, if the manifest's path is gone.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads of the runtime.")
@click.option("--overlay", type=click.Path(dir_okay=False), default=None,
              help="Write the image with box, landmarks and label (OUT.png; OUT-<image>.png for several images).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image (a list) instead of a table.")
@click.option("--video", is_flag=True, help="The arguments are videos (files or frame folders): one label per clip.")
@click.option("--preset", type=click.Choice(["ferv39k", "dfew"]), default=None,
              help="--video sampling of seed 002: ferv39k = 8 segments x 2 frames (default), dfew = 16 x 1.")
@click.option("--segments", type=click.IntRange(min=1), default=None, help="--video: U, segments per clip.")
@click.option("--frames-per-segment", type=click.IntRange(min=1), default=None,
              help="--video: V, consecutive frames taken in the middle of each segment.")
@click.option("--aggregate", type=click.Choice(["mean_prob", "mean_logit"]), default="mean_prob", show_default=True,
              help="--video: average the frames' probabilities, or softmax of their mean logit.")
@click.option("--verbose", is_flag=True, help="Also show third-party log lines (ExecuTorch, MediaPipe/absl, torchao).")
def main(bundle, images, runtime, reference, threads, overlay, as_json, video, preset, segments, frames_per_segment,
         aggregate, verbose):
    """Predict the facial expression of the largest face in each IMAGE with BUNDLE (a NAME.udc directory);
    with --video, of each clip."""
    import warnings

    warnings.filterwarnings("ignore")
    setup(verbose)
    from ..errors import UdcError
    from ..runtime.recognizer import Recognizer

    try:
        with quiet_native():  # ExecuTorch logs cpuinfo lines from C++ while it loads
            rec = Recognizer.load(bundle, runtime, reference=reference, threads=threads)
    except UdcError as e:
        click.echo(f"udc-predict: {e}", err=True)
        sys.exit(2)
    if not video and (preset or segments or frames_per_segment or aggregate != "mean_prob"):
        raise click.UsageError("--preset, --segments, --frames-per-segment and --aggregate need --video")
    if video:
        if overlay:
            raise click.UsageError("--overlay draws on one image: not with --video")
        sys.exit(_videos(rec, images, preset, segments, frames_per_segment, aggregate, as_json))
    rows, out, failed = [], [], 0
    for img in images:
        try:
            with quiet_native():
                p = rec.predict(img)
            if not np.isfinite(np.asarray(p.logits, np.float64)).all():
                raise UdcError(f"{img}: the model's output is not finite (NaN/inf): no expression can be read from it")
        except UdcError as e:
            failed += 1
            rows.append([img, "-", "-", "-", "-", str(e)])
            out.append({"source": img, "error": str(e)})
            continue
        except OSError as e:  # an I/O error the loaders did not turn into a typed error: one line, batch goes on
            failed += 1
            msg = f"{img}: cannot read ({e.strerror or e})"
            rows.append([img, "-", "-", "-", "-", msg])
            out.append({"source": img, "error": msg})
            continue
        d = p.to_dict()
        if overlay:
            d["overlay"] = str(draw_overlay(img, p, overlay_path(Path(overlay), img, len(images) > 1)))
        out.append(d)
        rows.append([img, p.label, f"{100 * p.confidence:.1f}%", f"{p.timings['model']:.2f}",
                     f"{p.timings['total']:.1f}", f"{p.num_faces} face(s)" + (f", overlay {d['overlay']}"
                                                                             if overlay else "")])
    if as_json:
        click.echo(dumps_json(out))
    else:
        m = rec.bundle.manifest
        title = (f"{rec.bundle.path.name} ({m['target']}/{m.get('backend')} {m['quant']}, {m['model'].get('config')}"
                 f"{', random-init weights' if m['model'].get('random_init') else ''}) on {rec.runtime}")
        click.echo(format_table(["image", "label", "confidence", "model ms", "total ms", "note"], rows, title))
    sys.exit(1 if failed else 0)


def _videos(rec, videos, preset, segments, frames_per_segment, aggregate, as_json) -> int:
    from ..errors import UdcError
    from ..faces.video import CLIP_PRESETS

    sampling = CLIP_PRESETS[preset or "ferv39k"]
    u, v = segments or sampling.segments, frames_per_segment or sampling.frames_per_segment
    rows, out, failed = [], [], 0
    for path in videos:
        try:
            with quiet_native():
                c = rec.predict_video(path, segments=u, frames_per_segment=v, aggregate=aggregate)
            if not np.isfinite(np.asarray(list(c.probs.values()), np.float64)).all():
                raise UdcError(f"{path}: the model's output is not finite (NaN/inf): no expression can be read from it")
        except UdcError as e:
            failed += 1
            rows.append([path, "-", "-", "-", "-", "-", str(e)])
            out.append({"source": path, "error": str(e)})
            continue
        out.append(c.to_dict())
        note = f"{len(c.skipped)} sampled frame(s) without a face" if c.skipped else ""
        rows.append([path, c.label, f"{100 * c.confidence:.1f}%", f"{len(c.used)}/{len(c.indices)} of {c.num_frames}",
                     f"{c.timings['model']:.2f}", f"{c.timings['total']:.1f}", note])
    if as_json:
        click.echo(dumps_json(out))
    else:
        m = rec.bundle.manifest
        title = (f"{rec.bundle.path.name} ({m.get('family', 'lrdif')}, {m['target']}/{m.get('backend')} {m['quant']}) on "
                 f"{rec.runtime}: clips of {u} segments x {v} frames, {aggregate}")
        click.echo(format_table(["video", "label", "confidence", "frames used", "model ms", "total ms", "note"], rows,
                                title))
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    main()

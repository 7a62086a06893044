"""Real faces end to end (issue 13): one command from a face dataset to one table.

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/real_faces.py DATA [--out DIR]
        [--models lrdif-fer,ddamfn-paper] [--max-epochs N] [--max-steps N] [--subsample N] [--threads 2]

DATA is a FER2013-layout tree (``train/ validation/ test/`` with one folder per class) or any dataset
``udc.train.datasets.open_dataset`` reads (RAF-DB, FERPlus, KDEF, AffectNet, folder-per-class). Steps, each
through the project's own CLIs/APIs, each finished step recorded in ``OUT/state/<step>.json`` (written
atomically), so a killed run continues where it stopped (training resumes from its ``last.pt``):

1. ``tree``       DATA as a folder tree under ``OUT/data/clean`` (symlinks; ``--subsample N`` faces per split)
2. ``landmarks``  68 landmarks per face, cached (``ensure_landmarks`` with the crop fallback ``auto``: faces
                  MediaPipe misses in a face crop get the upscaled / canonical paths; counted per path)
3. ``udc``        the UDC twin ``OUT/data/udc`` (``udc-synth --profile random``: a jittered real phone per image)
4. ``train``      every model (``--models``) on clean and on UDC faces (``udc-train``; LRDif stage 1 then 2);
                  model selection on the validation split only (``best.pt`` by validation accuracy)
5. ``eval``       WAR and UAR on the test split, clean->clean, UDC->UDC and clean->UDC (``udc-eval``); every
                  test face is scored: a face without landmarks counts as wrong
6. ``export``     ExecuTorch/XNNPACK int8 bundle of the best UDC model (by validation accuracy), calibrated on
                  real training faces of its condition (``udc-export --quant int8 --calib``)
7. ``parity``     ``udc-parity`` of that bundle on real test faces (top-1 agreement, cosine), and its accuracy
                  on the whole test split (``Recognizer.run_model`` on every aligned test face)
8. ``bench``      host latency of the bundle (``udc-bench --device host``): p50 end to end

Prints one table (plus the host and its measured fp32 GEMM peak) and writes ``OUT/results.json``, the
per-class confusion matrix PNG of the best model (``OUT/confusion_best.png``) and one per run.
Progress bars only when stderr is a terminal; ``--quiet`` prints the table alone.

Measured duration on this 2-core CPU (AMD EPYC) for FER2013 (35,887 faces), ``--models lrdif-fer
--train-jobs 2``: landmarks 17 min (MediaPipe, ~29 ms per face); the UDC twin 11.5 min; LRDif ``fer`` trained
on clean and on UDC faces side by side (``--train-jobs 2``, 1 thread each): stage 1 ~5-6 min and stage 2 ~5.5 min
per epoch, 3 + 10 epochs 70 min for both; the int8 export 20-50 min (its per-component recipe search); parity,
accuracy and latency of the bundle ~2 min. DDAMFN ``paper`` (112 px, 540 M MACs) costs ~150-230 ms per training
image at 2 threads (idle machine): ~75 min per FER2013 epoch and condition, so ``--models ddamfn-paper`` adds
~2.5 h for its default single epoch on both conditions.

Numbers of an LRDif run without a CLIP checkpoint are labelled "LRDif without pretrained CLIP" (not the
paper's model). The data and everything derived from it stay under OUT: never commit them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
warnings.filterwarnings("ignore")

from udc.sdk.bench.host import describe_cpu  # noqa: E402
from udc.sdk.console.table import format_table  # noqa: E402

MODELS = {  # name -> (family, model config)
    "lrdif-fer": ("lrdif", "fer"), "lrdif-tiny": ("lrdif", "tiny"), "lrdif-mobile": ("lrdif", "mobile"),
    "lrdif-paper": ("lrdif", "paper"), "ddamfn-paper": ("ddamfn", "paper"), "ddamfn-tiny": ("ddamfn", "tiny"),
}
CONDITIONS = ("clean", "udc")
# DDAMFN's official recipe (train/config.py DDAMFN_OFFICIAL) is 40 epochs (RAF-DB) with StepLR every 10 epochs at
# batch 256, lr 0.01. At 112 px its 540 M MACs cost 0.32 s per training image on this CPU (README: 675 s per epoch
# of 2,100 faces, 1 thread, loaded machine), i.e. ~2.6 h per FER2013 epoch at 1 thread: the benchmark scales it to
# DDAMFN_EPOCHS (the StepLR period scaled with it, a quarter of the run) and batch DDAMFN_BATCH with the lr scaled
# linearly (0.01 * 64 / 256), and says so under the table. --ddamfn-epochs / --ddamfn-batch change both (a GPU).
DDAMFN_EPOCHS = 1
DDAMFN_BATCH = 64


# ------------------------------------------------------------------------------------------ state
class State:
    """One JSON file per finished step under OUT/state (written atomically: a killed run leaves none or a whole one)."""

    def __init__(self, out: Path):
        self.dir = out / "state"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, step: str) -> Path:
        return self.dir / (step.replace("/", "_").replace(":", "_") + ".json")

    def get(self, step: str) -> dict | None:
        p = self._path(step)
        return json.loads(p.read_text()) if p.is_file() else None

    def put(self, step: str, result: dict) -> dict:
        write_json_atomic(self._path(step), result)
        return result


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Runner:
    """Runs the steps in order, skipping finished ones; prints one line per step (stderr) unless quiet."""

    def __init__(self, out: Path, quiet: bool, total: int):
        self.state, self.quiet, self.total, self.i = State(out), quiet, total, 0
        self.tty = sys.stderr.isatty() and not quiet

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def step(self, name: str, fn: Callable[[], dict]) -> dict:
        self.i += 1
        done = self.state.get(name)
        if done is not None:
            self.log(f"[{self.i}/{self.total}] {name}: done before (OUT/state), skipped")
            return done
        self.log(f"[{self.i}/{self.total}] {name} ...")
        t0 = time.perf_counter()
        res = fn()
        res["seconds"] = round(time.perf_counter() - t0, 1)
        self.log(f"[{self.i}/{self.total}] {name}: done in {res['seconds']:.0f}s")
        return self.state.put(name, res)


def cli(command, args: list[str], quiet_output: bool = True) -> tuple[int, str]:
    """Run a udc click command in this process: ``(exit code, stdout)``."""
    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf) if quiet_output else contextlib.nullcontext():
        try:
            rv = command.main(args=args, standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, buf.getvalue()


def json_out(text: str) -> dict:
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def failed(what: str, code: int, out: str) -> RuntimeError:
    return RuntimeError(f"{what} exited with {code}:\n{out[-3000:]}")


# ------------------------------------------------------------------------------------------ host
def gemm_peak_gflops(threads: int, n: int = 1024, seconds: float = 1.0) -> float:
    """Measured fp32 ``torch.mm`` throughput of this CPU with ``threads`` threads (best of repeated n x n matmuls).
    Context for the table only: XNNPACK's GEMM can be faster on the same CPU (``benchmarks/compare.py``'s peak
    takes the faster of the two for its compute floor)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b
        best, t_end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        return best
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------ steps
def make_tree(data: Path, dst: Path, subsample: int | None, seed: int) -> dict:
    """DATA (any format udc reads) as ``dst/<split>/<label>/<file>``: symlinks to path records, PNGs for inline
    pixels, dataset-shipped landmarks re-keyed into ``dst/landmarks68.npz``. ``subsample``: N faces per split
    (seeded, class-stratified by round robin)."""
    import numpy as np
    from PIL import Image

    from udc.train.datasets import open_dataset
    from udc.train.landmark_store import LANDMARKS_FILE, save_landmarks

    index = open_dataset(data)
    rng = np.random.default_rng(seed)
    counts: dict[str, dict[str, int]] = {}
    shipped: dict[str, Any] = {}
    tmp = dst.with_name(dst.name + ".part")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    for split in ("train", "val", "test"):
        recs = sorted(index.split(split), key=lambda r: r.key)
        if subsample and len(recs) > subsample:
            by_class: dict[int, list] = {}
            for r in (recs[i] for i in rng.permutation(len(recs))):
                by_class.setdefault(r.label, []).append(r)
            picked, queues = [], [q for _, q in sorted(by_class.items())]
            while len(picked) < subsample:
                for q in queues:
                    if q and len(picked) < subsample:
                        picked.append(q.pop())
            recs = sorted(picked, key=lambda r: r.key)
        for i, r in enumerate(recs):
            folder = tmp / split / r.label_name
            folder.mkdir(parents=True, exist_ok=True)
            if r.path is not None:
                target = folder / f"{i:06d}_{Path(r.path).name}"
                os.symlink(Path(r.path).resolve(), target)
            else:
                target = folder / f"{i:06d}.png"
                Image.fromarray(np.asarray(r.pixels)).save(target)
            if r.landmarks is not None:
                shipped[target.relative_to(tmp).as_posix()] = r.landmarks
            counts.setdefault(split, {}).setdefault(r.label_name, 0)
            counts[split][r.label_name] += 1
    if shipped:  # the dataset's own landmarks, recorded as such (path "dataset" in the landmark counts)
        save_landmarks(tmp / LANDMARKS_FILE, shipped, {k: "dataset" for k in shipped})
    if not counts.get("train") or not counts.get("test"):
        raise SystemExit(f"{data}: need a train and a test split (found {sorted(counts)})")
    os.replace(tmp, dst)
    return {"dataset": index.name, "source": str(data), "counts": counts, "dropped": index.dropped,
            "subsample_per_split": subsample}


def landmarks_step(root: Path, progress: bool) -> dict:
    from udc.train.datasets import open_dataset
    from udc.train.datasets.landmark_cache import ensure_landmarks

    index = open_dataset(root)
    lm = ensure_landmarks(index, progress=progress, fallback="auto")
    per_split = {}
    for split in ("train", "val", "test"):
        keys = [r.key for r in index.split(split)]
        per_split[split] = {p: sum(lm.sources.get(k) == p for k in keys) for p in lm.counts()}
    return {"paths": lm.counts(), "paths_per_split": per_split, "summary": lm.summary()}


def train_args(family: str, config: str, stage: int, data: Path, out: Path, args, stage1: Path | None) -> list[str]:
    from udc.train.config import recipe_defaults

    _, rec = recipe_defaults(family, config, stage)
    epochs = rec.get("epochs", 100)
    sets = [f"num_threads={args.threads}", "landmark_fallback=auto"]
    if family == "ddamfn":
        epochs = args.ddamfn_epochs
        sets.append(f"step_size={max(1, round(epochs / 4))}")  # the official 10 of 40 epochs, scaled
        if not args.batch_size:
            sets += [f"batch_size={args.ddamfn_batch}", f"lr={0.01 * args.ddamfn_batch / 256:g}"]  # linear scaling
    if args.max_epochs:
        epochs = min(epochs, args.max_epochs)
    if args.max_steps:
        sets.append(f"max_steps_per_epoch={args.max_steps}")
    if args.batch_size:
        sets.append(f"batch_size={args.batch_size}")
    verb = "ddamfn" if family == "ddamfn" else f"stage{stage}"
    a = [verb, "--data", str(data), "--out", str(out), "--epochs", str(epochs), "--seed", str(args.seed), "--resume"]
    if stage == 1:
        a += ["--model", config]
    if stage1 is not None:
        a += ["--stage1", str(stage1)]
    if not sys.stderr.isatty() or args.quiet:
        a.append("--quiet")
    for s in sets:
        a += ["--set", s]
    return a


def train_step(family: str, config: str, stage: int, data: Path, out: Path, args, stage1: Path | None = None) -> dict:
    from udc.sdk.models.checkpoint import read_checkpoint
    from udc.train.cli import main as train_main

    a = train_args(family, config, stage, data, out, args, stage1)
    code, text = cli(train_main, a, quiet_output=args.quiet or not sys.stderr.isatty())
    if code:
        raise failed("udc-train " + " ".join(a), code, text)
    extra = read_checkpoint(out / "best.pt")["extra"]
    hist = json.loads((out / "metrics.json").read_text())
    return {"command": "udc-train " + " ".join(a), "checkpoint": str(out / "best.pt"),
            "best_val_accuracy": extra["best_val_accuracy"], "model_label": extra.get("model_label"),
            "recipe": extra.get("recipe"), "epochs": len(hist), "train_seconds": sum(h["seconds"] for h in hist),
            "history": hist}


def eval_step(ckpt: str, data: Path, png: Path) -> dict:
    from udc.train.cli import eval_main

    a = [ckpt, "--data", str(data), "--split", "test", "--json", "--confusion", str(png)]
    code, text = cli(eval_main, a)
    if code:
        raise failed("udc-eval " + " ".join(a), code, text)
    r = json_out(text)
    r["command"] = "udc-eval " + " ".join(a)
    return r


def parity_faces(root: Path, dst: Path) -> dict:
    """``dst``: the test faces of ``root`` that have landmarks (symlinks) with their landmarks re-keyed, so that
    ``udc-parity --data dst`` aligns them from the cache (as udc-eval did) instead of detecting again."""
    import numpy as np

    from udc.train.datasets import open_dataset
    from udc.train.landmark_store import LANDMARKS_FILE, load_landmarks, save_landmarks

    index = open_dataset(root)
    lms = load_landmarks(root / LANDMARKS_FILE)
    tmp = dst.with_name(dst.name + ".part")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    keep = {}
    for r in index.split("test"):
        lm = r.landmarks if r.landmarks is not None else lms.get(r.key)
        if lm is None or not np.isfinite(lm).all():
            continue
        name = r.key.replace("/", "__")
        os.symlink(Path(r.path).resolve(), tmp / name)
        keep[name] = lm
    save_landmarks(tmp / LANDMARKS_FILE, keep)
    os.replace(tmp, dst)
    return {"faces": len(keep)}


def bundle_accuracy(bundle: Path, root: Path, threads: int, progress: bool) -> dict:
    """WAR/UAR of the bundle on every test face of ``root`` (aligned from the cached landmarks, run as an app runs
    the model: ``Recognizer.run_model``); faces without landmarks count as wrong."""
    import numpy as np
    from tqdm import tqdm

    from udc.sdk.faces.align import align_face
    from udc.sdk.faces.images import load_image
    from udc.sdk.runtime.recognizer import Recognizer
    from udc.train.datasets import open_dataset
    from udc.train.landmark_store import LANDMARKS_FILE, load_landmarks
    from udc.train.metrics import Metrics, confusion_matrix

    rec = Recognizer.load(bundle, "auto", threads=threads)
    index = open_dataset(root)
    lms = load_landmarks(root / LANDMARKS_FILE)
    truth, pred, missed = [], [], np.zeros(len(rec.labels), np.int64)
    for r in tqdm(index.split("test"), desc="bundle accuracy", unit="face", disable=not progress, leave=False):
        lm = r.landmarks if r.landmarks is not None else lms.get(r.key)
        if lm is None or not np.isfinite(lm).all():
            missed[r.label] += 1
            continue
        crop, lm_crop, _ = align_face(load_image(r.path), np.asarray(lm, np.float32), rec.crop_size)
        logits, _ = rec.run_model(crop, lm_crop / rec.crop_size)
        truth.append(r.label)
        pred.append(int(np.argmax(logits)))
    labels = tuple(rec.labels)
    m = Metrics(confusion_matrix(truth, pred, len(labels)), labels, np.asarray(pred), missed)
    return {"war": m.war, "uar": m.uar, "n": m.n, "n_missed_counted_wrong": m.n_missed}


def parallel_trainings(args, out: Path, models: list[str], conds: list[str], run: Runner) -> None:
    """Train the (model, condition) runs that are not finished yet in up to ``args.train_jobs`` processes of this
    script (``--train-only``, ``threads / jobs`` threads each, log in ``OUT/logs``); each resumes where it stopped.
    The steps they finish are in OUT/state, so the sequential loop that follows finds them done."""
    import subprocess

    last = {m: f"train-{m}-{{c}}-stage2" if MODELS[m][0] == "lrdif" else f"train-{m}-{{c}}" for m in models}
    todo = [(m, c) for m in models for c in conds if run.state.get(last[m].format(c=c)) is None]
    if len(todo) < 2:
        return
    jobs = min(args.train_jobs, len(todo))
    threads = max(1, args.threads // jobs)
    passthrough = ["--seed", str(args.seed), "--udc-profile", args.udc_profile, "--ddamfn-epochs",
                   str(args.ddamfn_epochs), "--ddamfn-batch", str(args.ddamfn_batch)]
    for flag, v in (("--subsample", args.subsample), ("--max-epochs", args.max_epochs),
                    ("--max-steps", args.max_steps), ("--batch-size", args.batch_size)):
        if v:
            passthrough += [flag, str(v)]
    (out / "logs").mkdir(exist_ok=True)
    queue, running, failures = list(todo), [], []
    run.log(f"training {len(todo)} runs, {jobs} at a time, {threads} thread(s) each (logs: {out / 'logs'})")
    try:
        while queue or running:
            while queue and len(running) < jobs:
                m, c = queue.pop(0)
                log = out / "logs" / f"train-{m}-{c}.log"
                cmd = [sys.executable, str(Path(__file__).resolve()), str(args.data), "--out", str(out), "--models", m,
                       "--conditions", c, "--threads", str(threads), "--train-only", *passthrough]
                f = open(log, "a")
                running.append(((m, c), subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                                         stdin=subprocess.DEVNULL), f, log, time.perf_counter()))
                run.log(f"  {m}-{c}: started")
            time.sleep(2)
            for item in list(running):
                (m, c), proc, f, log, t0 = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                f.close()
                took = (time.perf_counter() - t0) / 60
                if proc.returncode:
                    failures.append(f"{m}-{c} (exit {proc.returncode}, log {log}):\n" +
                                    "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
                run.log(f"  {m}-{c}: {'FAILED' if proc.returncode else 'done'} after {took:.1f} min")
    finally:
        for _, proc, f, _, _ in running:  # interrupted: stop the children (their trainings resume next time)
            proc.terminate()
            proc.wait()
            f.close()
    if failures:
        raise RuntimeError("parallel training failed:\n" + "\n\n".join(failures))


# ------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="FER2013-layout tree (train/ validation/ test/ class folders) or any "
                                           "dataset udc reads")
    p.add_argument("--out", type=Path, default=Path("runs/real_faces"), help="Work and result directory (resumable).")
    p.add_argument("--models", default="lrdif-fer,ddamfn-paper",
                   help=f"Comma-separated, from: {', '.join(MODELS)} (default: lrdif-fer,ddamfn-paper).")
    p.add_argument("--conditions", default="clean,udc", help="Train/test conditions: clean, udc (default both).")
    p.add_argument("--subsample", type=int, default=None, help="At most N faces per split (quick runs).")
    p.add_argument("--max-epochs", type=int, default=None, help="Cap every training's epochs (quick runs).")
    p.add_argument("--max-steps", type=int, default=None, help="Cap the steps per epoch (quick runs).")
    p.add_argument("--batch-size", type=int, default=None, help="Override the recipes' batch sizes.")
    p.add_argument("--ddamfn-epochs", type=int, default=DDAMFN_EPOCHS,
                   help=f"DDAMFN epochs (official: 40; default {DDAMFN_EPOCHS}: what fits a CPU, see the module).")
    p.add_argument("--ddamfn-batch", type=int, default=DDAMFN_BATCH,
                   help=f"DDAMFN batch (official: 256 at lr 0.01; default {DDAMFN_BATCH}, lr scaled linearly).")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for training, export and runtimes.")
    p.add_argument("--train-jobs", type=int, default=1,
                   help="Train up to N (model, condition) runs side by side, each in its own process with "
                        "threads/N threads (logs in OUT/logs). On a 2-core CPU two 1-thread trainings finish ~1.6x "
                        "sooner than one after the other at 2 threads (small convolutions scale poorly).")
    p.add_argument("--train-only", action="store_true", help="Stop after the trainings (used by --train-jobs).")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--udc-profile", default="random",
                   help="udc-synth profile of the UDC twin (default random: a jittered real phone per image; one "
                        "named profile builds one PSF per image size instead of 18, e.g. for quick runs).")
    p.add_argument("--deploy", choices=CONDITIONS, default="udc",
                   help="Condition whose best model (by validation accuracy) is exported, checked and benchmarked.")
    p.add_argument("--export-model", default=None,
                   help="Export/check/benchmark this model instead of the best by validation accuracy.")
    p.add_argument("--calib-n", type=int, default=256, help="Calibration faces for int8 (real training faces).")
    p.add_argument("--eval-n", type=int, default=224, help="Held-out faces of udc-export's own parity report.")
    p.add_argument("--int8-top1", type=float, default=None, metavar="FRACTION",
                   help="udc-export --int8-top1: the end-to-end top-1 agreement the int8 bundle must reach (default: "
                        "the int8 threshold, 0.97). Its bundle and steps are its own, so rerunning a finished OUT with "
                        "it exports, checks and benchmarks again without retraining.")
    p.add_argument("--export-jobs", type=int, default=1,
                   help="udc-export --jobs: export the four components in this many worker processes.")
    p.add_argument("--parity-n", type=int, default=0, help="udc-parity faces (0: every test face with landmarks).")
    p.add_argument("--bench-iters", type=int, default=100, help="udc-bench timed runs.")
    p.add_argument("--bench-warmup", type=int, default=10, help="udc-bench warm-up runs.")
    p.add_argument("--quiet", action="store_true", help="Only the table.")
    p.add_argument("--json", action="store_true", help="Print results.json instead of the table.")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    conds = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if unknown or not models or any(c not in CONDITIONS for c in conds) or not conds:
        raise SystemExit(f"--models from {', '.join(MODELS)}; --conditions from {', '.join(CONDITIONS)}")
    if args.deploy not in conds:
        args.deploy = conds[-1]
    if args.export_model and args.export_model not in models:
        raise SystemExit(f"--export-model {args.export_model} is not in --models")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    progress = sys.stderr.isatty() and not args.quiet
    n_train = sum(2 if MODELS[m][0] == "lrdif" else 1 for m in models) * len(conds)
    n_eval = len(models) * (len(conds) + (1 if set(conds) == set(CONDITIONS) else 0))
    # tree, landmarks[, udc-twin]; trainings; evaluations; export, parity-faces, parity, bundle-accuracy, bench, host
    run = Runner(out, args.quiet, (3 if "udc" in conds else 2) + n_train + n_eval + 6)
    roots = {"clean": out / "data" / "clean", "udc": out / "data" / "udc"}

    tree = run.step("tree", lambda: make_tree(args.data.resolve(), roots["clean"], args.subsample, args.seed))
    lmk = run.step("landmarks", lambda: landmarks_step(roots["clean"], progress))
    if "udc" in conds:
        def twin() -> dict:
            from udc.train.synth_cli import main as synth_main

            a = [str(roots["clean"]), str(roots["udc"]), "--profile", args.udc_profile, "--seed", str(args.seed)]
            code, text = cli(synth_main, a)
            if code:
                raise failed("udc-synth " + " ".join(a), code, text)
            return {"command": "udc-synth " + " ".join(a), "output": text.strip()}

        run.step("udc-twin", twin)

    if args.train_jobs > 1 and not args.train_only:
        parallel_trainings(args, out, models, conds, run)

    runs: dict[tuple[str, str], dict] = {}
    for m in models:
        family, config = MODELS[m]
        for c in conds:
            base = out / "runs" / f"{m}-{c}"
            if family == "lrdif":
                s1 = run.step(f"train-{m}-{c}-stage1",
                              lambda: train_step(family, config, 1, roots[c], base / "stage1", args))
                s2 = run.step(f"train-{m}-{c}-stage2",
                              lambda: train_step(family, config, 2, roots[c], base / "stage2", args,
                                                 Path(s1["checkpoint"])))
                s2 = {**s2, "train_seconds": s1["train_seconds"] + s2["train_seconds"],
                      "epochs_text": f"{s1['epochs']}+{s2['epochs']}"}
                runs[(m, c)] = s2
            else:
                r = run.step(f"train-{m}-{c}", lambda: train_step(family, config, 1, roots[c], base, args))
                runs[(m, c)] = {**r, "epochs_text": str(r["epochs"])}

    if args.train_only:
        run.log(f"trainings done ({', '.join(f'{m}-{c}' for m, c in runs)}); --train-only: stopping here")
        return {"runs": {f"{m}-{c}": r for (m, c), r in runs.items()}}

    evals: dict[tuple[str, str, str], dict] = {}
    pairs = [(c, c) for c in conds] + ([("clean", "udc")] if set(conds) == set(CONDITIONS) else [])
    for m in models:
        for tr, te in pairs:
            ck = runs[(m, tr)]["checkpoint"]
            png = out / "confusion" / f"{m}-{tr}-on-{te}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            evals[(m, tr, te)] = run.step(f"eval-{m}-{tr}-on-{te}", lambda: eval_step(ck, roots[te], png))

    dep = args.deploy
    best_m = args.export_model or max(models, key=lambda m: runs[(m, dep)]["best_val_accuracy"])
    best = runs[(best_m, dep)]
    tag = "" if args.int8_top1 is None else f"-top1-{args.int8_top1:g}"  # its own bundle and steps: a resumed run
    bundle = out / "bundles" / f"{best_m}-{dep}-int8{tag}.udc"              # with --int8-top1 exports again

    def export() -> dict:
        from udc.export.cli import main as export_main

        a = [best["checkpoint"], "--target", "executorch", "--quant", "int8", "--calib", str(roots[dep]),
             "--calib-n", str(args.calib_n), "--eval-n", str(args.eval_n), "--threads", str(args.threads),
             "--seed", str(args.seed), "--jobs", str(args.export_jobs), "--force", "-o", str(bundle)]
        if args.int8_top1 is not None:
            a[-3:-3] = ["--int8-top1", str(args.int8_top1)]
        code, text = cli(export_main, a)
        if code not in (0, 1) or not (bundle / "manifest.json").is_file():
            raise failed("udc-export " + " ".join(a), code, text)
        man = json.loads((bundle / "manifest.json").read_text())
        size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
        return {"command": "udc-export " + " ".join(a), "exit_code": code, "bundle": str(bundle),
                "size_mb": size / 2 ** 20, "export_parity_passed": man["parity"]["passed"]}

    exp = run.step(f"export-{best_m}-{dep}{tag}", export)
    run.step(f"parity-faces-{dep}", lambda: parity_faces(roots[dep], out / "data" / f"parity-{dep}"))

    def parity() -> dict:
        from udc.sdk.cli.parity import main as parity_main

        pf = out / "data" / f"parity-{dep}"
        n = args.parity_n or max(1, sum(1 for f in pf.iterdir() if f.is_symlink()))
        a = [str(bundle), "--data", str(pf), "--n", str(n), "--threads", str(args.threads), "--json"]
        code, text = cli(parity_main, a)
        try:  # exit 1 (FAIL) and 2 with a report (INCONCLUSIVE: fewer faces than the minimum) are results
            r = json_out(text)
        except ValueError:
            raise failed("udc-parity " + " ".join(a), code, text) from None
        e2e = r["end_to_end"]
        return {"command": "udc-parity " + " ".join(a), "exit_code": code, "n": r["inputs"]["n"],
                "top1_agreement": e2e.get("top1_agreement"), "cosine": e2e.get("cosine"), "verdict": r.get("verdict"),
                "report": r}

    par = run.step(f"parity-{best_m}-{dep}{tag}", parity)
    acc = run.step(f"bundle-accuracy-{best_m}-{dep}{tag}",
                   lambda: bundle_accuracy(bundle, roots[dep], args.threads, progress))

    def bench() -> dict:
        from udc.sdk.cli.bench import main as bench_main

        a = [str(bundle), "--device", "host", "--warmup", str(args.bench_warmup), "--iters", str(args.bench_iters),
             "--threads", str(args.threads), "--json"]
        code, text = cli(bench_main, a)
        if code:
            raise failed("udc-bench " + " ".join(a), code, text)
        r = json_out(text)
        row = next(x for x in r["rows"] if x["runtime"] != "torch")
        ref = next((x for x in r["rows"] if x["runtime"] == "torch"), None)
        return {"command": "udc-bench " + " ".join(a), "runtime": row["runtime"],
                "p50_ms": row["latency_ms"]["end_to_end"]["p50"],
                "torch_p50_ms": ref["latency_ms"]["end_to_end"]["p50"] if ref else None, "device": r["device"]}

    bn = run.step(f"bench-{best_m}-{dep}{tag}", bench)
    host = run.step("host", lambda: {"gemm_peak_gflops": gemm_peak_gflops(args.threads), **bn["device"]})

    # ---------------------------------------------------------------- the table
    import shutil

    best_png = out / "confusion" / f"{best_m}-{dep}-on-{dep}.png"
    if best_png.is_file():
        shutil.copyfile(best_png, out / "confusion_best.png")
    rows = []
    for m in models:
        for tr, te in pairs:
            r, e = runs[(m, tr)], evals[(m, tr, te)]
            label = e.get("model_label") or r.get("model_label") or m
            rows.append([label, MODELS[m][1], f"{tr}->{te}", r["epochs_text"], f"{r['train_seconds'] / 60:.1f}",
                         f"{100 * r['best_val_accuracy']:.2f}", f"{100 * e['war']:.2f}", f"{100 * e['uar']:.2f}",
                         e.get("n", "-"), e.get("n_missed_counted_wrong", e.get("skipped_no_face", 0)), "", "", "", ""])
    strict = "" if args.int8_top1 is None else f", --int8-top1 {args.int8_top1:g}"
    rows.append([f"{runs[(best_m, dep)].get('model_label') or best_m} int8 (ExecuTorch{strict})", MODELS[best_m][1],
                 f"{dep}->{dep}", "", "", "", f"{100 * acc['war']:.2f}", f"{100 * acc['uar']:.2f}", acc["n"],
                 acc["n_missed_counted_wrong"],
                 f"{100 * par['top1_agreement']:.2f}" if par["top1_agreement"] is not None else "-",
                 f"{par['cosine']:.5f}" if par["cosine"] is not None else "-", f"{exp['size_mb']:.2f}",
                 f"{bn['p50_ms']:.2f}"])
    counts = tree["counts"]
    title = (f"Real faces: {tree['dataset']} at {args.data} ({', '.join(f'{s} {sum(c.values())}' for s, c in counts.items())}"
             f" faces); landmarks: {lmk['summary']}; selection on val only, test reported once per model\n"
             f"host: {describe_cpu(host)} ({host.get('cores')} cores, {args.threads} threads), measured fp32 torch.mm peak "
             f"{host['gemm_peak_gflops']:.1f} GFLOP/s")
    table = format_table(["model", "config", "train->test", "epochs", "train min", "val acc %", "test WAR %",
                          "test UAR %", "n", "no face (wrong)", "int8 top-1 agree %", "int8 cosine", "bundle MB",
                          "host p50 ms"], rows, title)
    notes = []
    if any(MODELS[m][0] == "ddamfn" for m in models):
        notes.append(f"DDAMFN: official recipe (SGD, momentum 0.9, wd 1e-4, StepLR x0.1, RandomErasing, affine p=0.2, "
                     f"CE + 0.1 attention loss) scaled to fit: {args.ddamfn_epochs} epochs instead of 40 (StepLR "
                     f"period a quarter of the run), batch {args.batch_size or args.ddamfn_batch} instead of 256 "
                     f"(lr scaled linearly), random init instead of the MS-Celeb-1M pretrained MFN")
    if args.subsample or args.max_epochs or args.max_steps:
        notes.append(f"QUICK RUN (subsample {args.subsample}, max epochs {args.max_epochs}, max steps/epoch "
                     f"{args.max_steps}): not the benchmark's numbers")
    results = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "tree": tree,
               "landmarks": lmk, "runs": {f"{m}-{c}": r for (m, c), r in runs.items()},
               "eval": {f"{m}-{tr}-on-{te}": e for (m, tr, te), e in evals.items()}, "best": f"{best_m}-{dep}",
               "export": exp, "parity": par, "bundle_accuracy": acc, "bench": bn, "host": host, "notes": notes,
               "table": table}
    write_json_atomic(out / "results.json", results)
    if args.json:
        print(json.dumps({k: v for k, v in results.items() if k != "table"}, indent=2, default=str))
    else:
        print(table)
        for n in notes:
            print(f"* {n}")
        print(f"confusion matrix of the best model: {out / 'confusion_best.png'}; all results: {out / 'results.json'}")
    return results


if __name__ == "__main__":
    main()

"""Training throughput (images/s) per stage for the tiny and mobile configs on this CPU, with and
without the frozen-CLIP feature cache (and, for stage 2, with the tower trained: what ``train_clip=auto`` does when
no pretrained CLIP weights are given, where no cache can apply). Target: the cache makes mobile stage-2 epochs >= 3x
faster than the same frozen tower without it.

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--batch 16] [--threads 2] [--ddamfn tiny,paper]

``--ddamfn LIST`` adds DDAMFN rows (one stage, no CLIP cache; ``--configs ""`` for DDAMFN only).

Weights are random (throughput does not depend on them); data: procedural synthetic faces.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from udc.sdk.models.checkpoint import save_checkpoint
from udc.sdk.models.config import get_config
from udc.sdk.models.lrdif.model import LRDif
from udc.sdk.console.table import format_table
from udc.train.config import TrainConfig
from udc.train.synthetic.dataset import generate_dataset
from udc.train.trainer import Trainer


def measure(cfg: TrainConfig, steps: int) -> tuple[float, float]:
    """(images/s over `steps` training steps after one warm-up step, seconds of set-up incl. feature caching)."""
    t0 = time.perf_counter()
    tr = Trainer(cfg, progress=False, log=lambda *a: None)
    setup = time.perf_counter() - t0
    tr.cfg.max_steps_per_epoch = steps + 1
    try:
        tr.train_epoch(0, stop_at_step=1)  # one warm-up step, then "interrupted"
    except KeyboardInterrupt:
        pass
    t0 = time.perf_counter()
    tr.train_epoch(0)
    return steps * tr._batch_size() / (time.perf_counter() - t0), setup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="tiny,mobile")
    ap.add_argument("--ddamfn", default="", help="DDAMFN configs to measure too, e.g. tiny,paper")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    rows, speedups = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in filter(None, args.ddamfn.split(",")):
            from udc.sdk.models.ddamfn_config import get_ddamfn_config

            per_class = max(2, (args.steps + 2) * args.batch // 7 + 1)
            data = generate_dataset(tmp / f"data-ddamfn-{name}", {"train": per_class, "val": 1},
                                    size=max(64, get_ddamfn_config(name).image_size), progress=False)
            cfg = TrainConfig(family="ddamfn", model=name, data=str(data), out=str(tmp / f"run-ddamfn-{name}"),
                              epochs=1, batch_size=args.batch, num_threads=args.threads)
            ips, setup = measure(cfg, args.steps)
            rows.append([f"ddamfn-{name}", "-", "-", "-", f"{ips:.1f}", f"{setup:.1f}"])
        for name in filter(None, args.configs.split(",")):
            mcfg = get_config(name)
            per_class = max(2, (args.steps + 2) * args.batch // 7 + 1)
            data = generate_dataset(tmp / f"data-{name}", {"train": per_class, "val": 1}, size=mcfg.image_size,
                                    progress=False)
            s1 = tmp / f"{name}-s1.pt"
            save_checkpoint(LRDif(mcfg), s1)
            for stage in (1, 2):
                # (tower, cache): the frozen tower with and without the cache; stage 2 also with the tower trained
                # (what train_clip=auto does without pretrained CLIP weights: the cache cannot apply there)
                modes = [("frozen", False), ("frozen", True)] + ([("trained", False)] if stage == 2 else [])
                ips = {}
                for tower, cache in modes:
                    cfg = TrainConfig(stage=stage, model=name, data=str(data),
                                      out=str(tmp / f"run-{name}-{stage}-{tower}-{cache}"),
                                      stage1=str(s1) if stage == 2 else None, epochs=1, batch_size=args.batch,
                                      feature_cache=cache, cache_dir=str(tmp / "cache"), num_threads=args.threads,
                                      train_clip="yes" if tower == "trained" else "no")
                    ips[tower, cache], setup = measure(cfg, args.steps)
                    rows.append([name, stage, tower, "on" if cache else "off", f"{ips[tower, cache]:.1f}", f"{setup:.1f}"])
                speedups[(name, stage)] = ips["frozen", True] / ips["frozen", False]
    print(format_table(["config", "stage", "CLIP tower", "CLIP cache", "train img/s", "set-up s (incl. caching)"], rows,
                       title=f"training throughput, batch {args.batch}, {args.threads} threads, CPU"))
    if speedups:
        print()
        print(format_table(["config", "stage", "speed-up from the cache (frozen tower)"],
                           [[n, s, f"{v:.2f}x"] for (n, s), v in speedups.items()]))


if __name__ == "__main__":
    main()

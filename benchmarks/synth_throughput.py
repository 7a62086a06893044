"""Throughput of the UDC simulator (images/s) on this machine: the batched degradation alone
(FFT convolution, noise, tone curve) per profile and size, and udc-synth's whole tree conversion
(PNG decode + degrade + encode + atomic writes). Target: >= 200 img/s at 224x224 on 2 cores.

    .venv/bin/python benchmarks/synth_throughput.py [--batch 64] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from udc.sdk.console.table import format_table
from udc.train.udc_sim.convert import convert_tree
from udc.train.udc_sim.degrade import UDCDegrader
from udc.train.udc_sim.profiles import PROFILES


def faces_like(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth, face-like test images (blurred noise with a bright oval): realistic FFT/noise work."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    oval = (((xx - 0.5) / 0.33) ** 2 + ((yy - 0.5) / 0.42) ** 2 < 1).astype(np.float32)
    base = 0.25 + 0.5 * oval[None, :, :, None] * rng.uniform(0.6, 1.0, (n, 1, 1, 3))
    tex = rng.normal(0, 0.05, (n, size, size, 3))
    return (np.clip(base + tex, 0, 1) * 255).astype(np.uint8)


def bench_degrade(profile: str, size: int, batch: int, repeats: int, flare: bool) -> tuple[float, float]:
    t0 = time.perf_counter()
    deg = UDCDegrader(PROFILES[profile], size, flare=flare)
    init = time.perf_counter() - t0
    imgs = faces_like(batch, size)
    deg(imgs[:2], [0, 1])  # warm-up (kernel spectra)
    t0 = time.perf_counter()
    for r in range(repeats):
        deg(imgs, list(range(r * batch, (r + 1) * batch)))
    return batch * repeats / (time.perf_counter() - t0), init


def bench_tree(size: int, n: int, profile: str) -> float:
    tmp = Path(tempfile.mkdtemp())
    try:
        src = tmp / "src" / "train" / "neutral"
        src.mkdir(parents=True)
        for i, img in enumerate(faces_like(n, size, seed=1)):
            Image.fromarray(img).save(src / f"{i:05d}.png")
        t0 = time.perf_counter()
        convert_tree(tmp / "src", tmp / "dst", profile, progress=False, batch=64)
        return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tree-images", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in (112, 224):
        for name in PROFILES:
            for flare in (False, True):
                ips, init = bench_degrade(name, size, args.batch, args.repeats, flare)
                rows.append([name, f"{size}x{size}", "on" if flare else "off", f"{init:.2f}", f"{ips:.0f}"])
    print(format_table(["profile", "size", "flare", "PSF build s", "degrade img/s"], rows,
                       title=f"UDC degradation, batch {args.batch}, {args.threads} threads"))
    print()
    tree_rows = [[f"{s}x{s}", "zte_axon30", args.tree_images, f"{bench_tree(s, args.tree_images, 'zte_axon30'):.0f}"]
                 for s in (112, 224)]
    print(format_table(["size", "profile", "images", "udc-synth img/s (PNG in/out)"], tree_rows,
                       title="udc-synth tree conversion, end to end"))


if __name__ == "__main__":
    main()

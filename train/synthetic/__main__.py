"""``python -m udc.train.synthetic OUT [--train N --val N --test N --size S --seed S]`` writes the dataset;
``--sheet PNG`` writes a contact sheet (7 expressions x identities) instead."""
from __future__ import annotations

import argparse
import os

from .dataset import DEFAULT_COUNTS, generate_dataset
from .sheet import save_contact_sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m udc.train.synthetic", description=__doc__)
    ap.add_argument("out", nargs="?", help="dataset root to create")
    for split, n in DEFAULT_COUNTS.items():
        ap.add_argument(f"--{split}", type=int, default=n, help=f"images per expression in {split} (default {n})")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    ap.add_argument("--sheet", metavar="PNG", help="write a contact sheet instead of a dataset")
    ap.add_argument("--rows", type=int, default=6, help="contact-sheet rows (identities)")
    args = ap.parse_args(argv)
    if args.sheet:
        print(save_contact_sheet(args.sheet, rows=args.rows, size=args.size, seed=args.seed))
        return 0
    if not args.out:
        ap.error("OUT is required (or --sheet PNG)")
    counts = {split: getattr(args, split) for split in DEFAULT_COUNTS}
    try:
        out = generate_dataset(args.out, counts, size=args.size, seed=args.seed, overwrite=args.overwrite,
                               workers=args.workers)
    except FileExistsError as e:
        ap.exit(1, f"error: {e}; use --overwrite to replace it\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

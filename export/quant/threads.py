"""Torch threads of the int8 export's eager work.

Two rules. The quantize/dequantize ops of a PT2E module are many tiny kernels, and on shared cores two OpenMP
threads make each of them wait (10x slower): those run on one thread (:func:`torch_threads`). The batched float
forwards of the sensitivity ranking are large and scale with threads (the `paper` UDCformer, 32 faces: 21.5 s on
one thread, 13.1 s on two): in an ``udc-export --jobs N`` worker they run on the worker's current share of the
host (:func:`rebalance`), which grows as the other workers finish (:class:`udc.export.parallel.ThreadShare`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

_share: Callable[[], int] | None = None  # this process's share now (set in export workers only)
_on_change: Callable[[int, int], None] | None = None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, then restore the count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def set_share(share: Callable[[], int] | None, on_change: Callable[[int, int], None] | None = None) -> None:
    """Make ``share()`` this process's torch thread count from the next :func:`rebalance` on (None: no share,
    :func:`rebalance` leaves the count alone). ``on_change(old, new)`` hears of each change."""
    global _share, _on_change
    _share, _on_change = share, on_change


def rebalance() -> int:
    """Set torch's thread count to this process's share when it changed; returns the count in effect. Called
    where long eager work starts (each component of a worker, each layer of the sensitivity ranking)."""
    n = torch.get_num_threads()
    if _share is None:
        return n
    new = _share()
    if new >= 1 and new != n:
        torch.set_num_threads(new)
        if _on_change is not None:
            _on_change(n, new)
    return torch.get_num_threads()

"""Keep freed tensor memory in the process heap while an export runs (Linux with glibc; elsewhere a no-op).

glibc serves an allocation above its mmap threshold (128 KiB at first, growing to at most 32 MiB) with a fresh
``mmap`` and unmaps it again on free, so every large activation of an eager forward pays page faults when it is
first written. An int8 export runs many eager forwards of whole batches (the reference tensors, the candidates'
scores, the sensitivity ranking: one forward per layer), and their activations are tens to hundreds of MiB.
Measured on the `paper` UDCformer (random init, 32 faces, 1 thread, AMD EPYC): 714 ms per face at batch 32 and
300 ms at batch 1 with glibc's defaults, 197 and 218 ms with mmap off (``mallopt(M_MMAP_MAX, 0)``; system time
of the run 37.6 s -> 1.9 s); the `mobile` UDCformer 58.8 -> 25.7 ms per face at batch 32. The price is memory:
freed blocks stay in the heap for reuse instead of going back to the system until the export ends (peak RSS of
that measurement 2.3 -> 3.6 GiB).

This is what PyTorch's CPU tuning guide gets from preloading jemalloc or tcmalloc, done in-process with the C
library's own ``mallopt`` so that nothing is installed and only the export is affected.

It is for the export only, not for batch-1 inference: the `paper` torch eager pipeline through the SDK (two
threads, ``benchmarks/compare.py``'s torch row) measured 494 and 530 ms per face with it against 200 and 234 ms
without, although the UDCformer alone at batch 1 was faster with it (102/125 vs 176/193 ms at two threads).
Why the whole pipeline is slower was not found, so nothing else in udc uses it.
"""
from __future__ import annotations

import ctypes
import sys
from contextlib import contextmanager
from typing import Iterator

# glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: glibc's defaults, restored when the export ends
DEFAULT_MMAP_MAX = 65536
DEFAULT_TRIM_THRESHOLD = 128 * 1024
#: free memory at the top of the heap above this goes back to the system (the largest value mallopt takes)
KEEP_TRIM_THRESHOLD = 2**31 - 1

_depth = 0  # how many heap_reuse blocks are open in this process
_applied = False  # whether the outermost one applied


def _glibc():
    """The process's C library when it is glibc (``mallopt``, ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl's mallopt is a stub)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def heap_reuse() -> Iterator[bool]:
    """Within the block, large allocations come from the heap and freed memory stays there for reuse; after it,
    glibc's default limits are set again and the kept memory is given back (``malloc_trim``). Yields whether
    it applied (False where the C library is not glibc). Re-entrant: only the outermost block sets and restores.

    After the block glibc's mmap threshold no longer adapts on its own (any ``mallopt`` turns that off); it keeps
    the value it had reached."""
    global _depth, _applied
    outer = _depth == 0
    if outer:
        libc = _glibc()
        _applied = libc is not None and libc.mallopt(M_MMAP_MAX, 0) == 1
        if _applied:
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD)
    _depth += 1
    try:
        yield _applied
    finally:
        _depth -= 1
        if outer and _applied:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
            _applied = False

"""How an export uses the host: freed tensor memory kept in the heap while it runs (udc.export.heap), and the
torch threads of ``--jobs`` workers handed on as workers finish (udc.export.parallel.ThreadShare,
udc.export.quant.threads.rebalance, consulted by the sensitivity ranking before each layer)."""
from __future__ import annotations

import ctypes
import multiprocessing as mp

import pytest
import torch

from udc.export.heap import _glibc, heap_reuse
from udc.export.parallel import ThreadShare
from udc.export.quant.recipes import layer_sensitivity
from udc.export.quant.threads import rebalance, set_share, torch_threads


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def _mmapped_blocks():
    """A function counting glibc's mmap-served blocks in use (``mallinfo2().hblks``), or a skip."""
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc >= 2.33 only (mallinfo2)")
    libc.mallinfo2.restype = _MallInfo2
    return lambda: libc.mallinfo2().hblks


def _grows_by(count, nbytes=64 << 20) -> int:
    """How many mmap-served blocks one live ``nbytes`` tensor adds."""
    before = count()
    x = torch.empty(nbytes, dtype=torch.uint8)
    grown = count() - before
    del x
    return grown


def test_heap_reuse_serves_large_blocks_from_the_heap_and_restores_glibc_after():
    count = _mmapped_blocks()
    assert _grows_by(count) == 1  # glibc's default: a 64 MiB block is its own mmap
    with heap_reuse() as applied:
        assert applied is True
        assert _grows_by(count) == 0
        with heap_reuse() as inner:  # nested (a worker's export): the outer block keeps the settings
            assert inner is True
        assert _grows_by(count) == 0  # the inner block's end did not restore the defaults
    assert _grows_by(count) == 1  # restored


def test_heap_reuse_is_a_no_op_without_glibc(monkeypatch):
    import udc.export.heap as heap

    monkeypatch.setattr(heap, "_glibc", lambda: None)
    with heap_reuse() as applied:
        assert applied is False


def test_thread_share_divides_the_host_among_busy_workers():
    busy = mp.get_context("spawn").Value("i", 2)
    share = ThreadShare(2, busy)
    assert share() == 1
    busy.value = 1
    assert share() == 2
    busy.value = 0  # never a division by zero, never more than the host
    assert share() == 2
    assert ThreadShare(1, mp.get_context("spawn").Value("i", 3))() == 1  # at least one thread


def test_rebalance_follows_the_share_and_says_so():
    old = torch.get_num_threads()
    now = {"n": 1}
    heard = []
    try:
        set_share(lambda: now["n"], lambda a, b: heard.append((a, b)))
        with torch_threads(1):
            assert rebalance() == 1 and heard == []  # unchanged: nothing said
            now["n"] = 2
            assert rebalance() == 2 and torch.get_num_threads() == 2 and heard == [(1, 2)]
            now["n"] = 0  # a nonsense share is ignored
            assert rebalance() == 2
        set_share(None)
        with torch_threads(1):
            assert rebalance() == 1  # outside a worker: left alone
    finally:
        set_share(None)
        torch.set_num_threads(old)


def test_the_sensitivity_ranking_consults_the_share_before_each_layer():
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 7))
    x = torch.randn(12, 8)
    with torch.no_grad():
        ref = module(x)
    calls = []
    try:
        set_share(lambda: calls.append(1) or torch.get_num_threads())
        ranked = layer_sensitivity(module, ["0", "2"], {"x": x}, lambda out: out, ref, batch=5)
    finally:
        set_share(None)
    assert [p for p, _ in ranked] and sorted(p for p, _ in ranked) == ["0", "2"]
    assert len(calls) == 1 + 2  # the float pass, then each of the two layers

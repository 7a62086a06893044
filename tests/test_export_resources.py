"""How an export uses the host: freed tensor memory kept in the heap while it runs (udc.export.heap), and the
torch threads of ``--jobs`` workers handed on as workers finish (udc.export.parallel.ThreadShare,
udc.export.quant.threads.rebalance, consulted by the sensitivity ranking before each layer)."""
from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from udc.export.heap import heap_reuse
from udc.export.parallel import ThreadShare
from udc.export.quant.sensitivity import layer_sensitivity
from udc.export.quant.threads import rebalance, set_share, torch_threads


#: Run in a fresh process: in a long-lived one, glibc serves even a 64 MiB block from free heap space that
#: earlier tests left, so "the default maps it" would depend on what ran before.
_PROBE = """
import ctypes, json, torch
from udc.export.heap import _glibc, heap_reuse

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = _glibc()
if libc is None or not hasattr(libc, "mallinfo2"):
    print(json.dumps(None)); raise SystemExit
libc.mallinfo2.restype = MallInfo2

def grows():  # how many mmap-served blocks one live 64 MiB tensor adds
    before = libc.mallinfo2().hblks
    x = torch.empty(64 << 20, dtype=torch.uint8)
    n = libc.mallinfo2().hblks - before
    del x
    return n

out = {"default": grows()}
with heap_reuse() as applied:
    out["applied"], out["inside"] = applied, grows()
    with heap_reuse() as inner:  # nested (a worker's export): the outer block keeps the settings
        out["inner"] = inner
    out["after_inner"] = grows()  # the inner block's end did not restore the defaults
out["restored"] = grows()
print(json.dumps(out))
"""


def test_heap_reuse_serves_large_blocks_from_the_heap_and_restores_glibc_after():
    import json
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out is None:
        pytest.skip("glibc >= 2.33 only (mallinfo2)")
    assert out == {"default": 1, "applied": True, "inside": 0, "inner": True, "after_inner": 0, "restored": 1}


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

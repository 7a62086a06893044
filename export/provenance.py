"""Share torch.fx provenance records instead of deep-copying them: the same programs, exported faster.

Every node a ``torch.fx`` pass creates records where it came from: ``node.meta["from_node"]``, a list of
``torch.fx.traceback.NodeSource``. Each new record deep-copies its source node's whole history
(``NodeSource.__init__``: ``copy.deepcopy(node.meta["from_node"])``), and ``copy.deepcopy`` of a graph module
copies every node's history again. Over the dozens of passes of a PT2E conversion and an XNNPACK lowering, the
histories grow and copying them becomes a large part of the export. cProfile of the int8 lowering of the test
suite's UDCformer: ``copy.deepcopy`` 89 s of 401 s.

A ``NodeSource`` is never changed once it is built. In torch 2.13 only its constructor and ``from_dict`` assign
its fields, and the two caches it fills (``_dict``, ``_action_string``) are functions of those fields. Sharing a
record is therefore the same as copying it. Inside :func:`shared_provenance`, ``copy.deepcopy`` returns a
``NodeSource`` itself. The lists that hold the records are still copied, so a pass that appends to a node's
``from_node`` list changes only that node's list.

Measured on ``mobile`` (random init), lowering one PT2E int8 component to XNNPACK, in one process, with
sharing off, on, off, on:

* UDCformer: 286.7 / 191.5 / 242.9 / 188.7 s;
* denoiser: 31.2 / 17.4 / 23.3 / 18.6 s.

The ``.pte`` was byte-identical every time. ``tests/test_provenance.py`` checks the bytes on a tiny component.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_lock = threading.Lock()
_depth = 0
_saved: object = None
_MISSING = object()


def _share(self, memo):  # NodeSource.__deepcopy__ inside shared_provenance(): the record is immutable
    return self


@contextlib.contextmanager
def shared_provenance() -> Iterator[None]:
    """``copy.deepcopy`` shares ``torch.fx.traceback.NodeSource`` records inside the block (re-entrant; the class
    is restored when the outermost block exits, whatever happened inside)."""
    global _depth, _saved
    from torch.fx.traceback import NodeSource

    with _lock:
        if _depth == 0:
            _saved = NodeSource.__dict__.get("__deepcopy__", _MISSING)
            NodeSource.__deepcopy__ = _share
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                if _saved is _MISSING:
                    del NodeSource.__deepcopy__
                else:
                    NodeSource.__deepcopy__ = _saved

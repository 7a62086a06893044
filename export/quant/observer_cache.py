"""Calibrate once, convert many: observer statistics shared between the recipes of one component.

Every int8 recipe of a component is prepared from the same float graph and calibrated on the same
faces, and PT2E observers only watch (they change no value during calibration), so an observer that
watches the same tensors with the same settings ends with the same statistics whichever recipe
inserted it. The recipe search used to calibrate each candidate from scratch and have
``convert_pt2e`` redo each histogram observer's min/max search (torchao's
``_non_linear_param_search``, ~0.1-0.4 s per observer on this CPU): measured on the random-init
``mobile`` UDCformer (16 faces), calibration 0.9-1.2 s per face and conversion 60-76 s per recipe
(docs/measured-facts.md).

:class:`ObserverCache` keeps, per observer key (the names of the graph nodes it watches, its class and
its quantization settings), the observer's buffers after calibration, and per histogram the searched
range. A later recipe whose observers are all known is restored instead of calibrated; one with unknown
observers is calibrated with its known ones restored and silenced (:meth:`ObserverCache.restore_known`:
a histogram observer's update is most of a calibration pass; measured on the random-init ``mobile``
UDCformer's gemm-int8 after all-int8 in docs/int8-recipes.md), and its new observers are added. Exactness is tested,
not assumed: ``tests/test_observer_cache.py`` requires the restored-and-converted module to compute
bit-identical outputs to the freshly calibrated one.
"""
from __future__ import annotations

import hashlib
import types
from typing import Any

import torch

_SETTINGS = ("dtype", "qscheme", "quant_min", "quant_max", "ch_axis", "bins", "is_dynamic", "reduce_range")


def _observers(gm: torch.fx.GraphModule) -> dict[int, tuple[Any, tuple]]:
    """``{id(observer): (observer, key)}`` for every observer module called in ``gm``. One observer object
    can sit under several names (a shared quantization spec: a concatenation's inputs and output), so the
    key holds every node it watches, in graph order."""
    from torchao.quantization.pt2e.observer import ObserverBase

    watched: dict[int, tuple[Any, list[str]]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if isinstance(mod, ObserverBase):
                watched.setdefault(id(mod), (mod, []))[1].append(node.args[0].name)
    return {i: (obs, (tuple(inputs), type(obs).__name__, tuple(str(getattr(obs, a, None)) for a in _SETTINGS)))
            for i, (obs, inputs) in watched.items()}


class ObserverCache:
    """Observer statistics of one component's calibration, reusable by its other recipes."""

    def __init__(self) -> None:
        self.states: dict[tuple, dict[str, torch.Tensor]] = {}
        self.ranges: dict[bytes, tuple[torch.Tensor, torch.Tensor]] = {}
        self.restored = self.calibrated = 0  # how many preparations each way (the tests read them)
        self.partial = 0  # of the calibrated, how many had known observers restored and silenced

    def restore(self, prepared: torch.fx.GraphModule) -> bool:
        """Load every observer of ``prepared`` from the cache; False (nothing changed) if any is unknown."""
        obs = _observers(prepared)
        if not obs or any(key not in self.states for _, key in obs.values()):
            return False
        for o, key in obs.values():
            self._load(o, key)
        self.restored += 1
        return True

    def restore_known(self, prepared: torch.fx.GraphModule) -> int:
        """Load the observers of ``prepared`` that the cache knows and silence them (their ``forward`` passes
        the tensor through, so calibrating updates only the others); returns how many. Call :meth:`unsilence`
        after calibrating."""
        known = 0
        for o, key in _observers(prepared).values():
            if key not in self.states:
                continue
            known += 1
            self._load(o, key)
            o.forward = _passthrough
        return known

    def _load(self, observer, key: tuple) -> None:
        for name, buf in observer.named_buffers(recurse=False):
            saved = self.states[key][name]
            buf.resize_(saved.shape).copy_(saved)

    @staticmethod
    def unsilence(prepared: torch.fx.GraphModule) -> None:
        for o, _ in _observers(prepared).values():
            if o.__dict__.get("forward") is _passthrough:
                del o.forward

    def store(self, prepared: torch.fx.GraphModule) -> None:
        """Remember the statistics of ``prepared``'s observers (after calibration)."""
        for o, key in _observers(prepared).values():
            self.states[key] = {n: b.detach().clone() for n, b in o.named_buffers(recurse=False)}
        self.calibrated += 1

    def memoize_search(self, prepared: torch.fx.GraphModule) -> None:
        """Give each histogram observer a memoized min/max search (keyed by its histogram, range and
        bins: everything torchao's search reads), so a histogram searched for one recipe is not searched
        again for the next."""
        from torchao.quantization.pt2e.observer import HistogramObserver

        for o, _ in _observers(prepared).values():
            if isinstance(o, HistogramObserver):
                o._non_linear_param_search = types.MethodType(_memoized(self.ranges, type(o)._non_linear_param_search), o)


def _passthrough(x):
    return x


def _memoized(ranges: dict, search):
    def param_search(obs):
        h = hashlib.sha1()
        for t in (obs.histogram, obs.min_val, obs.max_val):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(f"{obs.bins},{obs.dst_nbins},{obs.histogram.dtype}".encode())
        key = h.digest()
        if key not in ranges:
            ranges[key] = search(obs)
        lo, hi = ranges[key]
        return lo.clone(), hi.clone()
    return param_search

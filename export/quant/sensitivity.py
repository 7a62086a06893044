"""The sensitivity ranking of the int8 recipe search: which linear/conv layers of a component move the
end-to-end logits most when stored in int8 (``gemm-int8-sensitive-K`` keeps the top K float).

Each layer is scored by a forward with only that layer int8 (its input fake-quantized per tensor over the
faces, its weight per output channel, its output per tensor) and ``1 - cosine`` of the end-to-end logits
against the float reference. A whole forward per layer costs layers x forward: the random-init ``mobile``
UDCformer (96 layers, 32 faces) took 147 s on one thread of an Intel Xeon.

Most of each of those forwards recomputes what the quantized layer cannot reach: everything that runs before
it, and the branches that do not read it (the UDCformer's DIL network does not read the DT network).
:class:`Replay` records the output of every submodule call in one float pass and, in a layer's pass, answers a
call from the record when the module does not hold the layer's weight and none of the call's inputs depends on
the layer. Dependence is tracked through every torch op by a ``TorchFunctionMode`` (an op with a dependent
input makes dependent outputs; an in-place one also makes its target and that target's base dependent), so
the scores are those of whole forwards, computed only where they can differ (tested equal on a model with
branches, in-place updates and a reused module). The record holds the shallowest calls first, within
:func:`replay_budget` bytes; a call beyond the budget, or one that does not match the recorded call sequence,
is computed.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves, tree_map

#: Faces the sensitivity ranking runs on (the first of the calibration set). The ranking runs the component once
#: per layer, so its cost is layers x faces; measured (docs/measured-facts.md) on the trained ``fer`` UDCformer,
#: ranking on 32 of 128 faces took a third of the time and kept the same top-2 layers and 6 of the top 8. Only
#: the order is taken from the subset: every ``gemm-int8-sensitive-K`` candidate is still scored on all the
#: calibration faces.
RANK_FACES = 32

_MARK = "_udc_depends_on_quantized_layer"


def component_sensitivity(model, name: str, module: torch.nn.Module, paths: Sequence[str], calib,
                          faces: int = RANK_FACES) -> list[tuple[str, float]]:
    """:func:`layer_sensitivity` of component ``name`` (``module``: its float module) with the rest of the
    chain float, on the first ``faces`` faces of ``calib`` (a :class:`udc.export.reference.ReferenceIO`)."""
    from udc.export.reference import downstream_logits

    sub = calib.head(faces)
    return layer_sensitivity(module, paths, sub.inputs(name), lambda out: downstream_logits(model, name, out, sub),
                             sub.tensors["logits"])


def _fq_tensor(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-12)
    zp = int(round(-128 - lo / scale))
    return torch.fake_quantize_per_tensor_affine(x, scale, max(-128, min(127, zp)), -128, 127)


def _fq_weight(w: torch.Tensor) -> torch.Tensor:
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
    return (torch.round(flat / scale).clamp(-127, 127) * scale).reshape(w.shape)


def _weight_name(mod: torch.nn.Module) -> str | None:
    for name in ("weight", "in_proj_weight"):
        if isinstance(getattr(mod, name, None), torch.Tensor):
            return name
    return None


@torch.no_grad()
def layer_sensitivity(module: torch.nn.Module, paths: Sequence[str], inputs: dict[str, torch.Tensor],
                      to_logits: Callable[[torch.Tensor], torch.Tensor], ref_logits: torch.Tensor,
                      batch: int = 64, replay: bool = True) -> list[tuple[str, float]]:
    """``[(path, 1 - cosine of the end-to-end logits)]`` with only that layer int8, most sensitive first.

    Eager and batched: the layer's input is fake-quantized per tensor (min/max over the faces), its
    weight per output channel (symmetric), its output per tensor; ``to_logits`` finishes the chain.
    ``replay``: answer the calls the layer cannot reach from the float pass (:class:`Replay`; same scores).
    """
    from udc.sdk.parity.metrics import cosine

    from .threads import rebalance, torch_threads

    n = next(iter(inputs.values())).shape[0]

    def run() -> torch.Tensor:
        outs = []
        for s in range(0, n, batch):
            o = module(*[v[s:s + batch] for v in inputs.values()])
            outs.append(o[0] if isinstance(o, (tuple, list)) else o)
        return to_logits(torch.cat(outs))

    mods = {}
    for p in paths:
        try:
            m = module.get_submodule(p)
        except AttributeError:
            continue
        if _weight_name(m) is not None:
            mods[p] = m
    ranges: dict[str, list[float]] = {p: [0.0, 0.0, 0.0, 0.0] for p in mods}
    hooks = []
    for p, m in mods.items():
        def pre(mod, args, p=p):
            r = ranges[p]
            r[0], r[1] = min(r[0], float(args[0].min())), max(r[1], float(args[0].max()))

        def post(mod, args, out, p=p):
            o = out[0] if isinstance(out, (tuple, list)) else out
            r = ranges[p]
            r[2], r[3] = min(r[2], float(o.min())), max(r[3], float(o.max()))
        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    rebalance()
    rec = Replay(module) if replay and mods else None
    with torch_threads(torch.get_num_threads()):
        with rec.measuring() if rec is not None else nullcontext():  # the float pass: ranges (and every call's size)
            run()
        for h in hooks:
            h.remove()
        if rec is not None:
            with rec.recording():  # the float pass again, keeping what fits the budget
                run()
    scores = []
    for p, m in mods.items():
        r = ranges[p]
        wname = _weight_name(m)
        w = getattr(m, wname)
        saved = w.data.clone()
        rebalance()  # a long ranking: take the threads of export workers that finished
        w.data = _fq_weight(saved)
        h1 = m.register_forward_pre_hook(lambda mod, args, r=r: (_fq_tensor(args[0], r[0], r[1]), *args[1:]))
        h2 = m.register_forward_hook(
            lambda mod, args, out, r=r: _fq_tensor(out, r[2], r[3]) if isinstance(out, torch.Tensor) else out)
        try:
            if rec is None:
                logits = run()
            else:
                with rec.replaying(w):
                    logits = run()
        finally:
            h1.remove()
            h2.remove()
            w.data = saved
        scores.append((p, 1.0 - cosine(ref_logits, logits)))
    return sorted(scores, key=lambda t: -t[1])


# ------------------------------------------------------------------------------------------------ replay
def replay_budget() -> int:
    """Bytes the float pass's record may hold: a quarter of the memory available now, at most 2 GiB (the
    ``mobile`` UDCformer's every call on 32 faces: 2.1 GB)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 1 << 30
    return int(min(2 << 30, avail // 4))


def _depends(tree) -> bool:
    return any(isinstance(t, torch.Tensor) and getattr(t, _MARK, False) for t in tree_leaves(tree))


def _mark(tree) -> None:
    for t in tree_leaves(tree):
        if isinstance(t, torch.Tensor):
            setattr(t, _MARK, True)


def _cloned(tree):
    """``tree`` with every tensor copied: a record is never handed out, so nothing downstream writes into it."""
    return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, tree)


def _inplace(func) -> bool:
    name = getattr(func, "__name__", "")
    return name == "__setitem__" or (name.startswith("__i") and name.endswith("__")) or (
        name.endswith("_") and not name.endswith("__"))


#: Ops that read a tensor's metadata, not its values: their Python results cannot carry the quantized layer's
#: difference (``__get__``: properties such as ``shape``, ``dtype``, ``device``).
_METADATA = frozenset({"__get__", "size", "dim", "numel", "stride", "storage_offset", "__len__", "ndimension",
                       "nelement", "element_size", "is_contiguous", "is_floating_point", "is_complex", "get_device",
                       "data_ptr", "type", "__hash__"})


class _Dependence(TorchFunctionMode):
    """Marks every tensor an op computes from a marked tensor (see the module docstring). A marked tensor's value
    leaving as a Python number (``item()``, ``float(x)``, ``bool(x)``...) cannot be followed: ``on_escape()``."""

    def __init__(self, on_escape: Callable[[], None]):
        super().__init__()
        self.on_escape = on_escape

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _depends((args, kwargs)):
            leaves = tree_leaves(out)
            _mark(leaves)
            if getattr(func, "__name__", "") not in _METADATA and any(
                    isinstance(t, (bool, int, float, complex)) or type(t).__module__ == "numpy" for t in leaves):
                self.on_escape()
            targets = [kwargs["out"]] if "out" in kwargs else []
            if _inplace(func) and args:
                targets.append(args[0])
            for t in tree_leaves(targets):
                if isinstance(t, torch.Tensor):
                    _mark(t)
                    if t._base is not None:
                        _mark(t._base)
        return out


class Replay:
    """Answers a component's submodule calls from a float pass where a layer's int8 cannot reach them.

    Calls are numbered in the order the float pass makes them; a call answered from the record skips the
    numbers of the calls inside it, so every later call keeps its number. A call whose module differs from the
    recorded one at its number (control flow that changed) turns the replay off for the rest of the pass.
    """

    def __init__(self, module: torch.nn.Module, budget: int | None = None):
        self.module = module
        self.budget = replay_budget() if budget is None else budget
        self.subs = {n: m for n, m in module.named_modules() if n}
        self.holders: dict[int, set[str]] = {}  # id(parameter) -> names of the submodules holding it
        for n, m in self.subs.items():
            for prm in m.parameters():
                self.holders.setdefault(id(prm), set()).add(n)
        self.calls: list[tuple[str, int, int, int]] = []  # (module name, depth, output bytes, calls inside)
        self.record: dict[int, Any] = {}
        self.computed = 0  # submodule calls computed (not answered) in the last pass
        self._mode = ""
        self._next = 0
        self._depth = 0
        self._keep: set[int] = set()
        self._blocked: set[str] = set()
        self._off = False

    # ------------------------------------------------------------------ the passes
    def _patched(self, mode: str):
        from contextlib import contextmanager

        @contextmanager
        def ctx():
            saved = {n: m.__dict__["forward"] for n, m in self.subs.items() if "forward" in m.__dict__}
            for n, m in self.subs.items():
                m.forward = self._wrap(n, saved.get(n, type(m).forward.__get__(m)))
            self._mode, self._next, self._depth, self._off, self.computed = mode, 0, 0, False, 0
            try:
                yield self
            finally:
                self._mode = ""
                for n, m in self.subs.items():
                    if n in saved:
                        m.forward = saved[n]
                    else:
                        del m.forward
        return ctx()

    def measuring(self):
        """The first float pass: number the calls, measure their outputs."""
        self.calls = []
        return self._patched("measure")

    def recording(self):
        """The second float pass: keep the outputs of the shallowest calls that fit the budget."""
        if not self.calls:
            raise RuntimeError("Replay.recording() needs a measuring() pass first")
        order = sorted(range(len(self.calls)), key=lambda i: (self.calls[i][1], i))
        self._keep, used = set(), 0
        for i in order:
            size = self.calls[i][2]
            if size >= 0 and used + size <= self.budget:
                self._keep.add(i)
                used += size
        self.record = {}
        return self._patched("record")

    def replaying(self, weight: torch.Tensor):
        """A layer's pass: ``weight`` (the quantized layer's parameter) is where the difference starts."""
        from contextlib import ExitStack, contextmanager

        @contextmanager
        def ctx():
            self._blocked = self.holders.get(id(weight), set())
            setattr(weight, _MARK, True)
            try:
                with ExitStack() as stack:
                    stack.enter_context(self._patched("replay"))
                    stack.enter_context(_Dependence(self._turn_off))
                    yield self
            finally:  # an op that returns one of its inputs (``p.type_as(x)``) may have marked a parameter too
                for t in [weight, *self.module.parameters(), *self.module.buffers()]:
                    if _MARK in t.__dict__:
                        delattr(t, _MARK)
                self._blocked = set()
        return ctx()

    def _turn_off(self) -> None:
        self._off = True

    # ------------------------------------------------------------------ one call
    def _wrap(self, name: str, forward):
        def call(*args, **kwargs):
            i = self._next
            self._next += 1
            if self._mode == "measure":
                self.calls.append((name, self._depth, -1, 0))
            else:
                if i >= len(self.calls) or self.calls[i][0] != name:
                    self._off = True  # the call sequence changed: nothing recorded from here is this pass's
                if self._mode == "replay" and not self._off and i in self.record and name not in self._blocked \
                        and not _depends((args, kwargs)):
                    self._next = i + self.calls[i][3]  # skip the numbers of the calls inside
                    return _cloned(self.record[i])
            self.computed += 1
            self._depth += 1
            try:
                out = forward(*args, **kwargs)
            finally:
                self._depth -= 1
            if self._mode == "measure":
                leaves = tree_leaves(out)
                size = sum(t.numel() * t.element_size() for t in leaves if isinstance(t, torch.Tensor))
                ok = all(isinstance(t, torch.Tensor) or t is None or isinstance(t, (int, float, bool))
                         for t in leaves)
                self.calls[i] = (name, self.calls[i][1], size if ok else -1, self._next - i)
            elif self._mode == "record" and i in self._keep and not self._off:
                self.record[i] = _cloned(out)
            return out
        return call

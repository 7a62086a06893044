"""The sensitivity ranking's replay answers only the calls a quantized layer cannot reach: its scores are those of
whole forwards, on models built to trap it (an in-place write through a view, a value leaving as a Python number,
control flow that changes, a reused module), and each trap is shown to matter (with the guard off, the scores
differ)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from udc.export.quant import sensitivity
from udc.export.quant.sensitivity import Replay, layer_sensitivity, replay_budget


class Branches(nn.Module):
    """Two branches (``right`` never reads ``left``), a module called twice, a tuple output, a keyword call."""

    def __init__(self):
        super().__init__()
        self.left = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16))
        self.right = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16))
        self.shared = nn.Linear(16, 16)
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        a = self.shared(self.left(x))
        a = a.reshape(a.shape[0], -1)  # reading a dependent tensor's shape is not a value leaving
        b = self.shared(self.right(input=x))
        return self.head(torch.cat([a, b], dim=1))


class ThroughView(nn.Module):
    """``b``'s result is written into a view of ``buf``; ``tail`` then reads ``buf`` (the base), which only
    the in-place rule makes dependent."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.tail = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        buf = torch.zeros(x.shape[0], 16)
        buf[:, :8] = self.a(x)
        view = buf[:, 8:]
        view += self.b(x)
        return self.head(self.tail(buf))


class Escapes(nn.Module):
    """``b``'s result leaves as a Python float that scales what ``tail`` reads: not followable as a tensor."""

    def __init__(self):
        super().__init__()
        self.b = nn.Linear(8, 8)
        self.tail = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        s = float(self.b(x).abs().mean())
        return self.head(self.tail(x * s))


class Steers(nn.Module):
    """Which module runs depends on ``b``'s values: the call sequence may change between passes."""

    def __init__(self):
        super().__init__()
        self.b = nn.Linear(8, 8)
        self.p, self.q = nn.Linear(8, 5), nn.Linear(8, 5)
        self.bias = nn.Linear(8, 5)

    def forward(self, x):
        h = self.b(x)
        out = self.p(h) if bool(h.sum() > 0) else self.q(h)
        return out + self.bias(x)


def _ranking(module, x, replay, batch=64):
    paths = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        ref = module(x) + 0.01 * torch.randn(x.shape[0], 5, generator=torch.Generator().manual_seed(1))
    return layer_sensitivity(module, paths, {"x": x}, lambda out: out, ref, batch=batch, replay=replay)


@pytest.mark.parametrize("budget", [None, 700], ids=["every-call", "a-few-calls"])
@pytest.mark.parametrize("cls", [Branches, ThroughView, Escapes, Steers])
def test_replay_scores_are_those_of_whole_forwards(monkeypatch, cls, budget):
    torch.manual_seed(0)
    module = cls().eval()
    x = torch.randn(12, 8)
    plain = _ranking(module, x, replay=False, batch=5)
    if budget is not None:  # a record that holds only some calls (batches of 5 x 16 floats: 320 bytes each)
        monkeypatch.setattr(sensitivity, "replay_budget", lambda: budget)
    replayed = _ranking(module, x, replay=True, batch=5)
    assert plain == replayed
    assert all(v == v for _, v in plain) and len(plain) == len([m for m in module.modules() if isinstance(m, nn.Linear)])


def _computed(module, x, layer: str, budget=None) -> tuple[int, int]:
    """Submodule calls computed in ``layer``'s pass with the replay, and in a whole forward."""
    rec = Replay(module, budget=budget)
    with torch.no_grad():
        with rec.measuring():
            module(x)
        total = rec.computed
        with rec.recording():
            module(x)
        with rec.replaying(module.get_submodule(layer).weight):
            module(x)
    return rec.computed, total


def test_replay_computes_only_what_the_layer_reaches():
    torch.manual_seed(0)
    module = Branches().eval()
    x = torch.randn(4, 8)
    total = _computed(module, x, "head")[1]
    assert total == 11  # left (3 + itself), right (3 + itself), shared twice, head
    assert _computed(module, x, "head")[0] == 1  # both branches answered from the record
    assert _computed(module, x, "right.2")[0] == 4  # right, right.2, shared (its second call), head
    assert _computed(module, x, "left.0")[0] == 6  # left and its 3, shared (its first call), head
    assert _computed(module, x, "shared")[0] == 3  # the holder of the weight runs both times, and head
    assert _computed(module, x, "head", budget=0)[0] == total  # nothing recorded: everything computed
    assert 1 < _computed(module, x, "head", budget=4 * 16 * 4)[0] < total  # one [4, 16] output recorded


@pytest.mark.parametrize("cls, guard", [
    (ThroughView, "the view rule: an in-place write also marks its target's base"),
    (Escapes, "the escape rule: a dependent value leaving as a number turns the replay off"),
])
def test_each_guard_is_what_keeps_its_trap_exact(monkeypatch, cls, guard):
    torch.manual_seed(0)
    module = cls().eval()
    x = torch.randn(12, 8)
    plain = _ranking(module, x, replay=False)
    if cls is ThroughView:
        monkeypatch.setattr(sensitivity, "_inplace", lambda func: False)
    else:
        monkeypatch.setattr(Replay, "_turn_off", lambda self: None)
    assert dict(_ranking(module, x, replay=True))["b"] != dict(plain)["b"], guard


def test_replay_needs_a_measured_pass_and_leaves_the_module_as_it_was():
    module = Branches().eval()
    rec = Replay(module)
    with pytest.raises(RuntimeError, match="measuring"):
        rec.recording()
    with torch.no_grad(), rec.measuring():
        module(torch.randn(2, 8))
    assert all("forward" not in m.__dict__ for m in module.modules())
    w = module.head.weight
    with torch.no_grad(), rec.recording():
        module(torch.randn(2, 8))
    with torch.no_grad(), rec.replaying(w):
        module(torch.randn(2, 8))
    assert not hasattr(w, sensitivity._MARK) and all("forward" not in m.__dict__ for m in module.modules())
    with torch.no_grad(), rec.replaying(w):  # an op that hands back a parameter marks it: cleared after the pass
        module.head.bias.type_as(module(torch.randn(2, 8)))
        assert hasattr(module.head.bias, sensitivity._MARK)
    assert not [t for t in [*module.parameters(), *module.buffers()] if hasattr(t, sensitivity._MARK)]


def test_replay_budget_is_a_bounded_share_of_memory():
    b = replay_budget()
    assert 0 < b <= 2 << 30

"""udc.export.provenance: inside ``shared_provenance()`` a deep copy shares torch.fx provenance records (and still
copies the lists holding them); outside, and after any exit, torch's own deep copy is back; an int8 program lowered
with sharing is byte-identical to one lowered without it."""
from __future__ import annotations

import copy

import pytest
import torch
from torch.fx.traceback import NodeSource

from udc.export.provenance import shared_provenance


def _record():
    parent = NodeSource(None, "parent_pass")
    child = NodeSource(None, "child_pass")
    child.from_node = [parent]
    return child


def test_records_are_shared_inside_and_copied_outside():
    rec = _record()
    held = [rec]
    assert copy.deepcopy(rec) is not rec
    with shared_provenance():
        assert copy.deepcopy(rec) is rec
        meta = copy.deepcopy({"from_node": held})
        assert meta["from_node"] is not held and meta["from_node"][0] is rec  # the list is a copy, the record not
        with shared_provenance():  # re-entrant
            assert copy.deepcopy(rec) is rec
        assert copy.deepcopy(rec) is rec  # the inner block's exit did not restore early
    out = copy.deepcopy(rec)
    assert out is not rec and out.from_node[0] is not rec.from_node[0] and out.pass_name == "child_pass"
    assert "__deepcopy__" not in NodeSource.__dict__


def test_an_error_inside_restores_torch():
    with pytest.raises(RuntimeError, match="boom"):
        with shared_provenance():
            raise RuntimeError("boom")
    assert "__deepcopy__" not in NodeSource.__dict__ and copy.deepcopy(_record()) is not None


@pytest.mark.slow
def test_int8_lowering_is_byte_identical_with_shared_records():
    """The tiny fpen_s2, PT2E int8 (all-int8) then XNNPACK: the same .pte bytes either way, and sharing did
    happen (the lowered graph's histories hold fewer distinct records than without it)."""
    from udc.export.quant.recipes import PT2E
    from udc.export.targets import rewrites
    from udc.export.targets.executorch_export import _canonical, lower
    from udc.sdk.models.components import on_device_components
    from udc.sdk.models.registry import random_init_model

    torch.manual_seed(0)
    comp = next(c for c in on_device_components(random_init_model("lrdif", "tiny", 0)) if c.name == "fpen_s2")
    example = tuple(_canonical(v) for v in comp.inputs.values())
    q = PT2E(comp.module, example, rewrite=rewrites.decompose)
    cq = q.convert(q.calibrate("all-int8", [tuple(torch.randn_like(e) for e in example) for _ in range(4)])[0])
    plain = lower(torch.export.export(cq, example, strict=False), "xnnpack", "int8")
    with shared_provenance():
        shared = lower(torch.export.export(cq, example, strict=False), "xnnpack", "int8")
    assert shared[1].buffer == plain[1].buffer
    (p_total, p_distinct), (s_total, s_distinct) = _records(plain[0]), _records(shared[0])
    assert p_total > 0 and s_total > 0  # records were there to share
    assert s_distinct / s_total < p_distinct / p_total  # and with sharing, histories hold the same objects


def _records(edge) -> tuple[int, int]:
    """(records in every node's provenance history, distinct record objects among them)."""
    stack = [ns for n in edge.exported_program().graph.nodes for ns in n.meta.get("from_node", [])]
    total, ids = 0, set()
    while stack:
        ns = stack.pop()
        total += 1
        ids.add(id(ns))
        stack.extend(ns.from_node)
    return total, len(ids)

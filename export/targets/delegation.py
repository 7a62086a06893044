"""Delegation report of a lowered ExecuTorch program: what runs inside a backend delegate and what
falls back to ExecuTorch's portable kernels, and why.

The lowered edge program's graph holds one ``executorch_call_delegate`` node per delegated
partition (its ``lowered_module_N`` keeps the original sub-graph: the ops it absorbed) and plain
``call_function`` nodes for everything left outside. Compute is estimated per op from the shapes
in the graph (multiply-accumulates for matmul/conv, elements touched for the rest), so
``non_delegated_compute_pct`` says how much of the work runs outside the delegate, not just how
many nodes.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch

from .rewrites import REWRITTEN

#: Ops that are bookkeeping, not compute: never counted as fall-backs.
_IGNORED = {"getitem", "executorch_call_delegate", "alloc", "sym_size"}

#: Why an op stays outside, per backend (keys are op names without namespace/overload).
REASONS: dict[str, dict[str, str]] = {
    "xnnpack": {
        **REWRITTEN,
        "quantize_per_tensor": "float->int8 boundary where the neighbouring op stays float (a kept-float layer)",
        "dequantize_per_tensor": "int8->float boundary where the neighbouring op stays float (a kept-float layer)",
        "quantize_per_channel": "per-channel quantize outside a quantized gemm pattern",
        "dequantize_per_channel": "per-channel weight dequantize outside a quantized gemm pattern",
        "_softmax": "XNNPACK softmax needs the last dim and float32 input",
        "softmax": "XNNPACK softmax needs the last dim and float32 input",
        "view_copy": "reshape between a delegated and a non-delegated op (a graph break)",
        "permute_copy": "transpose between a delegated and a non-delegated op (a graph break)",
        "clone": "copy XNNPACK did not absorb",
        "_clone_dim_order": "copy XNNPACK did not absorb",
        "_to_dim_order_copy": "layout change at a graph break",
        "slice_copy": "slice with a step or of a non-delegated tensor",
        "cat": "concatenation of tensors from outside the delegate",
        "bmm": "batched matmul in a precision XNNPACK's partitioner did not take",
    },
    "coreml": {},
    "portable": {},
}


def op_name(target: Any) -> str:
    """``<EdgeOpOverload: aten.mean.dim>`` / ``aten.mean.dim`` -> ``mean``; builtins by their name."""
    if hasattr(target, "_schema"):
        name = target._schema.name.split("::")[-1]
        return name
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0] if "." in name else name


def reason_for(op: str, backend: str) -> str:
    if backend == "portable":
        return "portable backend: no delegate requested, every op runs on ExecuTorch's portable kernels"
    specific = REASONS.get(backend, {}).get(op)
    if specific:
        return specific
    if backend == "coreml":
        return "not supported by the Core ML partitioner (coremltools has no converter for it)"
    return f"no {backend} partitioner config for this op: it runs on ExecuTorch's portable kernels"


def _numel(v: Any) -> int:
    if isinstance(v, torch.Tensor):
        return int(v.numel())
    if isinstance(v, (list, tuple)):
        return sum(_numel(x) for x in v)
    return 0


def op_cost(node: torch.fx.Node) -> int:
    """Rough compute of one op: MACs for matmul/linear/conv, else the elements read + written."""
    op = op_name(node.target)
    out = node.meta.get("val")
    ins = [a.meta.get("val") for a in node.all_input_nodes]
    try:
        if op in ("mm", "bmm", "addmm", "linear", "matmul") and len(ins) >= 2:
            a = ins[1] if op == "addmm" else ins[0]
            k = a.shape[-1]
            return int(_numel(out) * k)
        if op in ("convolution", "conv2d") and len(ins) >= 2:
            w = ins[1]
            groups = node.args[8] if op == "convolution" and len(node.args) > 8 else 1
            transposed = op == "convolution" and len(node.args) > 6 and node.args[6]
            per_out = math.prod(w.shape[1:]) if not transposed else math.prod(w.shape[2:]) * w.shape[0] // max(1, groups)
            return int(_numel(out) * per_out)
    except (AttributeError, IndexError, TypeError):
        pass
    return _numel(out) + sum(_numel(v) for v in ins)


def _calls(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    return [n for n in graph.nodes if n.op == "call_function" and op_name(n.target) not in _IGNORED]


def report(edge_program: torch.export.ExportedProgram, backend: str) -> dict[str, Any]:
    """Counts, percentages, partitions and the fall-back ops (each with a reason) of one lowered program."""
    gm = edge_program.graph_module
    delegated_nodes = delegated_cost = partitions = 0
    delegated_ops: Counter[str] = Counter()
    backends: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "call_function" and op_name(node.target) == "executorch_call_delegate":
            lowered = getattr(gm, node.args[0].target)
            backends.add(lowered.backend_id)
            partitions += 1
            inner = _calls(lowered.original_module.graph)
            delegated_nodes += len(inner)
            delegated_cost += sum(op_cost(n) for n in inner)
            delegated_ops.update(op_name(n.target) for n in inner)
    outside = [n for n in _calls(gm.graph) if op_name(n.target) != "executorch_call_delegate"]
    fallback: dict[str, dict[str, Any]] = {}
    for n in outside:
        op = op_name(n.target)
        entry = fallback.setdefault(op, {"count": 0, "compute": 0, "reason": reason_for(op, backend)})
        entry["count"] += 1
        entry["compute"] += op_cost(n)
    outside_cost = sum(e["compute"] for e in fallback.values())
    total_nodes, total_cost = delegated_nodes + len(outside), delegated_cost + outside_cost
    return {
        "backend": backend,
        "delegate_ids": sorted(backends),
        "partitions": partitions,
        "delegated_nodes": delegated_nodes,
        "non_delegated_nodes": len(outside),
        "delegated_pct": round(100.0 * delegated_nodes / total_nodes, 2) if total_nodes else 0.0,
        "non_delegated_compute_pct": round(100.0 * outside_cost / total_cost, 3) if total_cost else 0.0,
        "fallback_ops": [{"op": op, **e} for op, e in sorted(fallback.items(), key=lambda kv: -kv[1]["count"])],
    }


def format_report(reports: dict[str, dict[str, Any]]) -> str:
    """The per-component table the CLI prints (fall-back ops with their reasons below it)."""
    from udc.sdk.console.table import format_table

    rows, notes = [], []
    for name, r in reports.items():
        if r is None:
            continue
        fb = r["fallback_ops"]
        ops = ", ".join(f"{f['op']} x{f['count']}" for f in fb[:5]) + (f", +{len(fb) - 5} more" if len(fb) > 5 else "")
        rows.append([name, r["backend"], r["partitions"], r["delegated_nodes"], r["non_delegated_nodes"],
                     f"{r['delegated_pct']:.1f}", f"{r['non_delegated_compute_pct']:.2f}", ops or "-"])
        by_reason: dict[str, list[str]] = {}
        for f in fb:
            by_reason.setdefault(f["reason"], []).append(f["op"])
        notes += [f"  {name}: {', '.join(o)}: {reason}" if len(o) <= 6 else f"  {name}: all {len(o)} op kinds: {reason}"
                  for reason, o in by_reason.items()]
    table = format_table(["component", "backend", "partitions", "delegated", "outside", "delegated %",
                          "outside compute %", "fall-back ops"], rows, title="Delegation report")
    return table + ("\n" + "\n".join(["fall-back reasons:"] + notes) if notes else "")

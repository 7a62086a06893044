"""Where a lowered component's layout transposes come from: XNNPACK's channels-last pass, by model module.

    TORCHAO_FORCE_SKIP_LOADING_SO_FILES=1 .venv/bin/python benchmarks/xnnpack_layout.py \
        [--config mobile] [--component udcformer] [--quant fp32|int8] [--seed 0] [--top 25]

XNNPACK (executorch 1.5.1) runs 4-D maps channels-last. Its ``ChannelsLastTaggedReshapePass`` tags each op NHWC or
NCHW and inserts a layout copy (``_to_copy`` with a memory format: a transpose at run time, even on a
``[1, C, 1, 1]`` constant) wherever an op cannot take its input in the layout it comes in: views, linear layers,
binary ops with a non-4-D operand (a number), 4-D means on the wrong dims. This script lowers one component of a
RANDOM-INIT model as ``udc-export`` does (the lowering rewrites of ``export/targets/rewrites.py``; ``int8``: PT2E
all-int8, calibrated on the example input only: the layout does not depend on the ranges), captures the graph the
XNNPACK backend serializes (after its passes), and prints:

* the op census of that graph (what XNNPACK will run, before its own fusions);
* every layout copy, grouped by direction, the op it reads from and the op it feeds (looking through int8
  quantize/dequantize pairs), and the model module of the op it reads from (``input`` for a graph input or a
  constant).

It times nothing (see ``benchmarks/compare_etdump.py`` for operator time). Measured uses: docs/measured-facts.md.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from typing import Iterable

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")

from udc.export.quant.recipes import module_path  # noqa: E402 - after the torchao switch above

#: (De)quantize ops by name: in the edge dialect the backend sees, their targets print as ``<EdgeOpOverload: ...>``,
#: which ``export.quant.recipes._is_q`` (written for the PT2E graph's ``quantized_decomposed.*`` names) misses.
_QDQ = ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel")


def _name(node) -> str:
    if node is None:
        return "-"
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    t = getattr(node.target, "__name__", str(node.target))
    if "_to_copy" in t:
        return "layout copy"
    return re.sub(r"^aten\.|\.default$|_copy(?=\.|$)", "", t)


def _is_qdq(node) -> bool:
    return node is not None and node.op == "call_function" and any(q in str(node.target) for q in _QDQ)


def module_of(node) -> str:
    """The innermost model module that made ``node`` (block indices as ``N``), ``input`` for an input/constant."""
    if node.op == "placeholder":
        return "input"
    if not node.meta.get("nn_module_stack"):
        return "?"
    return re.sub(r"\.\d+(?=\.|$)", ".N", module_path(node)) or "(top)"


def layout_copies(graphs: Iterable) -> list[dict]:
    """Every layout copy in the captured partition graphs: ``{"to": "NHWC"|"NCHW", "from_op", "to_op", "module"}``
    (producer and consumer seen past quantize/dequantize)."""
    import torch

    out = []
    for gm in graphs:
        for n in gm.graph.nodes:
            if n.op != "call_function" or "_to_copy" not in str(n.target) or "memory_format" not in n.kwargs:
                continue
            src = n.args[0]
            while _is_qdq(src) and isinstance(src.args[0], torch.fx.Node):
                src = src.args[0]
            dst = next(iter(n.users), None)
            while _is_qdq(dst):
                dst = next(iter(dst.users), None)
            out.append({"to": "NHWC" if n.kwargs["memory_format"] == torch.channels_last else "NCHW",
                        "from_op": _name(src), "to_op": _name(dst), "module": module_of(src)})
    return out


def op_census(graphs: Iterable) -> Counter:
    """Ops per target in the captured graphs (quantize/dequantize left out: XNNPACK folds them into the ops)."""
    c = Counter()
    for gm in graphs:
        for n in gm.graph.nodes:
            if n.op == "call_function" and not _is_qdq(n) and "getitem" not in str(n.target):
                c[_name(n)] += 1
    return c


def summarize(graphs: list) -> dict:
    """``{"ops", "census", "copies", "groups"}``; refuses an empty capture (nothing was delegated: nothing to say)."""
    if not graphs:
        raise ValueError("no XNNPACK partition graph was captured: nothing of the program was delegated to XNNPACK")
    census = op_census(graphs)
    copies = layout_copies(graphs)
    groups = Counter((c["to"], c["from_op"], c["to_op"], c["module"]) for c in copies)
    return {"ops": sum(census.values()), "census": census, "copies": copies, "groups": groups}


def capture(module, example: tuple, quant: str = "fp32") -> list:
    """Lower ``module`` as ``udc-export`` does (XNNPACK) and return the graphs the backend serialized."""
    from unittest import mock

    import executorch.backends.xnnpack._passes as xp
    import torch

    from udc.export.targets import rewrites
    from udc.export.targets.executorch_export import lower

    seen = []
    orig = xp.XNNPACKPassManager.transform

    def transform(self):
        ep = orig(self)
        seen.append(ep.graph_module)
        return ep

    with torch.no_grad():
        if quant == "int8":
            from udc.export.quant.recipes import PT2E

            q = PT2E(module, example, rewrite=rewrites.decompose)
            prepared, _ = q.calibrate("all-int8", [example])
            module = q.convert(prepared)
        elif quant != "fp32":
            raise ValueError(f"--quant {quant!r}: fp32 or int8")
        ep = torch.export.export(module, example, strict=False)
        with mock.patch.object(xp.XNNPACKPassManager, "transform", transform):
            lower(ep, "xnnpack", quant)
    return seen


def format_report(s: dict, top: int = 25) -> str:
    lines = [f"{s['ops']} ops in the XNNPACK graph(s), {len(s['copies'])} layout copies "
             f"({sum(1 for c in s['copies'] if c['to'] == 'NHWC')} to NHWC, "
             f"{sum(1 for c in s['copies'] if c['to'] == 'NCHW')} to NCHW), "
             f"{s['census'].get('permute', 0)} permutes", "", "ops:"]
    lines += [f"  {n:5d}  {op}" for op, n in s["census"].most_common()]
    lines += ["", f"layout copies (top {top} groups):", f"  {'n':>5}  {'to':4}  {'from op -> to op':34}  module"]
    for (to, a, b, mod), n in s["groups"].most_common(top):
        lines.append(f"  {n:5d}  {to:4}  {a + ' -> ' + b:34}  {mod}")
    rest = len(s["groups"]) - top
    if rest > 0:
        lines.append(f"  ... {rest} more groups")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="mobile", help="LRDif config (tiny, mobile, fer, paper); default mobile")
    ap.add_argument("--component", default="udcformer",
                    help="clip_image, fpen_s2, denoiser, udcformer or pipeline; default udcformer")
    ap.add_argument("--quant", default="fp32", choices=("fp32", "int8"))
    ap.add_argument("--seed", type=int, default=0, help="random-init seed")
    ap.add_argument("--top", type=int, default=25, help="layout-copy groups to print")
    a = ap.parse_args(argv)
    from udc.sdk.models.components import on_device_components
    from udc.sdk.models.registry import random_init_model

    model = random_init_model("lrdif", a.config, a.seed)
    comps = {c.name: c for c in on_device_components(model, fuse=a.component == "pipeline")}
    if a.component not in comps:
        ap.error(f"--component {a.component!r}: one of {', '.join(comps)}")
    comp = comps[a.component]
    s = summarize(capture(comp.module, tuple(comp.inputs.values()), a.quant))
    print(f"{a.config} {a.component} {a.quant} (random init, seed {a.seed})")
    print(format_report(s, a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Graph rewrites that keep the on-device components inside the XNNPACK delegate.

XNNPACK (executorch 1.5.1) has no kernel for ``layer_norm``, ``sum``, ``select``, ``split``,
``expand``, ``full_like`` or ``index``, and lowers ``mean`` only over the two inner dims of a 4-D
tensor. Each op it lacks would split the graph and run on ExecuTorch's portable kernels (a graph
break, a copy in and out of the delegate). The rewrites below express those ops with ops XNNPACK
has, numerically the same computation (same formula, float32; reduction order may differ in the
last bit):

=========================  =====================================================================
op                         rewritten as
=========================  =====================================================================
layer_norm (last dim)      mean / sub / mul / rsqrt / add, the means as 4-D inner-dim means
mean.dim, sum.dim          permute the reduced dims last, view ``[1, M, K, 1]``, mean over the
                           two inner dims (XNNPACK global average pooling), view back (sum: * K)
mean over the channels     (when lowering, after int8 quantization) a 1x1 conv with a constant
of a 4-D map               ``1/C`` weight: no transposes around it in XNNPACK's channels-last
select.int                 slice of width 1 + view
split / chunk              one slice per piece
expand to the same shape   view (a no-op: batch 1 everywhere on device)
matmul, rank 4 / 2x3       view to rank 3 + bmm + view, or a linear layer (no expands)
patch embedding conv       (kernel = stride >= 8, no padding) patchify (view + permute) + a linear
                           layer with the kernel as its ``[O, C*k*k]`` weight: XNNPACK runs a
                           32x32 / stride-32 convolution as an indirect GEMM at a third of its
                           linear-layer rate (see :func:`_patch_conv`)
full_like                  a constant (folded below)
=========================  =====================================================================

Sub-graphs that read only weights and constants (the DIL relative-position bias gather, the
denoiser's time-step column) are then folded into constants: :func:`fold_constants`.

Applied only for the XNNPACK backend: the Core ML delegate and Core ML/ONNX converters have
these ops natively, and the portable backend runs everything itself.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

aten = torch.ops.aten


def _norm_dims(dims, rank: int) -> list[int]:
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(rank))
    if isinstance(dims, int):
        dims = [dims]
    return sorted({d % rank for d in dims})


def _mean_inner(x: torch.Tensor, dims: list[int], keepdim: bool) -> torch.Tensor:
    """Mean of ``x`` over ``dims`` with only XNNPACK-supported ops (4-D mean over dims 2, 3)."""
    shape = list(x.shape)
    rank = len(shape)
    keep = [d for d in range(rank) if d not in dims]
    perm = keep + dims
    y = x if perm == list(range(rank)) else aten.permute.default(x, perm)
    m = math.prod(shape[d] for d in keep)
    k = math.prod(shape[d] for d in dims)
    y = aten.mean.dim(torch.reshape(y, [1, m, k, 1]), [2, 3], True)  # [1, M, 1, 1]
    out = [1 if d in dims else s for d, s in enumerate(shape)] if keepdim else [shape[d] for d in keep]
    return aten.view.default(y, out)


def _channel_mean(x, dims, keepdim) -> bool:
    """A mean over the channels of a ``[B, C, H, W]`` map, keeping the dim (the channel LayerNorm's two means)."""
    return x.dim() == 4 and _norm_dims(dims, 4) == [1] and bool(keepdim) and x.shape[1] > 1


def _mean_dim(x, dims=None, keepdim=False, *, dtype=None):
    if dtype is not None or not x.is_floating_point():
        return NotImplemented
    d = _norm_dims(dims, x.dim())
    if x.dim() == 4 and d == [2, 3] and keepdim:
        return NotImplemented  # already XNNPACK's global average pooling
    if _channel_mean(x, dims, keepdim):
        return NotImplemented  # left for the lowering (_mean_dim_lowered), after the int8 quantizer
    return _mean_inner(x, d, bool(keepdim))


def _mean_dim_lowered(x, dims=None, keepdim=False, *, dtype=None):
    """As :func:`_mean_dim`, and a channel mean of a 4-D map as a 1x1 convolution with a constant ``1/C`` weight
    ``[1, C, 1, 1]``. XNNPACK runs the map channels-last, so a mean over the channels as an inner-dim mean needs a
    transpose on each side (measured on the ``mobile`` UDCformer: 128 of its 353 transpose operators); the
    convolution reads channels-last directly (fp32 UDCformer 6.30-6.46 -> 6.05 ms, docs/measured-facts.md).
    Applied only when lowering, after PT2E: the int8 quantizer never sees the convolution; it quantized the mean it
    replaces, or not, by its own rules (all-int8 does: the manifest's ``op_precision``)."""
    if dtype is None and x.is_floating_point() and _channel_mean(x, dims, keepdim):
        c = x.shape[1]
        w = aten.full.default([1, c, 1, 1], 1.0 / c, dtype=x.dtype, device=x.device)  # folded into a constant
        return aten.conv2d.default(x, w)
    return _mean_dim(x, dims, keepdim, dtype=dtype)


def _sum_dim(x, dims=None, keepdim=False, *, dtype=None):
    if dtype is not None or not x.is_floating_point():
        return NotImplemented
    d = _norm_dims(dims, x.dim())
    k = math.prod(x.shape[i] for i in d)
    return aten.mul.Tensor(_mean_inner(x, d, bool(keepdim)), float(k))


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    n = len(normalized_shape)
    dims = list(range(x.dim() - n, x.dim()))
    mu = _mean_inner(x, dims, True)
    xc = aten.sub.Tensor(x, mu)
    var = _mean_inner(aten.mul.Tensor(xc, xc), dims, True)
    y = aten.mul.Tensor(xc, aten.rsqrt.default(aten.add.Tensor(var, float(eps))))
    if weight is not None:
        y = aten.mul.Tensor(y, weight)
    if bias is not None:
        y = aten.add.Tensor(y, bias)
    return y


def _select(x, dim, index):
    dim = dim % x.dim()
    index = index % x.shape[dim]
    piece = aten.slice.Tensor(x, dim, index, index + 1, 1)
    return torch.reshape(piece, [s for i, s in enumerate(x.shape) if i != dim])


def _split(x, split_size, dim=0):
    size = x.shape[dim]
    sizes = [min(split_size, size - s) for s in range(0, size, split_size)]
    return _split_with_sizes(x, sizes, dim)


def _split_with_sizes(x, split_sizes, dim=0):
    out, start = [], 0
    for s in split_sizes:
        out.append(aten.slice.Tensor(x, dim, start, start + s, 1))
        start += s
    return out


def _expand(x, size, *, implicit=False):
    target = [x.shape[i - (len(size) - x.dim())] if s == -1 else s for i, s in enumerate(size)]
    if list(x.shape) == target:
        return aten.view.default(x, target)
    return NotImplemented


def _matmul(a, b):
    if a.dim() == 4 and b.dim() == 4 and a.shape[:2] == b.shape[:2]:
        bh = a.shape[0] * a.shape[1]
        out = aten.bmm.default(torch.reshape(a, [bh, a.shape[2], a.shape[3]]),
                               torch.reshape(b, [bh, b.shape[2], b.shape[3]]))
        return aten.view.default(out, [a.shape[0], a.shape[1], a.shape[2], b.shape[3]])
    if a.dim() == 2 and b.dim() == 3:  # [M,K] @ [B,K,N] = (b^T @ a^T)^T: a linear layer with weight a
        out = aten.linear.default(aten.permute.default(b, [0, 2, 1]), a)  # [B, N, M]
        return aten.permute.default(out, [0, 2, 1])
    return NotImplemented


#: Smallest kernel (= stride) a patch-embedding convolution is rewritten as a linear layer for. Measured on the
#: ``mobile`` CLIP tower's 32x32 patches (int8 -6 %) and the ``fer`` tower's 8x8 ones (+2 % fp32, -3 % int8, a few
#: microseconds: no difference that matters; docs/measured-facts.md); the UDCformer's 4x4 / 2x2 ones were not
#: measured and are left as they are.
PATCH_LINEAR_MIN_KERNEL = 8


def _pair(v) -> list[int]:
    return [int(v)] * 2 if isinstance(v, int) else [int(a) for a in v] * (2 if len(v) == 1 else 1)


def _patch_conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A ViT patch embedding (a conv whose kernel equals its stride: non-overlapping patches) as patchify + linear,
    the same sums: ``y[b, o, i, j] = sum_{c,u,v} w[o, c, u, v] x[b, c, k*i + u, k*j + v]``. XNNPACK runs the conv as an
    indirect GEMM (a pointer per kernel tap); the linear layer is its dense int8/fp32 GEMM. ``mobile`` CLIP tower
    (224 px, 32x32 patches, 384 channels), exported int8 (gemm-int8), 16 interleaved rounds: 3.15 -> 2.89 ms
    (docs/measured-facts.md).
    The weight's reshape reads only a parameter: the int8 quantizer observes it as the linear's weight, and the
    lowering folds it into a constant."""
    if x.dim() != 4 or weight.dim() != 4 or groups != 1:
        return NotImplemented
    o, c, kh, kw = weight.shape
    if (_pair(stride) != [kh, kw] or any(_pair(padding)) or _pair(dilation) != [1, 1]
            or min(kh, kw) < PATCH_LINEAR_MIN_KERNEL or x.shape[2] % kh or x.shape[3] % kw):
        return NotImplemented
    b, gh, gw = x.shape[0], x.shape[2] // kh, x.shape[3] // kw
    p = aten.permute.default(aten.view.default(x, [b, c, gh, kh, gw, kw]), [0, 2, 4, 1, 3, 5])  # [B, gh, gw, C, kh, kw]
    p = torch.reshape(p, [b, gh * gw, c * kh * kw])  # [B, L, C*kh*kw], patches in row-major order
    y = aten.linear.default(p, aten.view.default(weight, [o, c * kh * kw]), bias)  # [B, L, O]
    return aten.permute.default(aten.view.default(y, [b, gh, gw, o]), [0, 3, 1, 2])  # [B, O, gh, gw]


def _full_like(x, fill_value, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return aten.full.default(list(x.shape), fill_value, dtype=dtype or x.dtype, device=x.device)


DECOMPOSITIONS: dict[torch._ops.OpOverload, Callable] = {
    aten.mean.dim: _mean_dim,
    aten.sum.dim_IntList: _sum_dim,
    aten.layer_norm.default: _layer_norm,
    aten.select.int: _select,
    aten.split.Tensor: _split,
    aten.split_with_sizes.default: _split_with_sizes,
    aten.expand.default: _expand,
    aten.matmul.default: _matmul,
    aten.full_like.default: _full_like,
    aten.conv2d.default: _patch_conv,
}

#: Why each op the table rewrites is not delegated as it stands (shown when one still falls back).
REWRITTEN = {
    "native_layer_norm": "XNNPACK has no layer-norm kernel",
    "layer_norm": "XNNPACK has no layer-norm kernel",
    "sum": "XNNPACK has no sum kernel",
    "mean": "XNNPACK lowers mean only over the two inner dims of a 4-D tensor",
    "select_copy": "XNNPACK has no select kernel",
    "split_with_sizes_copy": "XNNPACK has no split kernel",
    "expand_copy": "XNNPACK has no broadcast-copy (expand) kernel",
    "full_like": "XNNPACK has no fill kernel",
    "full": "XNNPACK has no fill kernel",
    "index": "XNNPACK has no gather (index) kernel",
}


#: The lowering's table: the rewrites above, and channel means as 1x1 convolutions (:func:`_mean_dim_lowered`).
LOWERING: dict[torch._ops.OpOverload, Callable] = {**DECOMPOSITIONS, aten.mean.dim: _mean_dim_lowered}

_KEEP_NAMESPACES = {"quantized_decomposed", "torchao"}


def fold_constants(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Evaluate every node that reads only weights/buffers/constants and make it a lifted constant."""
    from torch._export.utils import get_buffer, get_lifted_tensor_constant, get_param
    from torch.export.graph_signature import InputKind, InputSpec, TensorArgument

    gm, sig = ep.graph_module, ep.graph_signature
    user_inputs = set(sig.user_inputs)
    values: dict[torch.fx.Node, object] = {}
    for node in gm.graph.nodes:
        if node.op != "placeholder" or node.name in user_inputs:
            continue
        t = get_param(ep, node)
        if t is None:
            t = get_buffer(ep, node)
        if t is None:
            t = get_lifted_tensor_constant(ep, node)
        if t is not None:
            values[node] = t.detach() if isinstance(t, torch.Tensor) else t

    def const(a):
        return not isinstance(a, torch.fx.Node) or a in values

    folded: list[torch.fx.Node] = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        if torch.Tag.nondeterministic_seeded in node.target.tags or node.target.namespace in _KEEP_NAMESPACES:
            continue  # int8 weights must stay int8 + dequantize (the delegate fuses them), not become floats
        flat = torch.utils._pytree.tree_leaves((node.args, node.kwargs))
        if not all(const(a) for a in flat) or not isinstance(node.meta.get("val"), torch.Tensor):
            continue
        args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: values[n])
        with torch.no_grad():
            values[node] = node.target(*args, **kwargs)
        folded.append(node)
    # replace the folded nodes that something unfolded reads
    frontier = [n for n in folded if any(u not in values for u in n.users)]
    if not frontier:
        return ep
    first_input = next(n for n in gm.graph.nodes if n.op == "placeholder" and n.name in user_inputs)
    new_specs = list(sig.input_specs)
    insert_at = next(i for i, s in enumerate(new_specs) if s.kind == InputKind.USER_INPUT)
    for i, node in enumerate(frontier):
        name = f"_folded_const_{i}"
        with gm.graph.inserting_before(first_input):
            ph = gm.graph.placeholder(name)
        # canonical strides: a size-1 dim may carry any stride, which ExecuTorch would read as a
        # permuted dim order (and XNNPACK then refuses the tensor at run time)
        value = torch.empty(values[node].shape, dtype=values[node].dtype).copy_(values[node])
        ph.meta["val"] = node.meta["val"].fake_mode.from_tensor(value, static_shapes=True)
        node.replace_all_uses_with(ph)
        ep.constants[name] = value
        new_specs.insert(insert_at + i, InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(name), target=name))
    gm.graph.eliminate_dead_code()
    used = {n.name for n in gm.graph.nodes if n.op == "placeholder" and n.users} | user_inputs
    for n in list(gm.graph.nodes):
        if n.op == "placeholder" and n.name not in used:
            gm.graph.erase_node(n)
    new_specs = [s for s in new_specs if s.arg.name in used]
    sig.input_specs[:] = new_specs if isinstance(sig.input_specs, list) else new_specs
    gm.recompile()
    return ep


def decompose(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The rewrites of the table above (linear and conv stay as they are, for the int8 quantizer)."""
    return ep.run_decompositions(DECOMPOSITIONS)


def for_xnnpack(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The lowering's rewrites (:data:`LOWERING`), then constant folding: an ExportedProgram XNNPACK takes whole."""
    return fold_constants(ep.run_decompositions(LOWERING))

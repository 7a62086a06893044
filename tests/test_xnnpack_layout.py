"""benchmarks/xnnpack_layout.py: the layout copies XNNPACK's channels-last pass inserts, attributed to modules."""
from __future__ import annotations

import pytest
import torch
from benchmark_scripts import load_benchmark
from test_quant_graph import ChannelNormConv as NormBetweenConvs  # conv -> channel LayerNorm -> conv


@pytest.fixture(scope="module")
def layout():
    return load_benchmark("xnnpack_layout.py")


def test_copies_are_found_and_attributed(layout):
    """conv -> channel LayerNorm -> conv: the input and output conversions, the norm's constants (weight, bias:
    transposed at run time), and the ``var + eps`` (a number operand: run NCHW, a copy each side) named by module."""
    torch.manual_seed(0)
    s = layout.summarize(layout.capture(NormBetweenConvs().eval(), (torch.randn(1, 3, 10, 10),)))
    groups = {(to, a, b, m): n for (to, a, b, m), n in s["groups"].items()}
    assert groups[("NHWC", "input", "convolution", "input")] == 1  # the image
    assert groups[("NCHW", "convolution", "output", "b")] == 1  # the result
    assert groups[("NHWC", "input", "mul.Tensor", "input")] == 1 and groups[("NHWC", "input", "add.Tensor", "input")] == 1
    assert groups[("NCHW", "convolution", "add.Tensor", "norm")] == 1  # var (a channel-mean conv) -> + eps
    assert groups[("NHWC", "rsqrt", "mul.Tensor", "norm")] == 1
    assert len(s["copies"]) == sum(s["groups"].values()) == s["census"]["layout copy"] == 6
    report = layout.format_report(s, top=3)
    assert "6 layout copies (4 to NHWC, 2 to NCHW)" in report
    assert f"{s['ops']} ops" in report and "... 3 more groups" in report


def test_int8_copies_are_seen_past_quantize_dequantize(layout):
    """In the all-int8 program the copies sit between a dequantize and a quantize: the producer and consumer shown
    are the ops around that pair, and quantize/dequantize are not counted as ops."""
    torch.manual_seed(0)
    s = layout.summarize(layout.capture(NormBetweenConvs().eval(), (torch.randn(1, 3, 10, 10),), "int8"))
    assert s["copies"] and not any("quantize" in c["from_op"] or "quantize" in c["to_op"] for c in s["copies"])
    assert not any("quantize" in op for op in s["census"])
    assert ("NCHW", "convolution", "add.Tensor", "norm") in s["groups"]


def test_nothing_delegated_is_refused(layout):
    with pytest.raises(ValueError, match="nothing of the program was delegated"):
        layout.summarize([])
    with pytest.raises(ValueError, match="fp32 or int8"):
        layout.capture(NormBetweenConvs().eval(), (torch.randn(1, 3, 10, 10),), "fp16")

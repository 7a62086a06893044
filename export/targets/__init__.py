"""One module per export target.

executorch_export  torch.export -> (PT2E int8) -> to_edge_transform_and_lower -> .pte + .bpte
rewrites           graph rewrites that keep every op inside the XNNPACK delegate
delegation         delegated vs fall-back ops of a lowered ExecuTorch program, with reasons
coreml_export      ct.convert(mlprogram, iOS17, FLOAT16) -> .mlpackage, int8/int4 weight compression
onnx_export        torch.onnx dynamo -> .onnx, ONNX Runtime static int8 (QDQ)
"""

"""udc.export: lowering and quantizing the on-device components into ExecuTorch, Core ML and ONNX
bundles (builds on udc.sdk; reads calibration faces through udc.train).

    udc-export lrdif.pt --target executorch --quant int8 -o face.udc     # the CLI (udc.export.cli)
    run_export(ExportRequest(...))                                       # the same from Python (exporter)

options            which target / backend / quant combinations exist, one-line errors for the rest
calibration        real preprocessed faces (a dataset via udc.train.datasets, or the synthetic set)
reference          the PyTorch reference's inputs/outputs per component on those faces
rewrites           graph rewrites that keep every op inside the XNNPACK delegate
quantize           int8 recipes (which layers stay float) and the measured choice between them
executorch_export  torch.export -> (PT2E int8) -> to_edge_transform_and_lower -> .pte + .bpte
coreml_export      ct.convert(mlprogram, iOS17, FLOAT16) -> .mlpackage, int8/int4 weight compression
onnx_export        torch.onnx dynamo -> .onnx, ONNX Runtime static int8 (QDQ)
fp16               fp16 range check and fp16 emulation (Core ML parity off macOS)
delegation         delegated vs fall-back ops of a lowered ExecuTorch program, with reasons
bundle_writer      manifest.json (the bundle format itself is udc.sdk.bundle)
exporter           one export end to end, atomically
"""

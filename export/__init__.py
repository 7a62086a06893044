"""udc.export: lowering and quantizing the on-device components into ExecuTorch, Core ML and ONNX
bundles (builds on udc.sdk; reads calibration faces through udc.train).

    udc-export lrdif.pt --target executorch --quant int8 -o face.udc     # the CLI (udc.export.cli)
    run_export(ExportRequest(...))                                       # the same from Python (exporter)

options            which target / backend / quant combinations exist, one-line errors for the rest
reference          the PyTorch reference's inputs/outputs per component on the calibration faces
artifact           what exporting one component produces, whatever the target
quant/             calibration faces, int8 recipes (which layers stay float) and the measured choice, fp16 checks
targets/           one module per target: ExecuTorch (+ XNNPACK rewrites, delegation report), Core ML, ONNX
bundle_writer      manifest.json (the bundle format itself is udc.sdk.runtime.bundle)
exporter           one export end to end, atomically
"""

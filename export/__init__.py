"""udc.export: lowering and quantizing the on-device components into ExecuTorch, Core ML and ONNX
bundles (builds on udc.sdk).

Not built yet: see the open issue "Export: udc-export builds ExecuTorch, Core ML and ONNX bundles".
"""

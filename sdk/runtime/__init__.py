"""A bundle on disk, verified, run on this host.

bundle       the bundle format: manifest, checksums, ``load_bundle`` (fails closed on a mismatch)
runners      ``load(path)``: one call interface for .pte (ExecuTorch), .onnx (ONNX Runtime), .mlpackage (Core ML)
*_runtime    the runner of each format; ``torch_runtime`` wraps the PyTorch reference
chain        the four on-device components run as the app runs them
reference    the PyTorch reference of a bundle (its checkpoint)
recognizer   ``Recognizer``: image in, expression out, on any runtime
"""

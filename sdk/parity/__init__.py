"""A bundle against its PyTorch reference, failing closed (NaN, inf, empty input or a self-comparison fail).

metrics ``compare`` (the metrics) and ``check`` (the thresholds per quantisation)
data    the faces a parity run uses (real held-out faces or synthetic ones)
run     one parity run of a bundle over those faces, per component and end to end
"""

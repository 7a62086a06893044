"""Quantisation: the faces that calibrate it and the choice of what stays float.

calibration  real preprocessed faces (a dataset via udc.train.datasets, or the synthetic set), two disjoint sets
recipes      int8 recipes (which layers stay float) and the measured choice between them
fp16         fp16 range check and fp16 emulation (Core ML parity off macOS)
"""

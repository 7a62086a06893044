"""udc.train: datasets, the UDC degradation simulator and LRDif stage-1/2 training (builds on udc.sdk).

Not built yet: see the open issues "Faces, datasets and the UDC degradation simulator" and
"Training: LRDif stage 1 and stage 2".
"""

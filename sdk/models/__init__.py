"""LRDif's networks, one module per idea: CLIP towers, FPEN, EPR diffusion, DT/DIL networks, UDCformer."""

"""The LRDif networks (seed 001): CLIP image branch, FPEN, the DT- and DIL-networks, UDCformer, the
diffusion denoiser, and ``model.LRDif`` / ``model.build_model`` that put them together."""

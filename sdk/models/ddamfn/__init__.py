"""The DDAMFN baseline (seed 003): MixedFeatureNet backbone (``mfn``), dual-direction attention (``ddan``),
the GCA head (``gca``), and ``model.DDAMFN``."""

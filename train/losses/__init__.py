"""The training losses. ``lrdif``: cross-entropy (eq. 13), the EPR KL term (eq. 17), their sum (eq. 18);
``fer``: DDAMFN's attention loss, the GCA auxiliary classifier, the intensity-aware loss (seed 002)."""

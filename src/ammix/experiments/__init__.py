"""The paper's protocols: toy feature maps, sweeps (long-tailed, coarse-to-fine, ablations), reports."""

"""dreamerv2-torch: DreamerV2 (Hafner et al., ICLR 2021) in PyTorch."""

__version__ = "0.1.0"

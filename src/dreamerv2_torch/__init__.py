"""dreamerv2-torch: DreamerV2 (Hafner et al., ICLR 2021) in PyTorch.

Python API: ``train(env_or_factory, config)`` (see `api.py`), ``Config`` and ``resolve(presets,
overrides)``. ``train`` is imported on first use, so importing the package does not import torch.
"""

from typing import Any

from .config import Config
from .presets import resolve

__version__ = "0.1.0"
__all__ = ["Config", "resolve", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from .api import train

        return train
    raise AttributeError(f"module 'dreamerv2_torch' has no attribute {name!r}")

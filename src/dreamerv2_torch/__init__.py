"""dreamerv2-torch: DreamerV2 (Hafner et al., ICLR 2021) in PyTorch.

Python API: ``train(env_or_factory, config)`` (see `api.py`), ``load(logdir)`` → a trained agent
with ``act(obs, state)`` (`trained.py`), ``evaluate(logdir, env=..., episodes=...)``
(`evaluation.py`), ``Config`` and ``resolve(presets, overrides)``. These are imported on first use,
so importing the package does not import torch.
"""

from typing import Any

from .config import Config
from .presets import resolve

__version__ = "0.1.0"
__all__ = ["Config", "evaluate", "load", "resolve", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from .api import train

        return train
    if name == "load":
        from .trained import load

        return load
    if name == "evaluate":
        from .evaluation import evaluate

        return evaluate  # (the module is `evaluation`: a submodule would shadow this name)
    raise AttributeError(f"module 'dreamerv2_torch' has no attribute {name!r}")

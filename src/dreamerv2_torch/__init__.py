"""dreamerv2-torch: DreamerV2 (Hafner et al., ICLR 2021) in PyTorch.

Python API: ``train(env_or_factory, config)`` (see `api.py`), ``load(logdir)`` → a trained agent
with ``act(obs, state)`` (`trained.py`), ``evaluate(logdir, env=..., episodes=...)``
(`evaluation.py`), ``Config`` and ``resolve(presets, overrides)``. These are imported on first use,
so importing the package does not import torch.
"""

import os
from typing import Any

# issue 8: OpenMP threads that sleep while they wait instead of spinning. With torch's default
# (spin, one thread per core) an update on a 2-core machine with one other busy process took over
# 20 s instead of 1.6 s (docs/performance.md). It must be set before torch loads libgomp, so here,
# on the package's first import; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import Config  # noqa: E402
from .presets import resolve  # noqa: E402

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

"""Optional experiment tracking: Weights & Biases mirrors of what `logger.Logger` writes (issue 8).

`--wandb online` or `--wandb offline` adds a `WandbTracker` to the run's logger: at every write
it logs the same scalars (under the same grouped names as TensorBoard: ``train/``, ``eval/``,
``world_model/``, ``actor_critic/``, ``replay/``) and each video as the mp4 the logger wrote, at
x = frames. The wandb run lives in ``<logdir>/wandb``; its id is derived from the logdir, so a
resumed training continues the same wandb run. `wandb` is not a dependency: without it installed
the run stops before anything is written, with the pip command to fix it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

INSTALL = "--wandb needs the wandb package: pip install wandb"


def make_trackers(config: Any, logdir: Path) -> list:
    """The trackers the config asks for (an ImportError naming the pip command if missing)."""
    if getattr(config, "wandb", "off") == "off":
        return []
    return [WandbTracker(config, logdir, config.wandb)]


def check_available(config: Any) -> None:
    """Raise the install hint early (before the logdir is touched) when a tracker is missing."""
    if getattr(config, "wandb", "off") != "off":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ImportError(INSTALL) from None


class WandbTracker:
    def __init__(self, config: Any, logdir: Path, mode: str = "online"):
        try:
            import wandb
        except ImportError:
            raise ImportError(INSTALL) from None
        from .config import to_dict

        self._wandb = wandb
        logdir = Path(logdir).resolve()
        run_id = hashlib.sha1(str(logdir).encode()).hexdigest()[:16]
        self.run = wandb.init(project="dreamerv2-torch", name=logdir.name, id=run_id,
                              resume="allow", dir=str(logdir), mode=mode,
                              config=to_dict(config))

    def write(self, step: int, scalars: dict[str, float], videos: dict[str, Path],
              fps: int) -> None:
        data: dict[str, Any] = dict(scalars)
        for name, path in videos.items():
            data[name] = self._wandb.Video(str(path), fps=fps, format="mp4")
        if data:
            self.run.log(data, step=int(step))

    def close(self) -> None:
        self.run.finish()

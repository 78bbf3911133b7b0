"""Opening a run directory: resume checks before anything is written.

A rerun of the same command on a logdir resumes it. Anything that would make that unsafe — a
different config (other than the fields in `presets.RESUMABLE`), an unreadable config.yaml or
checkpoint, or a non-empty directory that holds no run — is one clear error raised before the
directory is touched, so nothing saved is lost or overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import checkpoint, presets
from .config import Config

CONFIG = "config.yaml"


@dataclass
class RunDir:
    logdir: Path
    config: Config
    checkpoint: dict | None  # the loaded checkpoint when resuming
    resumed: bool

    def commit(self) -> None:
        """Create the directory and write the resolved config (after every check passed)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        presets.save(self.config, self.logdir / CONFIG)


def _incompatible(logdir: Path, diffs: list[str], source: str) -> presets.ConfigError:
    lines = "\n  ".join(diffs)
    return presets.ConfigError(
        f"{logdir} holds a run whose {source} differs from the given config:\n  {lines}\n"
        f"Rerun with the same presets and flags (the saved ones are in {logdir / CONFIG}), "
        "or choose a new --logdir. Only these may change on resume: "
        f"{', '.join(sorted(presets.RESUMABLE))}.")


def open_rundir(config: Config) -> RunDir:
    """Validate `config.logdir` for a start or a resume; raises ConfigError or CheckpointError."""
    if not config.logdir:
        raise presets.ConfigError("no logdir given: pass --logdir DIR")
    logdir = Path(config.logdir).expanduser()
    if logdir.exists() and not logdir.is_dir():
        raise presets.ConfigError(f"logdir {logdir} exists and is not a directory")
    saved_path = logdir / CONFIG
    ckpt_path = checkpoint.find(logdir) if logdir.exists() else None
    if saved_path.exists():
        diffs = presets.differences(presets.load(saved_path), config)
        if diffs:
            raise _incompatible(logdir, diffs, CONFIG)
    elif logdir.exists() and any(logdir.iterdir()):
        raise presets.ConfigError(
            f"logdir {logdir} is not empty but holds no dreamerv2-torch run ({CONFIG} missing); "
            "choose an empty or new directory")
    state = checkpoint.load(ckpt_path) if ckpt_path else None
    if state is not None:
        saved = presets.from_tree(state["config"])
        diffs = presets.differences(saved, config)
        if diffs:
            raise _incompatible(logdir, diffs, f"checkpoint ({ckpt_path.name})")
    return RunDir(logdir, config, state, resumed=state is not None)


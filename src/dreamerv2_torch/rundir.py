"""Opening a run directory: resume checks before anything is written.

A rerun of the same command on a logdir resumes it. Anything that would make that unsafe — a
different config (other than the fields in `presets.RESUMABLE`), an unreadable config.yaml or
checkpoint, or a non-empty directory that holds no run — is one clear error raised before the
directory is touched, so nothing saved is lost or overwritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint, presets
from .config import Config

CONFIG = "config.yaml"
LOGS = ("metrics.jsonl", "scores.jsonl")  # appended to; a checkpoint records their lengths


def log_sizes(logdir: Path) -> dict[str, int]:
    """Byte lengths of the JSON-lines logs, recorded in every checkpoint."""
    return {name: (logdir / name).stat().st_size if (logdir / name).exists() else 0
            for name in LOGS}


def truncate_logs(logdir: Path, sizes: dict[str, int]) -> int:
    """Cut the logs back to the lengths a checkpoint recorded: the lines written after it (by a
    run that was then killed) describe a timeline the resume replaces. Returns the bytes cut."""
    cut = 0
    for name, size in sizes.items():
        path = logdir / name
        if path.exists() and path.stat().st_size > int(size):
            cut += path.stat().st_size - int(size)
            with open(path, "r+b") as f:
                f.truncate(int(size))
    return cut


class RunError(RuntimeError):
    """A run that cannot go on: a logdir that cannot be written, updates that keep being skipped."""


def remove_temporary(logdir: Path) -> None:
    """Delete the temporary files of interrupted writes (`*.tmp`, `.*.part*`) under `logdir`."""
    if not logdir.is_dir():
        return
    for path in logdir.rglob("*"):
        if path.name.endswith(".tmp") or (path.name.startswith(".") and ".part" in path.name):
            path.unlink(missing_ok=True)


@dataclass
class RunDir:
    logdir: Path
    config: Config
    checkpoint: dict | None  # the loaded checkpoint when resuming
    resumed: bool
    unreadable: Path | None = None  # a corrupt checkpoint.pt that was passed over

    def commit(self) -> None:
        """Create the directory and write the resolved config (after every check passed)."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        remove_temporary(self.logdir)  # left by a kill -9
        if self.unreadable is not None:  # keep it for inspection; the next save must not rotate
            os.replace(self.unreadable, self.unreadable.with_name(self.unreadable.name + ".bad"))
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
    if saved_path.exists():
        try:
            saved = presets.load(saved_path)
        except (OSError, ValueError, TypeError) as error:  # binary, not YAML, unknown keys, ...
            first = (str(error).splitlines() or [""])[0]
            raise presets.ConfigError(
                f"{saved_path} cannot be read as a run config ({type(error).__name__}: {first}); "
                "restore it, or choose a new --logdir") from None
        diffs = presets.differences(saved, config)
        if diffs:
            raise _incompatible(logdir, diffs, CONFIG)
    elif logdir.exists() and any(logdir.iterdir()):
        raise presets.ConfigError(
            f"logdir {logdir} is not empty but holds no dreamerv2-torch run ({CONFIG} missing); "
            "choose an empty or new directory")
    state, ckpt_path, unreadable = checkpoint.load_latest(logdir)
    if state is not None:
        saved = presets.from_tree(state["config"])
        diffs = presets.differences(saved, config)
        if diffs:
            raise _incompatible(logdir, diffs, f"checkpoint ({ckpt_path.name})")
    return RunDir(logdir, config, state, resumed=state is not None, unreadable=unreadable)


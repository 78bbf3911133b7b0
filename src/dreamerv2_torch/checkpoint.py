"""Atomic checkpoints that resume exactly (spec §3.4, §9 item 23; better than the official code).

A checkpoint is one `torch.save` file holding only tensors and plain Python values, so it loads with
`torch.load(path, weights_only=True)`: format version, the resolved config, the step counter and
loop counters, agent weights with slow critic and optimiser states, replay sampler states and every
RNG state. It is written to a temporary file, flushed to disk and renamed over `checkpoint.pt`; the
previous one is kept as `checkpoint.prev.pt`, so a crash at any moment leaves a loadable file, and
an unreadable `checkpoint.pt` falls back to it with a warning. A failed write (disk full, read-only
logdir) removes its temporary file.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

VERSION = 1
NAME = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"
REQUIRED = {"config", "step", "updates", "pretrained", "every", "agent", "train_replay",
            "eval_replay", "rng", "loop_rng"}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not belong to this package/version."""


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_gauss": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def generator_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def set_generator_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def to_torch(tree):
    """numpy arrays in nested dicts/lists as tensors (a `weights_only` load reads tensors)."""
    if isinstance(tree, (np.ndarray, np.generic)):
        array = np.asarray(tree)  # (np.ascontiguousarray would make a 0-d array 1-d)
        return torch.from_numpy(array if array.flags.c_contiguous else array.copy())
    if isinstance(tree, dict):
        return {k: to_torch(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [to_torch(v) for v in tree]
    return tree


def to_numpy(tree):
    """The inverse of `to_torch`."""
    if isinstance(tree, torch.Tensor):
        return tree.numpy()
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_numpy(v) for v in tree]
    return tree


def to_device(tree, device):
    """Tensors in nested dicts/lists/tuples moved to `device` (tuples stay tuples)."""
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_device(v, device) for v in tree)
    return tree


def save(logdir: Path, payload: dict) -> Path:
    """Write `payload` atomically as logdir/checkpoint.pt (keeping the previous one)."""
    path = logdir / NAME
    tmp = logdir / (NAME + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:  # disk full, read-only, a second Ctrl-C: the last checkpoint stays
        tmp.unlink(missing_ok=True)
        raise
    if path.exists():
        os.replace(path, logdir / PREVIOUS)
    os.replace(tmp, path)
    return path


def load(path: Path) -> dict:
    """Read a checkpoint (weights_only); a clear CheckpointError if it is corrupt or foreign."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a dreamerv2-torch checkpoint of format {VERSION}")
    missing = sorted(REQUIRED - set(data))
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return data


def load_latest(logdir: Path) -> tuple[dict | None, Path | None, Path | None]:
    """(state, its path, an unreadable newer checkpoint or None) for the run in `logdir`.

    An unreadable checkpoint.pt (truncated, empty, foreign) falls back to checkpoint.prev.pt with a
    warning; the error is raised only if neither can be read.
    """
    path = find(logdir) if logdir.is_dir() else None
    if path is None:
        return None, None, None
    try:
        return load(path), path, None
    except CheckpointError as error:
        previous = logdir / PREVIOUS
        if path == previous or not previous.exists():
            raise
        try:
            state = load(previous)
        except CheckpointError as second:
            raise CheckpointError(f"{error}; and {second}") from None
        warnings.warn(f"{error}; resuming from {PREVIOUS} instead (step {state['step']}): the "
                      "work after it is lost", RuntimeWarning, stacklevel=2)
        return state, previous, path


def find(logdir: Path) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run."""
    path = logdir / NAME
    if path.exists():
        return path
    # Only the previous one exists if a crash hit between the two renames of `save`.
    previous = logdir / PREVIOUS
    return previous if previous.exists() else None

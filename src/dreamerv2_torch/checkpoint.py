"""Atomic checkpoints that resume exactly (spec §3.4, §9 item 23; better than the official code).

A checkpoint is one `torch.save` file holding only tensors and plain Python values, so it loads with
`torch.load(path, weights_only=True)`: format version, the resolved config, the step counter and
loop counters, agent weights with slow critic and optimiser states, replay sampler states and every
RNG state. It is written to a temporary file, flushed to disk and renamed over `checkpoint.pt`; the
previous one is kept as `checkpoint.prev.pt`, so a crash at any moment leaves a loadable file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

VERSION = 1
NAME = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


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


def save(logdir: Path, payload: dict) -> Path:
    """Write `payload` atomically as logdir/checkpoint.pt (keeping the previous one)."""
    path = logdir / NAME
    tmp = logdir / (NAME + ".tmp")
    with open(tmp, "wb") as f:
        torch.save({"version": VERSION, **payload}, f)
        f.flush()
        os.fsync(f.fileno())
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
    return data


def find(logdir: Path) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run."""
    path = logdir / NAME
    if path.exists():
        return path
    # Only the previous one exists if a crash hit between the two renames of `save`.
    previous = logdir / PREVIOUS
    return previous if previous.exists() else None

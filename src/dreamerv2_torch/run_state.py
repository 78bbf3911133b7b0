"""What a run's checkpoint holds and how a resume continues it (spec §3.4; issue 9).

`save` writes, besides weights and counters, the eval schedule (a stop mid-phase continues it),
the env states, unfinished episodes and policy state (a stop resumes mid-episode), the restart
counter that makes new env seeds, and the log lengths that a resume cuts back to; `restore` loads
all of it into a `loop.Loop`. The file format (atomic write, fallback to the previous file) is
`checkpoint.py`'s; this module owns the contents. docs/parity.md lists what the official code
does not keep.
"""

from __future__ import annotations

import time

from . import checkpoint, rundir
from .config import to_dict
from .prefetch import DevicePrefetch


def save_by_the_clock(loop) -> None:
    """A checkpoint every `checkpoint_every` minutes (called where the driver state is whole)."""
    every = loop.config.checkpoint_every * 60
    if every and time.monotonic() - loop.last_save >= every:
        loop.save()


def stored(loop) -> int:
    """Episode files on disk (train and eval): a restart with a different count than its
    checkpoint's must not replay the checkpoint's env streams (see `restore`)."""
    return loop.train_replay.stats["total_episodes"] + loop.eval_replay.stats["total_episodes"]


def save(loop) -> None:
    """A checkpoint of everything a resume needs, at a point where the drivers are whole."""
    loop.write()  # scalars added so far are logged before the log sizes are recorded
    envs = {"train": loop.train_envs.get_states(),
            "eval": loop.eval_env.get_states() if loop.eval_env else []}
    if loop.stop.flag:  # a stop: envs that cannot save their state cannot continue their
        for i, state in enumerate(envs["train"]):  # episode, so keep what it has (a cut one)
            episode = loop.train_driver.take_unfinished(i) if state is None else None
            if episode is not None:
                loop.train_replay.add_episode(episode)
    checkpoint.save(loop.logdir, {
        "config": to_dict(loop.config), "step": loop.step, "updates": loop.updates,
        "pretrained": loop.pretrained,
        "every": {k: v.last for k, v in loop.every.items()},
        "agent": loop.agent.state_dict(),
        "train_replay": (loop.dataset.resume_state()  # issue 11: not the prefetched one
                         if isinstance(loop.dataset, DevicePrefetch)
                         else loop.train_replay.state_dict()),
        "eval_replay": loop.eval_replay.state_dict(),
        "rng": checkpoint.rng_state(), "loop_rng": checkpoint.generator_state(loop.rng),
        "crafter": loop.crafter,
        # issue 9: streams, the unfinished episodes, the eval schedule, the log lengths.
        "restarts": loop.restarts, "stored": stored(loop),
        "env_states": checkpoint.to_torch(envs),
        "driver": checkpoint.to_torch(loop.train_driver.state_dict()),
        "policy_state": loop.train_driver.policy_state,
        "last_eval": loop.last_eval, "eval_done": loop.eval_done,
        "dropped": loop.train_driver.dropped, "logs": rundir.log_sizes(loop.logdir),
        # issue 11: updates due and not yet run (overlap), the collector's random stream.
        "owed": list(loop.owed),
        "overlap_rng": loop.overlap.generator.get_state() if loop.overlap else None,
    })
    loop.last_save = time.monotonic()


def restore(loop, state: dict) -> None:
    """Load a checkpoint. Its env streams, unfinished episodes and random-policy RNG continue
    only if no episode was stored since it was written (else they would repeat stored
    experience: the envs then keep the fresh seeds they were built with)."""
    loop.step, loop.updates = int(state["step"]), int(state["updates"])
    loop.pretrained = bool(state["pretrained"])
    for key, last in state["every"].items():
        loop.every[key].last = last
    loop.agent.load_state_dict(state["agent"])
    loop.train_replay.load_state_dict(state["train_replay"])
    loop.eval_replay.load_state_dict(state["eval_replay"])
    checkpoint.set_rng_state(state["rng"])
    if "crafter" in state:  # absent in checkpoints written before it was added
        crafter = state["crafter"]
        loop.crafter = {"episodes": int(crafter["episodes"]),
                        "counts": {k: int(v) for k, v in crafter["counts"].items()}}
    loop.last_write = (time.time(), loop.frames)  # the first fps after a resume
    loop.restarts = int(state.get("restarts", 0)) + 1
    loop.last_eval, loop.eval_done = state.get("last_eval"), int(state.get("eval_done", 0))
    loop.train_driver.dropped = int(state.get("dropped", 0))
    loop.skipped_mark = ({}, loop.updates)
    loop.owed = [int(step) for step in state.get("owed", [])]
    same = state.get("stored") == stored(loop) and "env_states" in state
    how = "fresh env streams"
    if same:
        checkpoint.set_generator_state(loop.rng, state["loop_rng"])
        envs = checkpoint.to_numpy(state["env_states"])
        loop.train_envs.set_states(envs["train"])
        if loop.eval_env is not None and len(envs["eval"]) == loop.eval_env.num_envs:
            loop.eval_env.set_states(envs["eval"])
        driver = checkpoint.to_numpy(state["driver"])
        driver = [d if s is not None else None for d, s in zip(driver, envs["train"])]
        policy = checkpoint.to_device(state["policy_state"], loop.agent.device)
        loop.train_driver.load_state_dict(driver, policy)
        # Envs without a savable state (DMC, Crafter, ...) start a fresh stream on every resume.
        saved = sum(s is not None for s in envs["train"])
        continued = sum(d is not None for d in driver)
        how = (f"{saved} of {len(driver)} env streams continued, "
               f"{continued} unfinished episode(s)")
        if loop.overlap is not None and state.get("overlap_rng") is not None:
            loop.overlap.generator.set_state(state["overlap_rng"])
    elif loop.overlap is not None:
        loop.overlap.reseed(loop.restarts, stored(loop))
    print(f"Resumed from step {loop.step} ({loop.frames} frames; restart {loop.restarts}, "
          f"{how}).", flush=True)

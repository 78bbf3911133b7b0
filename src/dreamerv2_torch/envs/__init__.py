"""Environment suites behind one dict-observation API (see `base.py`); `make_env` builds them.

Spec §5. Task strings (the official ``<suite>_<name>`` scheme, plus ``gym:`` and ``dummy_``):

* ``atari_<game>``: every ROM bundled with ale-py, snake_case (``atari_pong``,
  ``atari_james_bond``);
* ``dmc_<domain>_<task>``: every dm_control suite task (``dmc_walker_walk``, ``dmc_cup_catch``);
* ``crafter_reward``, ``crafter_noreward``;
* ``minatar_<game>``: asterix, breakout, freeway, seaquest, space_invaders;
* ``gym:<GymnasiumId>`` (or ``gym:<module>:<id>`` to import a registering module first);
* ``dummy_<name>``: discrete, continuous, vector, reveal (`dummy.py`, for tests).

Suite packages are imported only when their env is built, so this package imports without them.
"""

from __future__ import annotations

import difflib
import pathlib

from .base import (
    FLAG_SPACES,
    ActionRepeat,
    Env,
    NormalizeAction,
    Obs,
    Space,
    TimeLimit,
    Wrapper,
    check_one_hot,
)

SUITES = ("atari", "dmc", "crafter", "minatar", "gym", "dummy")
MODES = ("train", "eval")


def list_tasks(suite: str) -> list[str]:
    """The task names of one suite (``gym`` lists the registered Gymnasium ids)."""
    if suite == "atari":
        from .atari import list_games

        return [f"atari_{game}" for game in list_games()]
    if suite == "dmc":
        from .dmc import list_tasks as dmc_tasks

        return [f"dmc_{task}" for task in dmc_tasks()]
    if suite == "crafter":
        return ["crafter_reward", "crafter_noreward"]
    if suite == "minatar":
        from .minatar import GAMES

        return [f"minatar_{game}" for game in GAMES]
    if suite == "gym":
        import gymnasium

        return [f"gym:{env_id}" for env_id in sorted(gymnasium.registry)]
    if suite == "dummy":
        from .dummy import NAMES

        return [f"dummy_{name}" for name in NAMES]
    raise ValueError(_unknown("suite", suite, list(SUITES)))


def make_env(
    task: str,
    *,
    seed: int,
    mode: str = "train",
    action_repeat: int = 1,
    time_limit: int = 0,
    size: tuple[int, int] = (64, 64),
    grayscale: bool = True,
    all_actions: bool = True,
    camera: int = -1,
    logdir: pathlib.Path | None = None,
    pixels: bool = True,
) -> Env:
    """Builds the env of ``task`` with every wrapper applied (one-hot or [-1, 1] actions, repeat,
    time limit).

    Args:
        task: a task string, see the module docstring.
        seed: seeds the env's randomness (env i of a run gets ``seed + i``).
        mode: ``train`` or ``eval``; Crafter's noreward task is rewarded in eval, and only train
            envs write Crafter stats.
        action_repeat: policy step = this many env steps (Atari frame skip, DMC physics steps);
            Crafter requires 1.
        time_limit: policy steps per episode before ``is_last`` without ``is_terminal``; 0 = off.
        size: (height, width) of ``image`` (MinAtar ignores it: always 10 x 10).
        grayscale: Atari only: (H, W, 1) grayscale instead of (H, W, 3) RGB.
        all_actions: Atari only: the full 18 actions instead of the game's minimal set.
        camera: DMC only: camera id, -1 = the official per-domain default.
        logdir: Crafter only: train envs write ``logdir/crafter/stats.jsonl``.
        pixels: DMC only: False skips rendering and the ``image`` key (proprio runs).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if action_repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
    size = (int(size[0]), int(size[1]))
    suite, sep, name = task.partition(":" if task.startswith("gym:") else "_")
    if suite not in SUITES or not sep or not name or (suite == "gym") != (sep == ":"):
        prefixes = [f"{s}_" for s in SUITES if s != "gym"] + ["gym:"]
        close = difflib.get_close_matches(suite, SUITES, n=2)
        hint = f" Did you mean the suite {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown task {task!r}: a task starts with one of {', '.join(prefixes)} "
            f"followed by a name (e.g. atari_pong, dmc_walker_walk, gym:CartPole-v1).{hint}"
        )
    # Atari, DMC and gym repeat inside their adapter (one image per policy step); the rest here.
    repeat_here = 1
    if suite == "atari":
        from .atari import Atari

        env: Env = Atari(
            name,
            seed=seed,
            action_repeat=action_repeat,
            size=size,
            grayscale=grayscale,
            all_actions=all_actions,
        )
    elif suite == "dmc":
        from .dmc import DMC

        env = DMC(
            name, seed=seed, action_repeat=action_repeat, size=size, camera=camera, pixels=pixels
        )
    elif suite == "crafter":
        from .crafter import Crafter

        if name not in ("reward", "noreward"):
            raise ValueError(_unknown("Crafter task", task, list_tasks("crafter")))
        if action_repeat != 1:
            raise ValueError(f"Crafter needs action_repeat 1 (spec §5.3), got {action_repeat}")
        reward = name == "reward" or mode == "eval"
        env = Crafter(
            seed=seed, reward=reward, size=size, logdir=logdir if mode == "train" else None
        )
    elif suite == "minatar":
        from .minatar import MinAtar

        env, repeat_here = MinAtar(name, seed=seed), action_repeat
    elif suite == "gym":
        from .gym import Gymnasium, make_gymnasium

        env = Gymnasium(make_gymnasium(name), seed=seed, size=size, action_repeat=action_repeat)
    else:
        from .dummy import NAMES, DummyEnv

        if name not in NAMES:
            raise ValueError(_unknown("dummy env", task, list_tasks("dummy")))
        env, repeat_here = DummyEnv(name, seed=seed, size=size), action_repeat
    if repeat_here > 1:
        env = ActionRepeat(env, repeat_here)
    if not env.act_space["action"].discrete:
        env = NormalizeAction(env)
    return TimeLimit(env, time_limit)


def _unknown(what: str, name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Valid: {', '.join(valid)}"


__all__ = [
    "FLAG_SPACES",
    "MODES",
    "SUITES",
    "ActionRepeat",
    "Env",
    "NormalizeAction",
    "Obs",
    "Space",
    "TimeLimit",
    "Wrapper",
    "check_one_hot",
    "list_tasks",
    "make_env",
]

"""Crafter (Hafner 2021) and its score (spec §5.3).

Official counterpart: ``Crafter`` in ``danijar/dreamerv2:dreamerv2/common/envs.py``. As there:

* ``crafter.Env(reward=...)``; ``crafter_reward`` is rewarded, ``crafter_noreward`` is unrewarded
  in train mode only (eval envs are always rewarded, so eval returns stay comparable);
* ``image`` uint8 (H, W, 3); 17 one-hot actions; ``action_repeat`` must be 1;
* ``is_last`` = Crafter's ``done`` (death or its own 10000-step limit), ``is_terminal`` =
  ``info['discount'] == 0`` (death only);
* ``log_reward`` (float32, the true reward even when the env is unrewarded) and
  ``log_achievement_<name>`` (int32 counters) for the 22 achievements, logged but not modelled;
* train envs with a logdir are wrapped in ``crafter.Recorder`` writing
  ``logdir/crafter/stats.jsonl`` (no videos, no episodes).

Deliberate difference: ``seed`` is passed to ``crafter.Env`` (the official code passed ``None``),
so worlds are reproducible per seed. ``crafter_score`` and ``crafter_success_rates`` implement the
Crafter paper's score and need no crafter install.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Iterable, Mapping

import numpy as np

from .base import FLAG_SPACES, Obs, Space, check_one_hot, require, step_obs

# crafter 1.8.3's data.yaml order; a test checks it against crafter.constants.achievements.
ACHIEVEMENTS = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant",
    "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe", "make_stone_sword",
    "make_wood_pickaxe", "make_wood_sword", "place_furnace", "place_plant", "place_stone",
    "place_table", "wake_up",
)  # fmt: skip


class Crafter:
    """The Crafter world with DreamerV2's observation keys."""

    def __init__(
        self,
        *,
        seed: int,
        reward: bool = True,
        size: tuple[int, int] = (64, 64),
        logdir: pathlib.Path | None = None,
    ):
        crafter = require("crafter", "crafter")
        # crafter's size is (width, height); ours is (height, width).
        env = crafter.Env(size=(size[1], size[0]), reward=reward, seed=seed)
        if logdir is not None:
            directory = pathlib.Path(logdir) / "crafter"
            env = crafter.Recorder(
                env, directory, save_stats=True, save_video=False, save_episode=False
            )
        self._env = env
        self._size = (int(size[0]), int(size[1]))
        self._num_actions = int(env.action_space.n)

    @property
    def obs_space(self) -> dict[str, Space]:
        spaces = {
            "image": Space((*self._size, 3), np.uint8, 0, 255),
            "log_reward": Space((), np.float32),
            **{f"log_achievement_{k}": Space((), np.int32, 0) for k in ACHIEVEMENTS},
        }
        return {**spaces, **FLAG_SPACES}

    @property
    def act_space(self) -> dict[str, Space]:
        return {"action": Space((self._num_actions,), np.float32, 0.0, 1.0, discrete=True)}

    def reset(self) -> Obs:
        image = self._env.reset()
        obs = {"image": image, "log_reward": np.array(0.0, np.float32)}
        obs.update({f"log_achievement_{k}": np.array(0, np.int32) for k in ACHIEVEMENTS})
        return {**obs, **step_obs(0.0, is_first=True, is_last=False, is_terminal=False)}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        index = check_one_hot(action["action"], self._num_actions)
        image, reward, done, info = self._env.step(index)
        obs = {"image": image, "log_reward": np.array(info["reward"], np.float32)}
        achievements = info["achievements"]
        obs.update(
            {f"log_achievement_{k}": np.array(achievements[k], np.int32) for k in ACHIEVEMENTS}
        )
        flags = step_obs(
            reward, is_first=False, is_last=bool(done), is_terminal=info["discount"] == 0
        )
        return {**obs, **flags}

    def close(self) -> None:
        pass  # crafter holds no external resources; the Recorder flushes after every episode


def _achievement_name(key: str) -> str | None:
    for prefix in ("log_achievement_", "achievement_", ""):
        if key.startswith(prefix) and key[len(prefix) :] in ACHIEVEMENTS:
            return key[len(prefix) :]
    return None


def crafter_success_rates(episodes: Iterable[Mapping[str, object]]) -> dict[str, float]:
    """Per achievement, the percentage of episodes in which it was unlocked at least once.

    An episode is a mapping whose achievement entries are named ``<name>``, ``achievement_<name>``
    (a line of Crafter's stats.jsonl) or ``log_achievement_<name>`` (an episode from replay, an
    array of counters over time); an entry counts as unlocked when its maximum is positive.
    """
    counts = dict.fromkeys(ACHIEVEMENTS, 0)
    total = 0
    for episode in episodes:
        total += 1
        for key, value in episode.items():
            name = _achievement_name(key)
            if name is not None and np.max(np.asarray(value)) > 0:
                counts[name] += 1
    if total == 0:
        raise ValueError("crafter_success_rates needs at least one episode")
    return {name: 100.0 * count / total for name, count in counts.items()}


def crafter_score(success_rates_percent: Mapping[str, float]) -> float:
    """The Crafter paper's score: exp(mean_i ln(1 + s_i)) - 1 over the 22 success rates s_i in %.

    Keys may be ``<name>``, ``achievement_<name>`` or ``log_achievement_<name>``; all 22 are needed.
    """
    rates = {}
    for key, value in success_rates_percent.items():
        name = _achievement_name(key)
        if name is None:
            raise ValueError(
                f"{key!r} is not a Crafter achievement; valid: {', '.join(ACHIEVEMENTS)}"
            )
        if not 0.0 <= value <= 100.0:
            raise ValueError(
                f"success rate of {name} must be a percentage in [0, 100], got {value}"
            )
        rates[name] = float(value)
    missing = sorted(set(ACHIEVEMENTS) - set(rates))
    if missing:
        raise ValueError(f"crafter_score needs all 22 achievements; missing: {', '.join(missing)}")
    return math.exp(sum(math.log1p(rates[k]) for k in ACHIEVEMENTS) / len(ACHIEVEMENTS)) - 1.0

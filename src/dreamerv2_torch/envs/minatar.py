"""MinAtar (Young & Tian 2019) through its gymnasium ids; not part of the official code or spec.

Our choices, all to follow the MinAtar paper's own protocol:

* ids ``MinAtar/<Game>-v1`` from ``minatar==1.0.15`` (``minatar.gym.register_envs``): v1 is the
  minimal action set (Asterix 5, Breakout 3, Freeway 3, Seaquest 6, SpaceInvaders 4). The full set
  (v0, 6 actions in every game, which the MinAtar paper's baselines used) only adds actions that
  the game ignores, i.e. copies of no-op, so v1 changes no attainable behaviour or return and
  spares the actor redundant outputs. This is a deliberate difference from the MinAtar paper.
* MinAtar's defaults are kept, as in the MinAtar paper: sticky actions with probability 0.1 and
  difficulty ramping.
* ``image`` is the (10, 10, C) boolean state as uint8 {0, 255}, so the agent's usual
  ``uint8 / 255 - 0.5`` preprocessing sees {-0.5, +0.5}; no resize (``size`` is ignored).
* Game over → ``is_last = is_terminal = True``; MinAtar has no time limit of its own.
* Seeding: the first reset passes ``seed`` (MinAtar's RandomState drives stickiness and the game);
  later resets continue that stream.
"""

from __future__ import annotations

import difflib

import numpy as np

from .base import FLAG_SPACES, Obs, Space, check_one_hot, require, step_obs

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")


def gym_id(game: str) -> str:
    """The gymnasium id of a MinAtar game, e.g. space_invaders → MinAtar/SpaceInvaders-v1."""
    if game not in GAMES:
        close = difflib.get_close_matches(game, GAMES, n=3)
        hint = f" Did you mean: {', '.join('minatar_' + g for g in close)}?" if close else ""
        raise ValueError(
            f"unknown MinAtar game {game!r} (task minatar_{game}).{hint} "
            f"Valid games: {', '.join(GAMES)}"
        )
    return f"MinAtar/{game.title().replace('_', '')}-v1"


class MinAtar:
    """One MinAtar game as uint8 {0, 255} images and one-hot actions."""

    def __init__(self, game: str, *, seed: int):
        env_id = gym_id(game)
        minatar_gym = require("minatar.gym", "minatar")
        import gymnasium

        if env_id not in gymnasium.registry:  # registering twice would warn about overriding
            minatar_gym.register_envs()
        # .unwrapped drops gymnasium's checker and order-enforcing wrappers (no effect on dynamics).
        self._env = gymnasium.make(env_id, disable_env_checker=True).unwrapped
        self._seed: int | None = int(seed)
        self._num_actions = int(self._env.action_space.n)
        self._shape = tuple(self._env.observation_space.shape)

    @property
    def obs_space(self) -> dict[str, Space]:
        return {"image": Space(self._shape, np.uint8, 0, 255), **FLAG_SPACES}

    @property
    def act_space(self) -> dict[str, Space]:
        return {"action": Space((self._num_actions,), np.float32, 0.0, 1.0, discrete=True)}

    def reset(self) -> Obs:
        state, _ = self._env.reset(seed=self._seed)
        self._seed = None
        flags = step_obs(0.0, is_first=True, is_last=False, is_terminal=False)
        return {"image": _to_image(state), **flags}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        index = check_one_hot(action["action"], self._num_actions)
        state, reward, terminated, truncated, _ = self._env.step(index)
        flags = step_obs(
            reward, is_first=False, is_last=terminated or truncated, is_terminal=terminated
        )
        return {"image": _to_image(state), **flags}

    def close(self) -> None:
        self._env.close()


def _to_image(state: np.ndarray) -> np.ndarray:
    return np.asarray(state, bool).astype(np.uint8) * np.uint8(255)

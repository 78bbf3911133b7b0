"""The one environment interface every suite adapter implements, and the shared wrappers.

Spec §5 (official `dreamerv2/common/envs.py`). numpy only, never torch.

An environment exposes two dicts of `Space`s and two methods:

* ``obs_space``: every key that ``reset``/``step`` return. Always present: ``reward`` (float32
  scalar), ``is_first``, ``is_last``, ``is_terminal`` (bool scalars). Images are uint8
  ``(H, W, C)``, vectors float32 ``(D,)``; keys starting with ``log_`` are logged, never modelled.
* ``act_space``: ``{"action": Space}``. A discrete action is a float32 one-hot vector of length n
  (``Space.discrete`` is True); a continuous action is a float32 vector in [-1, 1].
* ``reset() -> obs``: reward 0, is_first True, is_last False, is_terminal False.
* ``step({"action": a}) -> obs``: the observation after the action, the reward for that transition
  and its flags. ``is_last`` ends the episode (game over or time limit); ``is_terminal`` only on a
  true termination (a time limit sets ``is_last`` but never ``is_terminal``).
* ``close()``.
* optional ``get_state() -> dict | None`` and ``set_state(state)``: everything needed to continue
  the env's stream exactly (RNG states, counters) as plain ints/strings/bools, so that a stopped
  run resumes mid-episode (`run_state.py`). Envs without them restart with fresh seeds on resume.

Every env is built with an integer ``seed`` (env i of a fresh run gets ``seed + i``; a resumed run
derives new seeds, see `driver.stream_seed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Obs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Space:
    """Shape, dtype and bounds of one observation or action entry.

    ``discrete`` marks a one-hot action vector whose length is the number of actions.
    """

    shape: tuple[int, ...]
    dtype: Any
    low: float = -np.inf
    high: float = np.inf
    discrete: bool = False

    @property
    def n(self) -> int:
        """Number of discrete actions (only for ``discrete`` spaces)."""
        assert self.discrete, "only a discrete (one-hot) space has n"
        return self.shape[0]

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, np.dtype(self.dtype))

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A uniform random element (a uniform one-hot for discrete spaces)."""
        if self.discrete:
            out = np.zeros(self.shape, np.float32)
            out[rng.integers(self.shape[0])] = 1.0
            return out
        low = np.broadcast_to(np.asarray(self.low, np.float32), self.shape)
        high = np.broadcast_to(np.asarray(self.high, np.float32), self.shape)
        return rng.uniform(low, high).astype(np.dtype(self.dtype))


FLAG_SPACES = {
    "reward": Space((), np.float32),
    "is_first": Space((), bool),
    "is_last": Space((), bool),
    "is_terminal": Space((), bool),
}


class Env(Protocol):
    """Structural type of every environment (see the module docstring)."""

    @property
    def obs_space(self) -> dict[str, Space]: ...

    @property
    def act_space(self) -> dict[str, Space]: ...

    def reset(self) -> Obs: ...

    def step(self, action: dict[str, np.ndarray]) -> Obs: ...

    def close(self) -> None: ...


class Wrapper:
    """Forwards everything to the wrapped env; subclasses override what they change."""

    def __init__(self, env: Env):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def obs_space(self) -> dict[str, Space]:
        return self.env.obs_space

    @property
    def act_space(self) -> dict[str, Space]:
        return self.env.act_space

    def reset(self) -> Obs:
        return self.env.reset()

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()

    def get_state(self) -> dict | None:
        get = getattr(self.env, "get_state", None)
        return get() if get is not None else None

    def set_state(self, state: dict) -> None:
        self.env.set_state(state)


def env_state(env: Env) -> dict | None:
    """The env's saved state (see the module docstring), or None if it cannot save one."""
    get = getattr(env, "get_state", None)
    return get() if get is not None else None


class TimeLimit(Wrapper):
    """Ends an episode after ``duration`` steps: ``is_last`` but not ``is_terminal`` (0 = off)."""

    def __init__(self, env: Env, duration: int):
        super().__init__(env)
        self._duration = int(duration)
        self._step = 0

    def reset(self) -> Obs:
        self._step = 0
        return self.env.reset()

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        obs = self.env.step(action)
        self._step += 1
        if self._duration and self._step >= self._duration:
            obs = dict(obs)
            obs["is_last"] = np.array(True)
        return obs

    def get_state(self) -> dict | None:
        inner = super().get_state()
        return None if inner is None else {"env": inner, "time_limit_step": self._step}

    def set_state(self, state: dict) -> None:
        super().set_state(state["env"])
        self._step = int(state["time_limit_step"])


def check_one_hot(action: np.ndarray, n: int) -> int:
    """Index of a one-hot action vector; a clear error for anything else."""
    action = np.asarray(action)
    if action.shape != (n,):
        raise ValueError(f"expected a one-hot action of shape ({n},), got shape {action.shape}")
    if not np.isfinite(action).all():
        raise ValueError(f"the action has non-finite entries: {action} (the policy produced NaN; "
                         "its weights or its input observation are not finite)")
    index = int(np.argmax(action))
    if not np.allclose(action, np.eye(n, dtype=action.dtype)[index]):
        raise ValueError(f"action is not one-hot: {action}")
    return index


def step_obs(reward: float, *, is_first: bool, is_last: bool, is_terminal: bool) -> Obs:
    """The four entries every observation carries, as 0-d arrays with the dtypes of FLAG_SPACES."""
    return {
        "reward": np.array(reward, np.float32),
        "is_first": np.array(is_first, bool),
        "is_last": np.array(is_last, bool),
        "is_terminal": np.array(is_terminal, bool),
    }


class ActionRepeat(Wrapper):
    """Repeats an action ``repeat`` times, summing rewards and stopping early at ``is_last``.

    Suites whose simulator repeats more cheaply in place (Atari's frame skip, DMC's physics loop
    that renders once) do their own repeat; this wrapper is for the rest.
    """

    def __init__(self, env: Env, repeat: int):
        super().__init__(env)
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        self._repeat = int(repeat)

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        total = 0.0
        for _ in range(self._repeat):
            obs = self.env.step(action)
            total += float(obs["reward"])
            if obs["is_last"]:
                break
        obs = dict(obs)
        obs["reward"] = np.array(total, np.float32)
        return obs


class NormalizeAction(Wrapper):
    """Exposes a bounded continuous action as [-1, 1] and maps it affinely to the env's bounds.

    Spec §5.2 (official ``NormalizeAction``): only dimensions with finite bounds are mapped; an
    unbounded dimension passes through unchanged and keeps its bounds.
    """

    def __init__(self, env: Env, key: str = "action"):
        super().__init__(env)
        self._key = key
        space = env.act_space[key]
        if space.discrete:
            raise ValueError(f"NormalizeAction needs a continuous action space, got {space}")
        low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
        mask = np.isfinite(low) & np.isfinite(high)
        # Unbounded dimensions get the identity map (bounds -1, 1 in the affine formula).
        self._low, self._high = np.where(mask, low, -1.0), np.where(mask, high, 1.0)
        if mask.all():  # scalar bounds keep the Space hashable and printable
            new_low, new_high = -1.0, 1.0
        else:
            new_low = np.where(mask, -1.0, low).astype(np.float32)
            new_high = np.where(mask, 1.0, high).astype(np.float32)
        self._space = Space(space.shape, np.float32, new_low, new_high)

    @property
    def act_space(self) -> dict[str, Space]:
        return {**self.env.act_space, self._key: self._space}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        value = np.asarray(action[self._key], np.float64)
        if value.shape != self._space.shape:
            raise ValueError(f"expected an action of shape {self._space.shape}, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"action has non-finite entries: {value}")
        mapped = (value + 1) / 2 * (self._high - self._low) + self._low
        return self.env.step({**action, self._key: mapped})


def require(module: str, extra: str) -> Any:
    """Imports an optional suite package, or says which pip extra provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this environment needs the package {module!r}, which failed to import ({error}); "
            f'install it with: pip install "dreamerv2-torch[{extra}]"'
        ) from error

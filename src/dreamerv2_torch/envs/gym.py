"""Any Gymnasium environment, by id (``gym:CartPole-v1``) or as an object (spec §5.4).

Official counterpart: ``GymWrapper``, ``ResizeImage`` and ``RenderImage`` in
``danijar/dreamerv2:dreamerv2/common/envs.py``, used by ``dreamerv2/api.py``. Routing of
observations, by the space of each entry (a Dict space keeps its keys; a single space is named
``image`` or ``vector``):

* Box of rank 2 or 3 → an image: uint8 (H, W, C), channels last (rank 2 gains a channel axis),
  resized to ``size`` with cv2 INTER_AREA when it differs; bool images become {0, 255}, float
  images whose space has ``high <= 1`` are scaled by 255, other images are clipped to [0, 255];
* Box of rank 0 or 1 → a float32 vector (rank 0 becomes shape (1,)); Discrete → a one-hot vector;
* anything else (MultiDiscrete, MultiBinary, Text, Graph, Tuple, Sequence, higher ranks) → an error
  naming the space.

Actions: Discrete(n) → one-hot of length n; a bounded 1-D Box → continuous (``make_env`` /
``from_gymnasium`` expose it as [-1, 1] through ``NormalizeAction``); other action spaces → an
error. ``terminated`` → is_last and is_terminal; ``truncated`` → is_last only.

Deliberate differences from the official wrapper: the official code treated every ``done`` as
terminal (gym had no ``truncated``) and resized with PIL nearest-neighbour; we use gymnasium's
truncation signal and cv2 INTER_AREA (the filter of the Atari preprocessing).
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple

import numpy as np

from .base import (
    FLAG_SPACES,
    Env,
    NormalizeAction,
    Obs,
    Space,
    TimeLimit,
    check_one_hot,
    require,
    step_obs,
)


class _Route(NamedTuple):
    """How one gymnasium observation entry becomes one of ours."""

    kind: str  # "image", "vector" or "onehot"
    name: str  # our observation key
    shape: tuple[int, ...]  # image: (H, W, C) before resizing; vector: (D,); onehot: (n,)
    scale: float = 1.0  # images: 255 for float images in [0, 1]
    start: int = 0  # onehot: the Discrete space's start


def make_gymnasium(env_id: str) -> Any:
    """``gymnasium.make(env_id)``, or a ValueError listing close registered ids."""
    import gymnasium

    try:
        return gymnasium.make(env_id)
    except (
        gymnasium.error.NameNotFound,
        gymnasium.error.NamespaceNotFound,
        gymnasium.error.VersionNotFound,
        gymnasium.error.UnregisteredEnv,
    ) as error:
        ids = sorted(gymnasium.registry)
        close = difflib.get_close_matches(env_id, ids, n=5)
        hint = f" Did you mean: {', '.join('gym:' + c for c in close)}?" if close else ""
        raise ValueError(
            f"unknown Gymnasium id {env_id!r} (task gym:{env_id}): {error}.{hint} An id from a "
            "package that registers on import can be written gym:<module>:<id>, e.g. "
            "gym:ale_py:ALE/Pong-v5."
        ) from error


class Gymnasium:
    """A ``gymnasium.Env`` behind the dict-observation API (see the module docstring)."""

    def __init__(
        self,
        env: Any,
        *,
        seed: int,
        size: tuple[int, int] = (64, 64),
        render_image: bool = False,
        action_repeat: int = 1,
    ):
        import gymnasium.spaces as gs

        self._env = env
        self._seed: int | None = int(seed)
        self._size = (int(size[0]), int(size[1]))
        self._repeat = int(action_repeat)
        if self._repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        space = env.observation_space
        self._is_dict = isinstance(space, gs.Dict)
        spaces = dict(space.spaces) if self._is_dict else {None: space}
        self._routes = {key: _route(key, sub, gs) for key, sub in spaces.items()}
        if render_image:  # the official RenderImage: the rendered frame replaces any image entry
            if getattr(env, "render_mode", None) != "rgb_array":
                raise ValueError("render_image needs an env made with render_mode='rgb_array'")
            self._routes = {k: r for k, r in self._routes.items() if r.kind != "image"}
            self._routes[_RENDER] = _Route("image", "image", (0, 0, 3))
        names = [route.name for route in self._routes.values()]
        if len(set(names)) < len(names) or set(names) & set(FLAG_SPACES):
            raise ValueError(f"observation keys {names} clash with each other or with the flags")
        self._action_kind, self._action_space = _action(env.action_space, gs)
        self._start = int(getattr(env.action_space, "start", 0))
        if any(r.kind == "image" and r.shape[:2] != self._size for r in self._routes.values()):
            require("cv2", "atari")  # resizing needs cv2, which ships with the atari extra

    @property
    def obs_space(self) -> dict[str, Space]:
        spaces = {}
        for route in self._routes.values():
            if route.kind == "image":
                spaces[route.name] = Space((*self._size, route.shape[-1]), np.uint8, 0, 255)
            else:
                spaces[route.name] = Space(route.shape, np.float32)
        return {**spaces, **FLAG_SPACES}

    @property
    def act_space(self) -> dict[str, Space]:
        return {"action": self._action_space}

    def reset(self) -> Obs:
        raw, _ = self._env.reset(seed=self._seed)
        self._seed = None  # later episodes continue the seeded stream
        flags = step_obs(0.0, is_first=True, is_last=False, is_terminal=False)
        return {**self._observe(raw), **flags}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        if self._action_kind == "discrete":
            value = check_one_hot(action["action"], self._action_space.n) + self._start
        else:
            value = np.asarray(action["action"], self._env.action_space.dtype)
        reward = 0.0
        for _ in range(self._repeat):  # repeated here, so that the image is converted only once
            raw, step_reward, terminated, truncated, _ = self._env.step(value)
            reward += float(step_reward)
            if terminated or truncated:
                break
        flags = step_obs(
            reward, is_first=False, is_last=terminated or truncated, is_terminal=terminated
        )
        return {**self._observe(raw), **flags}

    def close(self) -> None:
        self._env.close()

    def _observe(self, raw: Any) -> Obs:
        obs = {}
        for key, route in self._routes.items():
            if key is _RENDER:
                value = self._env.render()
            else:
                value = raw[key] if self._is_dict else raw
            if route.kind == "image":
                obs[route.name] = _to_image(np.asarray(value), self._size, route.scale)
            elif route.kind == "onehot":
                obs[route.name] = np.eye(route.shape[0], dtype=np.float32)[int(value) - route.start]
            else:
                obs[route.name] = np.array(value, np.float32).reshape(route.shape)
        return obs


_RENDER = object()  # the routing key of the rendered frame (never a Dict space key)


def _route(key: str | None, space: Any, gs: Any) -> _Route:
    """How to convert one observation space; an error if the agent cannot use it."""
    if isinstance(space, gs.Box) and len(space.shape) in (2, 3):
        shape = space.shape if len(space.shape) == 3 else (*space.shape, 1)
        # Decided from the space, never from a frame's values: float images bounded by 1 are [0, 1].
        is_unit = np.issubdtype(space.dtype, np.floating) and np.all(space.high <= 1.0)
        return _Route("image", key or "image", tuple(shape), 255.0 if is_unit else 1.0)
    if isinstance(space, gs.Box) and len(space.shape) <= 1:
        return _Route("vector", key or "vector", (int(np.prod(space.shape)),))
    if isinstance(space, gs.Discrete):
        return _Route("onehot", key or "vector", (int(space.n),), start=int(space.start))
    where = f" (observation key {key!r})" if key else ""
    raise ValueError(
        f"unsupported observation space{where}: {space}. Supported: Box of rank 0-3, Discrete, "
        "and a Dict of those."
    )


def _action(space: Any, gs: Any) -> tuple[str, Space]:
    if isinstance(space, gs.Discrete):
        return "discrete", Space((int(space.n),), np.float32, 0.0, 1.0, discrete=True)
    if isinstance(space, gs.Box) and len(space.shape) == 1:
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ValueError(
                f"unsupported action space: {space} has unbounded dimensions; the actor acts in "
                "[-1, 1] and needs finite bounds to map to"
            )
        low, high = space.low.astype(np.float32), space.high.astype(np.float32)
        return "continuous", Space(space.shape, np.float32, low, high)
    raise ValueError(
        f"unsupported action space: {space}. Supported: Discrete and a bounded 1-D Box."
    )


def _to_image(value: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    if value.dtype == bool:
        value = value.astype(np.uint8) * np.uint8(255)
    elif value.dtype != np.uint8:
        value = np.clip(np.asarray(value, np.float64) * scale, 0, 255).round().astype(np.uint8)
    if value.ndim == 2:
        value = value[..., None]
    if value.shape[:2] == size:
        return value.copy()  # never alias a buffer that the env may overwrite in place
    import cv2

    channels = value.shape[-1]
    value = cv2.resize(value, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return value.reshape(*size, channels)  # cv2 drops a single channel axis


def from_gymnasium(
    env: Any,
    *,
    seed: int,
    size: tuple[int, int] = (64, 64),
    render_image: bool = False,
    action_repeat: int = 1,
    time_limit: int = 0,
) -> Env:
    """Wraps a user-built ``gymnasium.Env`` with every wrapper ``make_env`` would apply."""
    wrapped: Env = Gymnasium(
        env, seed=seed, size=size, render_image=render_image, action_repeat=action_repeat
    )
    if not wrapped.act_space["action"].discrete:
        wrapped = NormalizeAction(wrapped)
    return TimeLimit(wrapped, time_limit)

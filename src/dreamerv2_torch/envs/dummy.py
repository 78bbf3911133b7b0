"""Tiny deterministic environments for tests and smoke runs; numpy only, no suite package.

Not in the official code (it tests on real suites); the pattern is embodied's ``envs/dummy.py``.
All follow the contract of `base.py`; every episode lasts ``length`` steps (100 by default, at least
the replay's sequence length of 50) and is cut there.

* ``dummy_discrete``: image (H, W, 3) uint8, 4 one-hot actions. The image encodes the step count
  (channel 0) and the last action (channel 1). Reward 1 for action 0, else 0. The episode ends
  with ``is_terminal=True`` so that the discount path of a learner is exercised.
* ``dummy_continuous``: the same image, a 2-D action in [-1, 1], reward ``1 - mean(|a - 0.5|)``
  (clipped below at 0), which peaks at a = (0.5, 0.5). Ends with ``is_terminal=True``.
* ``dummy_vector``: a float32 ``vector`` (8,) instead of an image (step fraction, last action as
  one-hot, and a sine of the step), 4 one-hot actions, reward as ``dummy_discrete``.
* ``dummy_reveal``: a learnable pixel task. The image is black except one bright quadrant; quadrant
  k (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) means "action k is correct now".
  Reward +1 for choosing it, 0 otherwise; a fresh target is drawn from the env's seeded RNG after
  every step. Optimal return = length (100), uniformly random policy = length / 4 (25). The
  episode is cut with ``is_terminal=False`` (like a time limit), since the task has no end.

All save and restore their state (`get_state`/`set_state`), so a stopped run continues their
streams exactly.
"""

from __future__ import annotations

import json

import numpy as np

from .base import FLAG_SPACES, Obs, Space, check_one_hot, step_obs

NAMES = ("discrete", "continuous", "vector", "reveal")
NUM_ACTIONS = 4
VECTOR_SIZE = 8
_STREAM = 0xD0_11  # mixed into the seed, see DummyEnv.__init__


class DummyEnv:
    """One of the dummy tasks listed in the module docstring."""

    def __init__(
        self, name: str, *, seed: int, size: tuple[int, int] = (64, 64), length: int = 100
    ):
        if name not in NAMES:
            raise ValueError(f"unknown dummy env {name!r}; valid: {', '.join(NAMES)}")
        self._name = name
        self._size = tuple(size)
        self._length = int(length)
        # A stream of its own: a policy seeded with the same seed must not draw the same numbers.
        self._rng = np.random.default_rng([int(seed), _STREAM])
        self._step = 0
        self._last_action = 0
        self._target = 0

    @property
    def obs_space(self) -> dict[str, Space]:
        if self._name == "vector":
            spaces = {"vector": Space((VECTOR_SIZE,), np.float32)}
        else:
            spaces = {"image": Space((*self._size, 3), np.uint8, 0, 255)}
        return {**spaces, **FLAG_SPACES}

    @property
    def act_space(self) -> dict[str, Space]:
        if self._name == "continuous":
            return {"action": Space((2,), np.float32, -1.0, 1.0)}
        return {"action": Space((NUM_ACTIONS,), np.float32, 0.0, 1.0, discrete=True)}

    def reset(self) -> Obs:
        self._step = 0
        self._last_action = 0
        self._target = int(self._rng.integers(NUM_ACTIONS))
        return {**self._observe(), **step_obs(0.0, is_first=True, is_last=False, is_terminal=False)}

    def step(self, action: dict[str, np.ndarray]) -> Obs:
        self._step += 1
        if self._name == "continuous":
            value = np.asarray(action["action"], np.float32)
            if value.shape != (2,):
                raise ValueError(f"expected an action of shape (2,), got {value.shape}")
            reward = max(0.0, 1.0 - float(np.mean(np.abs(value - 0.5))))
            self._last_action = int(value[0] > 0)
        else:
            self._last_action = check_one_hot(action["action"], NUM_ACTIONS)
            if self._name == "reveal":
                reward = float(self._last_action == self._target)
                self._target = int(self._rng.integers(NUM_ACTIONS))
            else:
                reward = float(self._last_action == 0)
        is_last = self._step >= self._length
        is_terminal = is_last and self._name != "reveal"
        flags = step_obs(reward, is_first=False, is_last=is_last, is_terminal=is_terminal)
        return {**self._observe(), **flags}

    def close(self) -> None:
        pass

    def get_state(self) -> dict:
        """RNG and counters (JSON keeps PCG64's 128-bit integers exact), see `base.py`."""
        return {"rng": json.dumps(self._rng.bit_generator.state), "step": self._step,
                "last_action": self._last_action, "target": self._target}

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = json.loads(state["rng"])
        self._step, self._last_action = int(state["step"]), int(state["last_action"])
        self._target = int(state["target"])

    def _observe(self) -> Obs:
        if self._name == "vector":
            vector = np.zeros(VECTOR_SIZE, np.float32)
            vector[0] = self._step / self._length
            vector[1 + self._last_action] = 1.0
            vector[5] = np.sin(self._step)
            return {"vector": vector}
        height, width = self._size
        image = np.zeros((height, width, 3), np.uint8)
        if self._name == "reveal":
            row, col = divmod(self._target, 2)
            rows = slice(row * height // 2, (row + 1) * height // 2)
            cols = slice(col * width // 2, (col + 1) * width // 2)
            image[rows, cols] = 255
        else:
            image[..., 0] = (self._step * 2) % 256
            image[..., 1] = 60 * self._last_action
        return {"image": image}

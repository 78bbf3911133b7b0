"""A checker of the environment contract of `base.py`, for tests and for users' own adapters.

Not in the official code. ``check_env`` runs random actions and fails with a precise message on the
first observation that breaks the contract (keys, shapes, dtypes, image bounds, reset and
termination flags), so every suite is held to the same rules by the same code.
"""

from __future__ import annotations

import numpy as np

from .base import FLAG_SPACES, Env, Obs, Space


def check_obs(obs: Obs, obs_space: dict[str, Space], *, where: str = "") -> None:
    """Asserts that ``obs`` has exactly the keys, shapes and dtypes of ``obs_space``."""
    assert set(obs) == set(obs_space), (
        f"{where}keys {sorted(obs)} differ from obs_space keys {sorted(obs_space)}"
    )
    for key, space in obs_space.items():
        value = obs[key]
        assert isinstance(value, np.ndarray | np.generic), (
            f"{where}{key!r} is a {type(value).__name__}, not a numpy array"
        )
        assert value.shape == space.shape, (
            f"{where}{key!r} has shape {value.shape}, obs_space says {space.shape}"
        )
        assert value.dtype == np.dtype(space.dtype), (
            f"{where}{key!r} has dtype {value.dtype}, obs_space says {np.dtype(space.dtype)}"
        )
        # A flipped view (MuJoCo's renderer returns one) cannot become a tensor without a copy.
        assert not isinstance(value, np.ndarray) or min(value.strides, default=0) >= 0, (
            f"{where}{key!r} is a view with negative strides {value.strides}; "
            "return np.ascontiguousarray(...)"
        )
        if value.dtype == np.float32:
            assert np.isfinite(value).all(), f"{where}{key!r} has non-finite entries"


def check_spaces(env: Env) -> None:
    """Asserts the fixed parts of obs_space and act_space."""
    obs_space, act_space = env.obs_space, env.act_space
    for key, space in FLAG_SPACES.items():
        assert obs_space.get(key) == space, (
            f"obs_space[{key!r}] is {obs_space.get(key)}, not {space}"
        )
    for key, space in obs_space.items():
        if len(space.shape) == 3:
            assert np.dtype(space.dtype) == np.uint8, f"image {key!r} must be uint8, is {space}"
    assert set(act_space) == {"action"}, f"act_space keys are {sorted(act_space)}, not ['action']"
    action = act_space["action"]
    assert np.dtype(action.dtype) == np.float32, f"actions must be float32, got {action}"
    assert len(action.shape) == 1, f"actions must be vectors, got shape {action.shape}"
    if not action.discrete:
        assert np.all(np.asarray(action.low) == -1) and np.all(np.asarray(action.high) == 1), (
            f"continuous actions must be in [-1, 1], got {action}"
        )


def check_env(env: Env, *, steps: int, seed: int = 0) -> list[Obs]:
    """Steps ``env`` with random actions for ``steps`` steps, resetting after ``is_last``.

    Returns every observation (resets included), for further checks by the caller.
    """
    check_spaces(env)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    history = [obs]
    _check_reset(obs, env.obs_space)
    for step in range(steps):
        obs = env.step({"action": env.act_space["action"].sample(rng)})
        where = f"step {step + 1}: "
        check_obs(obs, env.obs_space, where=where)
        assert not obs["is_first"], f"{where}is_first is set on a step"
        assert obs["is_last"] or not obs["is_terminal"], f"{where}is_terminal without is_last"
        history.append(obs)
        if obs["is_last"]:
            obs = env.reset()
            _check_reset(obs, env.obs_space)
            history.append(obs)
    return history


def _check_reset(obs: Obs, obs_space: dict[str, Space]) -> None:
    check_obs(obs, obs_space, where="reset: ")
    assert obs["is_first"] and not obs["is_last"] and not obs["is_terminal"], (
        f"reset flags must be first=True, last=False, terminal=False, got {obs['is_first']}, "
        f"{obs['is_last']}, {obs['is_terminal']}"
    )
    assert obs["reward"] == 0, f"reset reward must be 0, got {obs['reward']}"

"""Tests written for mutants of the Gymnasium adapter (`envs/gym.py`) and the factory's route to it
that survived tools/parity/mutation.sh (docs/parity.md, "Mutation testing", "env suites:
MinAtar, DMC, Crafter, Gym, the env factory"). Expected values come from the adapters'
documented rules (module docstrings, spec §5), the official code or the libraries, never from
our output."""

from __future__ import annotations

import sys

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamerv2_torch.envs import make_env
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.envs.contract import check_obs, check_spaces
from dreamerv2_torch.envs.gym import Gymnasium, from_gymnasium, make_gymnasium

# ------------------------------------------------------------------------------------- Gymnasium


class Scripted(gymnasium.Env):
    """Shows ``frames[t]`` after t steps (the last one from then on), rewards 1 per step,
    terminates at step ``terminate_at`` (0: never) and records the actions it receives."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, observation_space, action_space, frames=(), *, render_mode=None,
                 terminate_at=0):
        self.observation_space, self.action_space = observation_space, action_space
        self.frames, self.render_mode, self.terminate_at = list(frames), render_mode, terminate_at
        self.t, self.actions = 0, []

    def _obs(self):
        if not self.frames:
            return self.observation_space.sample()
        return self.frames[min(self.t, len(self.frames) - 1)]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.actions.append(action)
        self.t += 1
        return self._obs(), 1.0, self.t == self.terminate_at, False, {}

    def render(self):
        return np.full((20, 30, 3), 10 + self.t, np.uint8)


def box(low, high, shape, dtype=np.float32):
    return spaces.Box(low, high, shape, dtype)


def first_image(space, frame, size):
    env = from_gymnasium(Scripted(space, spaces.Discrete(2), [frame]), seed=0, size=size)
    obs = env.reset()
    check_obs(obs, env.obs_space)
    return obs["image"]


def test_gym_image_values_follow_the_space() -> None:
    """Module docstring: float images with ``high <= 1`` are scaled by 255, other float images
    clipped to [0, 255], bool images become {0, 255}; rounding to the nearest integer."""
    unit = first_image(box(0, 1, (2, 2)), np.array([[0.75, 0.2], [1.0, 0.0]], np.float32), (2, 2))
    np.testing.assert_array_equal(unit[..., 0], [[191, 51], [255, 0]])  # 191.25, 51
    two = first_image(box(0, 2, (2, 2)), np.array([[1.5, 0.4], [2.0, 0.0]], np.float32), (2, 2))
    np.testing.assert_array_equal(two[..., 0], [[2, 0], [2, 0]])  # not scaled: high is 2
    wide = first_image(
        box(-10, 1000, (2, 2)), np.array([[-3, 300], [254.6, 7]], np.float32), (2, 2))
    np.testing.assert_array_equal(wide[..., 0], [[0, 255], [255, 7]])
    # Scaled in float64: 0.6098039 (float32) * 255 = 155.49999..., 155.5 if multiplied in float32.
    exact = first_image(box(0, 1, (1, 1)), np.full((1, 1), 0.6098039, np.float32), (1, 1))
    assert exact[0, 0, 0] == 155
    ints = first_image(box(0, 1, (2, 2), np.int32), np.array([[0, 1], [1, 0]], np.int32), (2, 2))
    np.testing.assert_array_equal(ints[..., 0], [[0, 1], [1, 0]])  # not float: not scaled
    flags = first_image(box(0, 1, (2, 2), bool), np.array([[1, 0], [0, 1]], bool), (2, 2))
    assert flags.dtype == np.uint8 and flags.shape == (2, 2, 1)
    np.testing.assert_array_equal(flags[..., 0], [[255, 0], [0, 255]])


def test_gym_resizes_with_area_averaging() -> None:
    """cv2 INTER_AREA at a factor of 3 averages each 3 x 3 block; the pattern added to each block
    sums to 0 but is +8 at the centre, where bilinear or nearest resizing would sample it."""
    rng = np.random.default_rng(0)
    base = rng.integers(20, 230, (16, 24, 3)).astype(np.uint8)
    pattern = np.array([[-2, 0, -2], [0, 8, 0], [-2, 0, -2]])
    frame = np.kron(base, np.ones((3, 3, 1), np.int64)) + np.tile(pattern, (16, 24))[..., None]
    image = first_image(box(0, 255, (48, 72, 3), np.uint8), frame.astype(np.uint8), (16, 24))
    np.testing.assert_array_equal(image, base)


def test_gym_single_discrete_observation_is_a_one_hot_vector() -> None:
    env = from_gymnasium(Scripted(spaces.Discrete(5, start=2), spaces.Discrete(2), [4]), seed=0)
    assert env.obs_space["vector"] == Space((5,), np.float32)
    np.testing.assert_array_equal(env.reset()["vector"], [0, 0, 1, 0, 0])


def test_gym_discrete_action_with_a_start_and_box_actions_in_the_space_dtype() -> None:
    inner = Scripted(box(0, 1, (3,)), spaces.Discrete(3, start=-1))
    env = from_gymnasium(inner, seed=0)
    env.reset()
    env.step({"action": np.eye(3, dtype=np.float32)[0]})
    assert inner.actions == [-1]
    assert env.act_space["action"] == Space((3,), np.float32, 0.0, 1.0, discrete=True)
    inner = Scripted(box(0, 1, (3,)), box(0.0, 4.0, (2,)))
    env = from_gymnasium(inner, seed=0)
    env.reset()
    env.step({"action": np.array([0.0, 1.0], np.float32)})
    assert inner.actions[-1].dtype == np.float32
    np.testing.assert_array_equal(inner.actions[-1], [2.0, 4.0])
    raw = Gymnasium(Scripted(box(0, 1, (3,)), box(-1.0, 1.0, (2,))), seed=0)
    check_spaces(raw)  # float32 actions in [-1, 1]
    raw = Gymnasium(Scripted(box(0, 1, (3,)), box(0.0, 0.1, (2,), np.float64)), seed=0)
    space = raw.act_space["action"]
    assert space.low.dtype == space.high.dtype == np.float32  # the Space's dtype
    np.testing.assert_array_equal(space.high, np.float32(0.1))


def test_gym_scalar_box_observation_is_a_vector_of_one() -> None:
    env = from_gymnasium(Scripted(box(0, 5, ()), spaces.Discrete(2), [np.float32(2.5)]), seed=0)
    obs = env.reset()
    check_obs(obs, env.obs_space)
    np.testing.assert_array_equal(obs["vector"], [2.5])


def test_gym_render_image_replaces_the_image_entries() -> None:
    space = spaces.Dict({"camera": box(0, 255, (8, 8, 3), np.uint8), "joints": box(0, 1, (3,))})
    inner = Scripted(space, spaces.Discrete(2), render_mode="rgb_array")
    env = from_gymnasium(inner, seed=0, size=(20, 30), render_image=True)
    assert set(env.obs_space) == {"image", "joints", *FLAG_SPACES}
    assert env.obs_space["image"] == Space((20, 30, 3), np.uint8, 0, 255)
    env.reset()
    np.testing.assert_array_equal(env.step({"action": np.eye(2, dtype=np.float32)[0]})["image"],
                                  np.full((20, 30, 3), 11, np.uint8))


class Duck:
    """Not a gymnasium.Env (no render_mode attribute), only the two spaces."""

    observation_space = spaces.Box(0, 1, (3,), np.float32)
    action_space = spaces.Discrete(2)


def test_gym_render_image_needs_rgb_array_rendering() -> None:
    for env in (Duck(), Scripted(box(0, 1, (3,)), spaces.Discrete(2))):
        with pytest.raises(ValueError, match="render_mode='rgb_array'"):
            from_gymnasium(env, seed=0, render_image=True)


def test_gym_clashing_observation_keys() -> None:
    with pytest.raises(ValueError, match="clash"):  # a flag's name
        from_gymnasium(Scripted(spaces.Dict({"reward": box(0, 1, (3,))}), spaces.Discrete(2)),
                       seed=0)
    inner = Scripted(spaces.Dict({"image": box(0, 1, (3,))}), spaces.Discrete(2),
                     render_mode="rgb_array")
    with pytest.raises(ValueError, match="clash"):  # the rendered frame's name
        from_gymnasium(inner, seed=0, render_image=True)


def test_gym_unsupported_space_messages() -> None:
    supported = "Supported: Box of rank 0-3, Discrete, and a Dict of those."
    multi = spaces.MultiDiscrete([2, 3])
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(multi, spaces.Discrete(2)), seed=0)
    assert str(info.value) == f"unsupported observation space: {multi}. {supported}"
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(spaces.Dict({"m": multi}), spaces.Discrete(2)), seed=0)
    assert str(info.value) == (
        f"unsupported observation space (observation key 'm'): {multi}. {supported}")
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), multi), seed=0)
    assert str(info.value) == (
        f"unsupported action space: {multi}. Supported: Discrete and a bounded 1-D Box.")
    half = box(np.array([0.0, -1.0]), np.array([np.inf, 1.0]), (2,))  # unbounded above only
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), half), seed=0)
    assert str(info.value) == (
        f"unsupported action space: {half} has unbounded dimensions; the actor acts in [-1, 1] "
        "and needs finite bounds to map to")


def test_gym_unknown_id_and_bad_argument_messages() -> None:
    tail = (" An id from a package that registers on import can be written gym:<module>:<id>, e.g. "
            "gym:ale_py:ALE/Pong-v5.")
    with pytest.raises(ValueError) as info:
        make_gymnasium("CartPol-v1")
    message = str(info.value)
    assert message.startswith("unknown Gymnasium id 'CartPol-v1' (task gym:CartPol-v1): ")
    assert message.endswith(". Did you mean: gym:CartPole-v1, gym:CartPole-v0, "
                            "gym:phys2d/CartPole-v1, gym:phys2d/CartPole-v0?" + tail)
    with pytest.raises(ValueError) as info:
        make_gymnasium("Zzzzzzzz-v9")
    assert "Did you mean" not in str(info.value) and str(info.value).endswith("." + tail)
    with pytest.raises(ValueError) as info:
        from_gymnasium(Scripted(box(0, 1, (3,)), spaces.Discrete(2)), seed=0, action_repeat=0)
    assert str(info.value) == "action_repeat must be >= 1, got 0"
    with pytest.raises(ValueError) as info:
        from_gymnasium(Duck(), seed=0, render_image=True)
    assert str(info.value) == "render_image needs an env made with render_mode='rgb_array'"


def test_gym_resizing_needs_cv2_and_names_its_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail
    image = box(0, 255, (32, 48, 3), np.uint8)
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[atari\]"'):
        from_gymnasium(Scripted(image, spaces.Discrete(2)), seed=0, size=(16, 24))
    from_gymnasium(Scripted(image, spaces.Discrete(2)), seed=0, size=(32, 48)).reset()  # no resize
    from_gymnasium(Scripted(box(0, 1, (3,)), spaces.Discrete(2)), seed=0)  # no image


def test_gym_defaults() -> None:
    """64 x 64 images, no action repeat, no rendering, no time limit."""
    for wrap in (Gymnasium, from_gymnasium):
        inner = Scripted(box(0, 255, (32, 32, 3), np.uint8), spaces.Discrete(2))  # no render mode
        env = wrap(inner, seed=0)
        assert env.reset()["image"].shape == (64, 64, 3)
        steps = [env.step({"action": np.eye(2, dtype=np.float32)[0]}) for _ in range(3)]
        assert [float(obs["reward"]) for obs in steps] == [1.0, 1.0, 1.0] and inner.t == 3
        assert not any(obs["is_last"] for obs in steps)




def test_factory_forwards_size_and_action_repeat_to_gymnasium() -> None:
    gymnasium.register("DV2TestImage-v0", entry_point=lambda: Scripted(
        box(0, 255, (32, 48, 3), np.uint8), spaces.Discrete(2)))
    try:
        env = make_env("gym:DV2TestImage-v0", seed=0, size=(16, 24), action_repeat=3)
        assert env.reset()["image"].shape == (16, 24, 3)
        assert float(env.step({"action": np.eye(2, dtype=np.float32)[0]})["reward"]) == 3.0
    finally:
        del gymnasium.registry["DV2TestImage-v0"]

"""Gymnasium adapter (spec §5.4): vector and image envs, Dict routing, actions, flags, errors."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamerv2_torch.envs import make_env
from dreamerv2_torch.envs.contract import check_env
from dreamerv2_torch.envs.gym import from_gymnasium


class TinyEnv(gymnasium.Env):
    """A configurable toy env: observation space and action space are arguments.

    The observation at step t is full of t (images) or t (vectors); the episode terminates after
    ``terminate_at`` steps or is truncated after ``truncate_at`` steps. The last action received is
    kept in ``last_action``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, observation_space, action_space, terminate_at=0, truncate_at=0):
        self.observation_space = observation_space
        self.action_space = action_space
        self.render_mode = "rgb_array"
        self.terminate_at, self.truncate_at = terminate_at, truncate_at
        self.t, self.last_action = 0, None

    def _obs(self):
        def fill(space):
            if isinstance(space, spaces.Dict):
                return {k: fill(s) for k, s in space.spaces.items()}
            if isinstance(space, spaces.Discrete):
                return space.start + self.t % space.n
            high = 1.0 if np.issubdtype(space.dtype, np.floating) and space.high.max() <= 1 else 255
            return np.full(space.shape, min(self.t / 10, 1.0) * high, space.dtype)

        return fill(self.observation_space)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.last_action = action
        terminated = self.t == self.terminate_at
        truncated = self.t == self.truncate_at
        return self._obs(), 1.0, terminated, truncated, {}

    def render(self):
        return np.full((20, 30, 3), 7 * self.t % 256, np.uint8)


def image_space(shape, dtype=np.uint8, high=255):
    return spaces.Box(0, high, shape, dtype)


def test_cartpole_vector_env():
    env = make_env("gym:CartPole-v1", seed=0)
    history = check_env(env, steps=100)
    assert env.obs_space["vector"].shape == (4,)
    assert env.act_space["action"].discrete and env.act_space["action"].n == 2
    ends = [obs for obs in history if obs["is_last"]]
    assert ends and all(obs["is_terminal"] for obs in ends)  # a fallen pole is terminated


def test_gym_seeding():
    def run(seed):
        env = make_env("gym:CartPole-v1", seed=seed)
        history = [env.reset()]
        history += [env.step({"action": np.eye(2, dtype=np.float32)[i % 2]}) for i in range(5)]
        return np.stack([obs["vector"] for obs in history])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_continuous_gym_env_is_normalised():
    env = make_env("gym:Pendulum-v1", seed=0)  # torque in [-2, 2]; the map: see the next test
    check_env(env, steps=5)
    space = env.act_space["action"]
    assert space.shape == (1,) and (space.low, space.high) == (-1.0, 1.0)


def test_box_action_affine_map():
    inner = TinyEnv(image_space((8,), np.float32), spaces.Box(0.0, 10.0, (2,), np.float32))
    env = from_gymnasium(inner, seed=0)
    space = env.act_space["action"]
    assert (space.low, space.high) == (-1.0, 1.0)
    env.reset()
    env.step({"action": np.array([-1.0, 0.5], np.float32)})
    np.testing.assert_allclose(inner.last_action, [0.0, 7.5])


def test_image_env_resized_to_size():
    inner = TinyEnv(image_space((32, 48, 3)), spaces.Discrete(3), terminate_at=4)
    env = from_gymnasium(inner, seed=0, size=(16, 24))
    history = check_env(env, steps=6)
    assert env.obs_space["image"].shape == (16, 24, 3)
    assert history[2]["image"].shape == (16, 24, 3)
    assert history[2]["image"].max() > 0  # 0.2 * 255 in every pixel, kept by INTER_AREA
    assert history[4]["is_last"] and history[4]["is_terminal"]


def test_grayscale_float_image_gets_channel_and_uint8():
    inner = TinyEnv(image_space((64, 64), np.float32, 1.0), spaces.Discrete(2))
    env = from_gymnasium(inner, seed=0)
    env.reset()
    obs = env.step({"action": np.eye(2, dtype=np.float32)[1]})
    assert obs["image"].shape == (64, 64, 1) and obs["image"].dtype == np.uint8
    assert obs["image"][0, 0, 0] == round(0.1 * 255)


def test_dict_observations_are_routed_by_rank():
    space = spaces.Dict(
        {
            "camera": image_space((64, 64, 3)),
            "joints": image_space((5,), np.float64, 1.0),
            "mode": spaces.Discrete(4, start=1),
        }
    )
    env = from_gymnasium(TinyEnv(space, spaces.Discrete(2)), seed=0)
    history = check_env(env, steps=3)
    assert env.obs_space["camera"].shape == (64, 64, 3)
    assert env.obs_space["joints"].shape == (5,) and env.obs_space["joints"].dtype == np.float32
    np.testing.assert_array_equal(history[0]["mode"], [1, 0, 0, 0])  # start 1 maps to index 0


def test_truncation_is_last_not_terminal():
    inner = TinyEnv(image_space((3,), np.float32), spaces.Discrete(2), truncate_at=3)
    env = from_gymnasium(inner, seed=0)
    history = check_env(env, steps=3)
    assert history[3]["is_last"] and not history[3]["is_terminal"]


def test_render_image():
    inner = TinyEnv(image_space((4,), np.float32), spaces.Discrete(2))
    env = from_gymnasium(inner, seed=0, render_image=True)
    history = check_env(env, steps=2)
    assert env.obs_space["image"].shape == (64, 64, 3) and "vector" in env.obs_space
    assert history[1]["image"][0, 0, 0] == 7


def test_action_repeat_sums_rewards():
    inner = TinyEnv(image_space((3,), np.float32), spaces.Discrete(2), terminate_at=5)
    env = from_gymnasium(inner, seed=0, action_repeat=2)
    rewards = [float(obs["reward"]) for obs in check_env(env, steps=3)[:4]]
    assert rewards == [0.0, 2.0, 2.0, 1.0]  # the third repeat stops early at termination


@pytest.mark.parametrize(
    ("observation_space", "action_space", "message"),
    [
        (spaces.MultiDiscrete([2, 3]), spaces.Discrete(2), "MultiDiscrete"),
        (spaces.Tuple([spaces.Discrete(2)]), spaces.Discrete(2), "Tuple"),
        (spaces.Dict({"text": spaces.Text(5)}), spaces.Discrete(2), "'text'"),
        (spaces.Box(0, 1, (2, 2, 2, 2)), spaces.Discrete(2), "Box"),
        (spaces.Box(0, 1, (3,)), spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
        (spaces.Box(0, 1, (3,)), spaces.Box(-np.inf, np.inf, (2,)), "unbounded"),
        (spaces.Box(0, 1, (3,)), spaces.MultiBinary(3), "MultiBinary"),
    ],
)
def test_unsupported_spaces(observation_space, action_space, message):
    with pytest.raises(ValueError, match=message):
        from_gymnasium(TinyEnv(observation_space, action_space), seed=0)


def test_unknown_gym_id_suggests_close_ids():
    with pytest.raises(ValueError, match="gym:CartPole-v1"):
        make_env("gym:CartPol-v1", seed=0)


def test_rejects_non_one_hot_action():
    env = make_env("gym:CartPole-v1", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="one-hot"):
        env.step({"action": np.array([1.0, 1.0], np.float32)})

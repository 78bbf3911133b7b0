"""DMC adapter (spec §5.2): proprio contract, action repeat, limits, seeding, and pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control's first import, as the adapter does
pytest.importorskip("dm_control")

from dm_control import suite  # noqa: E402

from dreamerv2_torch.envs import make_env  # noqa: E402
from dreamerv2_torch.envs.contract import check_env, check_obs  # noqa: E402
from dreamerv2_torch.envs.dmc import DMC, parse_task  # noqa: E402


def proprio(task: str = "dmc_walker_walk", **kwargs):
    return make_env(task, seed=0, action_repeat=2, pixels=False, **kwargs)


def actions(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, dim)).astype(np.float32)


def test_proprio_contract():
    env = proprio()
    check_env(env, steps=20)
    space = env.obs_space
    assert "image" not in space
    assert space["orientations"].shape == (14,) and space["height"].shape == (1,)
    assert space["velocity"].shape == (9,)
    assert env.act_space["action"].shape == (6,) and not env.act_space["action"].discrete


def test_task_names():
    assert parse_task("cup_catch") == ("ball_in_cup", "catch")
    assert parse_task("point_mass_easy") == ("point_mass", "easy")
    assert parse_task("cartpole_balance_sparse") == ("cartpole", "balance_sparse")
    with pytest.raises(ValueError, match="dmc_walker_walk"):
        make_env("dmc_walker_wlak", seed=0)


def test_reward_sums_over_action_repeat():
    env = proprio()
    raw = suite.load("walker", "walk", task_kwargs={"random": 0})
    np.testing.assert_allclose(
        env.reset()["orientations"], raw.reset().observation["orientations"], rtol=1e-6
    )
    for action in actions(10, 6):
        obs = env.step({"action": action})
        expected = sum(raw.step(action).reward for _ in range(2))  # bounds are [-1, 1] already
        assert obs["reward"] == pytest.approx(expected, rel=1e-6)


def test_episode_end_and_time_limit():
    env = proprio()
    env.reset()
    for step in range(500):  # DMC's own limit: 1000 control steps = 500 policy steps at repeat 2
        obs = env.step({"action": np.zeros(6, np.float32)})
        assert bool(obs["is_last"]) == (step == 499)
    assert not obs["is_terminal"]  # a time limit, discount stays 1
    env = proprio(time_limit=3)
    env.reset()
    history = [env.step({"action": np.zeros(6, np.float32)}) for _ in range(3)]
    assert [bool(obs["is_last"]) for obs in history] == [False, False, True]
    assert not history[-1]["is_terminal"]


def test_seeding():
    def run(seed):
        env = make_env("dmc_cartpole_swingup", seed=seed, action_repeat=2, pixels=False)
        obs = [env.reset()] + [env.step({"action": a}) for a in actions(5, 1)]
        return np.stack([o["position"] for o in obs])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_action_bounds_are_normalised():
    env = proprio("dmc_cartpole_swingup")
    space = env.act_space["action"]
    assert (space.low, space.high) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        env.reset()
        env.step({"action": np.array([np.nan], np.float32)})


def test_quadruped_uses_camera_two():
    assert DMC("quadruped_walk", seed=0, pixels=False)._camera == 2
    assert DMC("walker_walk", seed=0, pixels=False)._camera == 0


def test_pixels_a_few_frames():
    env = make_env("dmc_walker_walk", seed=0, action_repeat=2, size=(48, 64))
    try:
        first = env.reset()
    except Exception as error:  # any GL failure means: no headless rendering on this machine
        pytest.skip(f"headless rendering unavailable ({os.environ.get('MUJOCO_GL')}): {error}")
    history = [first] + [env.step({"action": a}) for a in actions(3, 6)]
    for obs in history:
        assert obs["image"].shape == (48, 64, 3) and obs["image"].dtype == np.uint8
        assert "orientations" in obs  # pixels come with the proprio keys, as in the official code
    assert history[0]["image"].std() > 0, "the rendered frame is blank"
    for i, obs in enumerate(history):  # MuJoCo renders a flipped view; the env must not leak it
        check_obs(obs, env.obs_space, where=f"frame {i}: ")
    assert not np.array_equal(history[0]["image"], history[-1]["image"])

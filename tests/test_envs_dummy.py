"""Dummy envs: contract, determinism, sizes, and the learnable reveal task."""

from __future__ import annotations

import numpy as np
import pytest

from dreamerv2_torch.envs import list_tasks, make_env
from dreamerv2_torch.envs.contract import check_env

EYE = np.eye(4, dtype=np.float32)


@pytest.mark.parametrize("task", list_tasks("dummy"))
def test_contract_and_episode_length(task):
    env = make_env(task, seed=0)
    history = check_env(env, steps=100)
    assert len(history) == 102  # reset, 100 steps, the reset after the end
    assert history[100]["is_last"] and not any(obs["is_last"] for obs in history[:100])
    assert bool(history[100]["is_terminal"]) == (task != "dummy_reveal")


def test_spaces():
    assert make_env("dummy_discrete", seed=0).obs_space["image"].shape == (64, 64, 3)
    assert make_env("dummy_reveal", seed=0, size=(32, 48)).reset()["image"].shape == (32, 48, 3)
    assert make_env("dummy_vector", seed=0).obs_space["vector"].shape == (8,)
    space = make_env("dummy_continuous", seed=0).act_space["action"]
    assert space.shape == (2,) and not space.discrete and (space.low, space.high) == (-1.0, 1.0)


def test_discrete_reward_depends_on_action():
    env = make_env("dummy_discrete", seed=0)
    env.reset()
    assert [float(env.step({"action": EYE[a]})["reward"]) for a in range(4)] == [1, 0, 0, 0]


def test_continuous_reward_peaks_at_half():
    env = make_env("dummy_continuous", seed=0)
    env.reset()
    best = env.step({"action": np.array([0.5, 0.5], np.float32)})["reward"]
    worse = env.step({"action": np.array([-1.0, 1.0], np.float32)})["reward"]
    assert best == 1.0 and worse < best


def target_of(image: np.ndarray) -> int:
    """The quadrant (0 TL, 1 TR, 2 BL, 3 BR) that is lit."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    means = [image[r * h : (r + 1) * h, c * w : (c + 1) * w].mean() for r in (0, 1) for c in (0, 1)]
    return int(np.argmax(means))


def test_reveal_rewards_exactly_the_shown_action():
    # Four copies with the same seed stay in lockstep (targets do not depend on actions), so copy
    # k can try action k in the same state.
    envs = [make_env("dummy_reveal", seed=3) for _ in range(4)]
    observations = [env.reset() for env in envs]
    targets = set()
    for _ in range(100):
        target = target_of(observations[0]["image"])
        targets.add(target)
        assert all(np.array_equal(obs["image"], observations[0]["image"]) for obs in observations)
        observations = [env.step({"action": EYE[k]}) for k, env in enumerate(envs)]
        assert [float(obs["reward"]) for obs in observations] == [
            float(k == target) for k in range(4)
        ]
    assert targets == {0, 1, 2, 3}


def test_reveal_random_policy_near_quarter():
    env = make_env("dummy_reveal", seed=0)
    rng = np.random.default_rng(0)  # the same seed as the env: the streams must still differ
    env.reset()
    total = sum(float(env.step({"action": EYE[rng.integers(4)]})["reward"]) for _ in range(100))
    assert 10 <= total <= 40


def test_seeding():
    def images(seed):
        env = make_env("dummy_reveal", seed=seed)
        history = [env.reset()] + [env.step({"action": EYE[0]}) for _ in range(20)]
        return np.stack([obs["image"] for obs in history])

    np.testing.assert_array_equal(images(0), images(0))
    assert not np.array_equal(images(0), images(1))


def test_rejects_non_one_hot_action():
    env = make_env("dummy_discrete", seed=0)
    env.reset()
    with pytest.raises(ValueError, match="one-hot"):
        env.step({"action": np.array([0.5, 0.5, 0, 0], np.float32)})

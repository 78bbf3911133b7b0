"""MinAtar adapter: shapes, {0, 255} images, v1 action sets, termination, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minatar")

from dreamerv2_torch.envs import make_env  # noqa: E402
from dreamerv2_torch.envs.contract import check_env  # noqa: E402

# (channels, minimal action set size) per game, minatar 1.0.15.
GAMES = {
    "asterix": (4, 5),
    "breakout": (4, 3),
    "freeway": (7, 3),
    "seaquest": (10, 6),
    "space_invaders": (6, 4),
}


@pytest.mark.parametrize("game", sorted(GAMES))
def test_shapes_values_and_actions(game):
    channels, actions = GAMES[game]
    env = make_env(f"minatar_{game}", seed=0, size=(64, 64))  # size is ignored: no resize
    history = check_env(env, steps=100)
    assert env.obs_space["image"].shape == (10, 10, channels)
    assert env.act_space["action"].n == actions
    values = np.unique(np.stack([obs["image"] for obs in history]))
    assert set(values.tolist()) <= {0, 255} and 255 in values


def test_sticky_actions_and_ramping_are_minatar_defaults():
    env = make_env("minatar_asterix", seed=0)
    game = env.env._env.game  # TimeLimit -> MinAtar adapter -> minatar.gym.BaseEnv
    assert game.sticky_action_prob == pytest.approx(0.1)
    assert game.env.ramping


def test_game_over_is_terminal_and_time_limit_is_not():
    env = make_env("minatar_breakout", seed=0)
    history = check_env(env, steps=300)  # random Breakout loses its ball within a few dozen steps
    ends = [obs for obs in history if obs["is_last"]]
    assert ends and all(obs["is_terminal"] for obs in ends)
    env = make_env("minatar_breakout", seed=0, time_limit=2)
    env.reset()
    noop = {"action": np.eye(3, dtype=np.float32)[0]}
    assert [bool(env.step(noop)["is_last"]) for _ in range(2)] == [False, True]


def rollout(seed: int, steps: int = 40, action_repeat: int = 1) -> list[dict]:
    env = make_env("minatar_asterix", seed=seed, action_repeat=action_repeat)
    history = [env.reset()]
    for a in np.random.default_rng(0).integers(5, size=steps):
        history.append(env.step({"action": np.eye(5, dtype=np.float32)[a]}))
        if history[-1]["is_last"]:
            break
    return history


def test_seeding():
    images = {seed: np.stack([obs["image"] for obs in rollout(seed)]) for seed in (0, 1)}
    np.testing.assert_array_equal(images[0], np.stack([obs["image"] for obs in rollout(0)]))
    assert not np.array_equal(images[0], images[1])


def test_action_repeat_sums_rewards():
    """Two policy steps of one frame = one policy step of two frames (same RNG draws)."""
    env1 = make_env("minatar_space_invaders", seed=0)
    env2 = make_env("minatar_space_invaders", seed=0, action_repeat=2)
    env1.reset(), env2.reset()
    total = 0.0
    for a in np.random.default_rng(0).integers(4, size=200):
        action = {"action": np.eye(4, dtype=np.float32)[a]}
        first = env1.step(action)
        second = first if first["is_last"] else env1.step(action)
        reward = float(first["reward"]) + (0.0 if first["is_last"] else float(second["reward"]))
        obs = env2.step(action)
        assert obs["reward"] == reward and obs["is_last"] == second["is_last"]
        np.testing.assert_array_equal(obs["image"], second["image"])
        total += reward
        if obs["is_last"]:
            break
    assert total > 0, "the comparison needs some reward"


def test_unknown_game():
    with pytest.raises(ValueError, match="minatar_breakout"):
        make_env("minatar_breakuot", seed=0)

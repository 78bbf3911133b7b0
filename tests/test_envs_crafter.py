"""Crafter adapter (spec §5.3) and the Crafter score."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dreamerv2_torch.envs.crafter import ACHIEVEMENTS, crafter_score, crafter_success_rates


def test_score_hand_computed():
    assert crafter_score(dict.fromkeys(ACHIEVEMENTS, 0.0)) == 0.0
    assert crafter_score(dict.fromkeys(ACHIEVEMENTS, 100.0)) == pytest.approx(100.0)
    # Half at 0 %, half at 99 %: exp((11 ln 1 + 11 ln 100) / 22) - 1 = sqrt(100) - 1 = 9.
    rates = {name: 0.0 if i % 2 else 99.0 for i, name in enumerate(ACHIEVEMENTS)}
    assert crafter_score(rates) == pytest.approx(9.0)
    # One achievement at 50 %, the rest at 0: exp(ln(51) / 22) - 1.
    rates = {f"achievement_{k}": 0.0 for k in ACHIEVEMENTS} | {"achievement_collect_wood": 50.0}
    assert crafter_score(rates) == pytest.approx(math.exp(math.log(51) / 22) - 1)


def test_score_rejects_bad_input():
    with pytest.raises(ValueError, match="missing"):
        crafter_score({"collect_wood": 10.0})
    with pytest.raises(ValueError, match="not a Crafter achievement"):
        crafter_score(dict.fromkeys(ACHIEVEMENTS, 0.0) | {"fly": 1.0})
    with pytest.raises(ValueError, match="percentage"):
        crafter_score(dict.fromkeys(ACHIEVEMENTS, 0.5) | {"wake_up": 150.0})


def test_success_rates():
    episodes = [
        {"achievement_collect_wood": 3, "achievement_wake_up": 0},  # stats.jsonl lines
        {"achievement_collect_wood": 0, "achievement_wake_up": 1},
        {"log_achievement_collect_wood": np.array([0, 0, 1]), "reward": np.ones(3)},  # replay
        {"log_achievement_collect_wood": np.array([0, 0, 0])},
    ]
    rates = crafter_success_rates(episodes)
    assert set(rates) == set(ACHIEVEMENTS)
    assert rates["collect_wood"] == 50.0 and rates["wake_up"] == 25.0
    assert rates["collect_diamond"] == 0.0


crafter = pytest.importorskip("crafter")

from dreamerv2_torch.envs import make_env  # noqa: E402
from dreamerv2_torch.envs.contract import check_env  # noqa: E402


def test_achievement_names_match_crafter():
    assert tuple(crafter.constants.achievements) == ACHIEVEMENTS


def test_contract_and_keys():
    env = make_env("crafter_reward", seed=0)
    history = check_env(env, steps=30)
    assert env.obs_space["image"].shape == (64, 64, 3)
    assert env.act_space["action"].n == 17
    for name in ACHIEVEMENTS:
        assert history[-1][f"log_achievement_{name}"].dtype == np.int32
    assert history[-1]["log_reward"].dtype == np.float32


def test_noreward_train_only():
    for mode in ("train", "eval"):
        env = make_env("crafter_noreward", seed=1, mode=mode)
        rng = np.random.default_rng(0)
        history = [env.reset()]
        history += [env.step({"action": env.act_space["action"].sample(rng)}) for _ in range(100)]
        reward = np.array([obs["reward"] for obs in history])
        log_reward = np.array([obs["log_reward"] for obs in history])
        assert np.any(log_reward != 0), "the check needs some reward in 100 random steps"
        # Train envs hide the reward from the agent; eval envs always show it.
        np.testing.assert_array_equal(reward, 0 * log_reward if mode == "train" else log_reward)


def test_death_is_terminal_and_time_limit_is_not():
    env = make_env("crafter_reward", seed=0)
    rng = np.random.default_rng(0)
    env.reset()
    for _ in range(1000):  # a random agent dies within a few hundred steps
        obs = env.step({"action": env.act_space["action"].sample(rng)})
        if obs["is_last"]:
            break
    assert obs["is_last"] and obs["is_terminal"]
    env = make_env("crafter_reward", seed=0, time_limit=2)
    env.reset()
    obs = [env.step({"action": env.act_space["action"].sample(rng)}) for _ in range(2)]
    assert obs[-1]["is_last"] and not obs[-1]["is_terminal"]


def test_recorder_only_for_train(tmp_path):
    env = make_env("crafter_reward", seed=0, logdir=tmp_path / "train")
    make_env("crafter_reward", seed=0, mode="eval", logdir=tmp_path / "eval")
    assert (tmp_path / "train" / "crafter" / "stats.jsonl").exists()
    assert not (tmp_path / "eval").exists()
    # The stats line of a finished episode carries every achievement.
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(2000):  # a random agent dies within a few hundred steps
        if env.step({"action": env.act_space["action"].sample(rng)})["is_last"]:
            break
    line = (tmp_path / "train" / "crafter" / "stats.jsonl").read_text().splitlines()[0]
    stats = json.loads(line)
    assert {f"achievement_{k}" for k in ACHIEVEMENTS} <= set(stats)
    assert crafter_score(crafter_success_rates([stats])) >= 0.0


def test_seeding():
    """Worlds are reproducible per seed. Only the first steps are compared: crafter 1.8.3 keeps
    creatures in Python sets ordered by memory address, so its (de)spawning every 10th step can
    differ between two envs with the same seed."""

    def images(seed: int):
        env = make_env("crafter_reward", seed=seed)
        first = env.reset()
        steps = [env.step({"action": np.eye(17, dtype=np.float32)[a]}) for a in (1, 2, 3, 4)]
        return np.stack([obs["image"] for obs in [first, *steps]])

    np.testing.assert_array_equal(images(0), images(0))
    assert not np.array_equal(images(0), images(1))


def test_action_repeat_must_be_one():
    with pytest.raises(ValueError, match="action_repeat 1"):
        make_env("crafter_reward", seed=0, action_repeat=2)

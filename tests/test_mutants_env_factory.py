"""Tests written for mutants of the env factory (`envs/__init__.py`) and the contract checker
(`envs/contract.py`) that survived tools/parity/mutation.sh (docs/parity.md, "Mutation testing",
"env suites: MinAtar, DMC, Crafter, Gym, the env factory"). Expected values come from the
adapters' documented rules (module docstrings, spec §5), the official code or the libraries,
never from our output."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from dreamerv2_torch.envs import make_env
from dreamerv2_torch.envs.base import FLAG_SPACES, Space, step_obs
from dreamerv2_torch.envs.contract import check_env, check_obs, check_spaces

# ------------------------------------------------------------------------------------- contract


class Faulty:
    """A discrete env of 3 actions whose episodes last 2 steps, with one mistake switched on."""

    def __init__(self, fault: str = "", act_space=None, obs_space=None):
        self.fault, self.t, self.actions = fault, 0, []
        self.obs_space = obs_space or {"vector": Space((2,), np.float32), **FLAG_SPACES}
        self.act_space = act_space or {"action": Space((3,), np.float32, 0, 1, discrete=True)}

    def _obs(self, reward, first, last, terminal):
        vector = np.zeros(2, np.float32)
        if self.fault == "nan" and self.t == 1:
            vector[1] = np.nan
        if self.fault == "flipped":
            vector = np.zeros((2, 2), np.float32)[::-1, 0]
        return {"vector": vector, **step_obs(reward, is_first=first, is_last=last,
                                               is_terminal=terminal)}

    def reset(self):
        self.t = 0
        reward = 1.0 if self.fault == "reset_reward" else 0.0
        return self._obs(reward, True, self.fault == "reset_last", False)

    def step(self, action):
        self.t += 1
        self.actions.append(action["action"])
        last = self.t == 2
        first = self.fault == "first"
        terminal = last or (self.fault == "terminal" and self.t == 1)
        return self._obs(0.0, first, last, terminal)


def test_contract_checker_steps_random_actions_and_resets_after_the_last_step() -> None:
    env = Faulty()
    history = check_env(env, steps=5)
    # Steps 2 and 4 end an episode and are followed by a reset: 1 + 5 + 2 observations.
    assert [bool(obs["is_first"]) for obs in history] == [1, 0, 0, 1, 0, 0, 1, 0]
    space, rng = env.act_space["action"], np.random.default_rng(0)  # the default seed
    np.testing.assert_array_equal(env.actions, [space.sample(rng) for _ in range(5)])


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("nan", "step 1: 'vector' has non-finite entries"),
        ("flipped", "negative strides"),
        ("reset_reward", "reset reward must be 0"),
        ("reset_last", "reset flags"),
        ("first", "step 1: is_first is set on a step"),
        ("terminal", "step 1: is_terminal without is_last"),
    ],
)
def test_contract_checker_catches_each_mistake(fault, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_env(Faulty(fault), steps=4)


@pytest.mark.parametrize(
    ("act_space", "obs_space", "message"),
    [
        ({"action": Space((3,), np.float32, 0, 1)}, None, r"\[-1, 1\]"),
        ({"action": Space((3,), np.float64, -1, 1)}, None, "float32"),
        ({"action": Space((3, 1), np.float32, -1, 1)}, None, "vectors"),
        ({"act": Space((3,), np.float32, -1, 1)}, None, "act_space keys"),
        (None, {"image": Space((4, 4, 3), np.float32), **FLAG_SPACES}, "uint8"),
        (None, {**FLAG_SPACES, "reward": Space((), np.float64)}, r"obs_space\['reward'\]"),
    ],
)
def test_contract_checker_catches_wrong_spaces(act_space, obs_space, message) -> None:
    with pytest.raises(AssertionError, match=message):
        check_spaces(Faulty(act_space=act_space, obs_space=obs_space))


def test_contract_checker_accepts_bounded_continuous_actions_and_non_float32_entries() -> None:
    obs_space = {"count": Space((), np.int32), "vector": Space((2,), np.float32), **FLAG_SPACES}
    env = Faulty(act_space={"action": Space((3,), np.float32, -1.0, 1.0)}, obs_space=obs_space)
    check_spaces(env)
    obs = {"count": np.int32(3), "vector": np.zeros(2, np.float32),
           **step_obs(0.0, is_first=True, is_last=False, is_terminal=False)}
    check_obs(obs, obs_space)
    with pytest.raises(AssertionError, match="'count' is a int, not a numpy array"):
        check_obs({**obs, "count": 3}, obs_space, where="")


# ----------------------------------------------------------------------------- the env factory

PREFIXES = "atari_, dmc_, crafter_, minatar_, dummy_, gym:"


def factory_error(task: str, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        make_env(task, seed=0, **kwargs)
    return str(info.value)


def test_factory_task_syntax_errors() -> None:
    syntax = (f"a task starts with one of {PREFIXES} followed by a name (e.g. atari_pong, "
              "dmc_walker_walk, gym:CartPole-v1).")
    assert factory_error("aftar_x") == (  # close to three suites: two are named
        f"unknown task 'aftar_x': {syntax} Did you mean the suite atari or minatar?")
    assert factory_error("zzz_x") == f"unknown task 'zzz_x': {syntax}"
    for task in ("dummy", "dummy_", "gym:", "gym_CartPole-v1", "dummy:reveal", "dmc:walker_walk"):
        assert factory_error(task).startswith(f"unknown task {task!r}: a task starts with")


def test_factory_unknown_names_within_a_suite() -> None:
    assert factory_error("dummy_zzz") == (
        "unknown dummy env 'dummy_zzz'. Valid: dummy_discrete, dummy_continuous, dummy_vector, "
        "dummy_reveal")
    assert factory_error("dummy_c") == (  # close to all four: up to five are suggested
        "unknown dummy env 'dummy_c'. Did you mean: dummy_vector, dummy_discrete, dummy_reveal, "
        "dummy_continuous? Valid: dummy_discrete, dummy_continuous, dummy_vector, dummy_reveal")
    assert factory_error("crafter_rewar") == (
        "unknown Crafter task 'crafter_rewar'. Did you mean: crafter_reward, crafter_noreward? "
        "Valid: crafter_reward, crafter_noreward")
    assert factory_error("dummy_discrete", mode="test") == (
        "mode must be one of ('train', 'eval'), got 'test'")
    assert factory_error("dummy_discrete", action_repeat=0) == "action_repeat must be >= 1, got 0"
    make_env("dummy_discrete", seed=0, action_repeat=1)  # 1 is allowed


def test_factory_crafter_reward_is_rewarded_in_train_mode() -> None:
    pytest.importorskip("crafter")
    env = make_env("crafter_reward", seed=1)
    rng = np.random.default_rng(0)
    env.reset()
    history = [env.step({"action": env.act_space["action"].sample(rng)}) for _ in range(100)]
    rewards = np.array([obs["reward"] for obs in history])
    assert np.any(rewards != 0), "the check needs some reward in 100 random steps"
    np.testing.assert_array_equal(rewards, [obs["log_reward"] for obs in history])


def test_factory_forwards_size_and_action_repeat_to_atari() -> None:
    if any(importlib.util.find_spec(m) is None for m in ("ale_py", "cv2")):
        pytest.skip("needs the atari extra")
    env = make_env("atari_pong", seed=0, action_repeat=2, size=(48, 64))
    assert env.reset()["image"].shape == (48, 64, 1)
    before = env.ale.getEpisodeFrameNumber()
    env.step({"action": np.eye(env.act_space["action"].n, dtype=np.float32)[0]})
    assert env.ale.getEpisodeFrameNumber() - before == 2  # one policy step = action_repeat frames


def test_factory_lists_the_tasks_of_each_suite() -> None:
    from dreamerv2_torch.envs import list_tasks

    assert list_tasks("crafter") == ["crafter_reward", "crafter_noreward"]
    assert list_tasks("minatar") == [
        "minatar_asterix", "minatar_breakout", "minatar_freeway", "minatar_seaquest",
        "minatar_space_invaders"]
    assert list_tasks("dummy") == ["dummy_discrete", "dummy_continuous", "dummy_vector",
                                   "dummy_reveal"]
    assert "gym:CartPole-v1" in list_tasks("gym")
    if importlib.util.find_spec("dm_control") is not None:
        assert "dmc_walker_walk" in list_tasks("dmc")
    if importlib.util.find_spec("ale_py") is not None:
        assert "atari_pong" in list_tasks("atari") and "atari_james_bond" in list_tasks("atari")
    with pytest.raises(ValueError) as info:
        list_tasks("atary")
    assert str(info.value) == (
        "unknown suite 'atary'. Did you mean: atari, minatar? Valid: atari, dmc, crafter, "
        "minatar, gym, dummy")

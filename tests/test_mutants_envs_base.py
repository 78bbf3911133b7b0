"""Tests written for mutants of the shared env wrappers (`envs/base.py`: spec §5's time limit,
action repeat, action normalisation, flags and spaces) that survived tools/parity/mutation.sh
(docs/parity.md, "Mutation testing", "replay, env and resume code")."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from dreamerv2_torch.envs.base import (
    ActionRepeat,
    NormalizeAction,
    Space,
    TimeLimit,
    Wrapper,
    check_one_hot,
    env_state,
    step_obs,
)
from dreamerv2_torch.envs.dummy import DummyEnv


class Bounded:
    """A continuous env that records the actions it receives (no get_state)."""

    def __init__(self, low, high):
        self.act_space = {"action": Space((len(low),), np.float32, np.asarray(low, np.float32),
                                          np.asarray(high, np.float32))}
        self.obs_space = {}
        self.actions: list[np.ndarray] = []

    def step(self, action):
        self.actions.append(action["action"])
        return step_obs(0.5, is_first=False, is_last=False, is_terminal=False)


def test_space_samples_have_the_space_dtype_and_bounds() -> None:
    rng = np.random.default_rng(0)
    one_hot = Space((4,), np.float32, 0, 1, discrete=True).sample(rng)
    assert one_hot.dtype == np.float32 and one_hot.sum() == 1
    box = Space((2000,), np.float32, 2.0, 4.0)
    sample = box.sample(rng)
    assert sample.dtype == np.float32 and 2.0 <= sample.min() and sample.max() <= 4.0
    assert sample.min() < 2.1 and sample.max() > 3.9  # spread over the whole interval
    zeros = Space((2, 3), np.uint8).zeros()
    assert zeros.shape == (2, 3) and zeros.dtype == np.uint8 and not zeros.any()


def test_flags_are_bool_and_reward_float32_whatever_the_input_types() -> None:
    obs = step_obs(np.int64(2), is_first=0, is_last=1, is_terminal=np.int64(0))
    assert obs["reward"].dtype == np.float32
    assert [obs[k].dtype for k in ("is_first", "is_last", "is_terminal")] == [np.bool_] * 3
    assert (bool(obs["is_first"]), bool(obs["is_last"])) == (False, True)
    repeated = ActionRepeat(Bounded([-1], [1]), 3).step({"action": np.zeros(1)})
    assert repeated["reward"].dtype == np.float32 and float(repeated["reward"]) == 1.5


def test_action_repeat_of_one_is_allowed_and_zero_refused() -> None:
    assert float(ActionRepeat(Bounded([-1], [1]), 1).step({"action": np.zeros(1)})["reward"]) == 0.5
    with pytest.raises(ValueError, match=r"^action_repeat must be >= 1, got 0$"):
        ActionRepeat(Bounded([-1], [1]), 0)


def test_error_messages_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"^the action has non-finite entries: .* \(the policy "
                       r"produced NaN; its weights or its input observation are not finite\)$"):
        check_one_hot(np.array([np.nan, 0, 0], np.float32), 3)
    with pytest.raises(ValueError, match="^NormalizeAction needs a continuous action space"):
        NormalizeAction(DummyEnv("discrete", seed=0))
    env = NormalizeAction(Bounded([-1], [1]))
    with pytest.raises(ValueError, match=r"^action has non-finite entries: \[nan\]$"):
        env.step({"action": np.array([np.nan])})
    with pytest.raises(AttributeError, match="^__missing__$"):
        Wrapper(Bounded([-1], [1])).__missing__  # noqa: B018 - the lookup is the test


def test_wrappers_copy_and_pickle() -> None:
    """Dunder lookups are not forwarded to the inner env: copy/pickle of a wrapper (a fresh
    object without `env` yet) would otherwise recurse."""
    env = TimeLimit(DummyEnv("discrete", seed=0, length=10), 5)
    for clone in (copy.copy(env), pickle.loads(pickle.dumps(env))):
        assert clone.reset()["is_first"]
        assert clone.act_space["action"].n == env.act_space["action"].n


def test_normalize_action_with_one_finite_bound_and_float64_arithmetic() -> None:
    """Official `NormalizeAction`: a dimension is mapped only if both bounds are finite; the
    others pass through and keep their bounds. The map is computed in float64."""
    inner = Bounded([0.0, -np.inf], [2.0, 5.0])
    env = NormalizeAction(inner)
    space = env.act_space["action"]
    assert space.low.dtype == space.high.dtype == np.float32
    np.testing.assert_array_equal(space.low, [-1.0, -np.inf])
    np.testing.assert_array_equal(space.high, [1.0, 5.0])
    env.step({"action": np.array([1e-8, 3.0], np.float32)})
    assert inner.actions[-1][0] == pytest.approx(1 + float(np.float32(1e-8)), abs=1e-12)
    assert inner.actions[-1][1] == 3.0
    assert Wrapper(inner).step({"action": np.ones(2)}) == inner.step({"action": np.ones(2)})


def test_time_limit_state_round_trip() -> None:
    """A stopped run resumes mid-episode: the inner state and the step counter come back."""
    env = TimeLimit(DummyEnv("discrete", seed=3, length=100), 5)
    env.reset()
    action = {"action": np.eye(env.act_space["action"].n, dtype=np.float32)[0]}
    for _ in range(2):
        env.step(action)
    state = env_state(env)
    assert state["time_limit_step"] == 2 and state["env"] == env.env.get_state()
    resumed = TimeLimit(DummyEnv("discrete", seed=9, length=100), 5)
    resumed.reset()
    resumed.set_state(state)
    assert resumed.env.get_state() == state["env"]
    assert [bool(resumed.step(action)["is_last"]) for _ in range(3)] == [False, False, True]
    plain = TimeLimit(Bounded([-1], [1]), 5)  # an env that cannot save its state
    assert env_state(plain) is None and plain.get_state() is None
    assert env_state(Bounded([-1], [1])) is None

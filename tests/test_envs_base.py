"""Shared wrappers, the contract checker, and make_env's parsing, errors and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dreamerv2_torch.envs import (
    ActionRepeat,
    NormalizeAction,
    Space,
    TimeLimit,
    check_one_hot,
    list_tasks,
    make_env,
)
from dreamerv2_torch.envs.base import FLAG_SPACES, require, step_obs
from dreamerv2_torch.envs.contract import check_env, check_obs


class Recorder:
    """A continuous-action env that records actions and ends after ``length`` steps."""

    def __init__(self, low, high, length=10):
        self.low, self.high, self.length = low, high, length
        self.actions, self.t = [], 0

    @property
    def obs_space(self):
        return {"vector": Space((1,), np.float32), **FLAG_SPACES}

    @property
    def act_space(self):
        return {"action": Space((2,), np.float32, self.low, self.high)}

    def reset(self):
        self.t = 0
        return {
            "vector": np.zeros(1, np.float32),
            **step_obs(0, is_first=True, is_last=False, is_terminal=False),
        }

    def step(self, action):
        self.t += 1
        self.actions.append(np.asarray(action["action"]))
        done = self.t >= self.length
        flags = step_obs(self.t, is_first=False, is_last=done, is_terminal=done)
        return {"vector": np.full(1, self.t, np.float32), **flags}

    def close(self):
        pass


def test_normalize_action_affine_map():
    inner = Recorder(np.array([0.0, -2.0], np.float32), np.array([10.0, 2.0], np.float32))
    env = NormalizeAction(inner)
    assert (env.act_space["action"].low, env.act_space["action"].high) == (-1.0, 1.0)
    env.reset()
    env.step({"action": np.array([-1.0, 1.0])})
    env.step({"action": np.array([0.0, 0.5])})
    np.testing.assert_allclose(inner.actions, [[0.0, 2.0], [5.0, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        env.step({"action": np.zeros(3)})


def test_normalize_action_keeps_unbounded_dims():
    inner = Recorder(np.array([0.0, -np.inf], np.float32), np.array([4.0, np.inf], np.float32))
    env = NormalizeAction(inner)
    np.testing.assert_array_equal(env.act_space["action"].low, [-1.0, -np.inf])
    env.step({"action": np.array([0.0, 7.0])})
    np.testing.assert_allclose(inner.actions[-1], [2.0, 7.0])


def test_action_repeat_sums_and_stops_at_last():
    inner = Recorder(-1.0, 1.0, length=5)
    env = ActionRepeat(inner, 2)
    env.reset()
    rewards = [float(env.step({"action": np.zeros(2)})["reward"]) for _ in range(3)]
    assert rewards == [1 + 2, 3 + 4, 5]  # the third repeat stops at the end of the episode
    assert inner.t == 5


def test_time_limit():
    env = TimeLimit(Recorder(-1.0, 1.0, length=100), 3)
    for _ in range(2):  # the counter restarts at reset
        env.reset()
        history = [env.step({"action": np.zeros(2)}) for _ in range(3)]
        assert [bool(obs["is_last"]) for obs in history] == [False, False, True]
        assert not any(obs["is_terminal"] for obs in history)


def test_check_one_hot():
    assert check_one_hot(np.array([0, 0, 1], np.float32), 3) == 2
    with pytest.raises(ValueError, match="not one-hot"):
        check_one_hot(np.array([0, 1, 1], np.float32), 3)


def test_contract_checker_catches_mistakes():
    env = Recorder(-1.0, 1.0)
    check_env(env, steps=12)
    bad = {
        "vector": np.zeros(1, np.float64),
        **step_obs(0, is_first=True, is_last=False, is_terminal=False),
    }
    with pytest.raises(AssertionError, match="dtype"):
        check_obs(bad, env.obs_space)


def test_unknown_task_errors():
    with pytest.raises(ValueError, match="atari_"):
        make_env("atrai_pong", seed=0)
    with pytest.raises(ValueError, match="gym:"):
        make_env("gym_CartPole-v1", seed=0)
    with pytest.raises(ValueError, match="dummy_reveal"):
        make_env("dummy_reveel", seed=0)
    with pytest.raises(ValueError, match="crafter_noreward"):
        make_env("crafter_norewrd", seed=0)
    with pytest.raises(ValueError, match="mode"):
        make_env("dummy_discrete", seed=0, mode="test")
    with pytest.raises(ValueError, match="suite"):
        list_tasks("atary")


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` fail
    monkeypatch.setitem(sys.modules, "ale_py.roms", None)
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[atari\]"'):
        require("ale_py.roms", "atari")
    with pytest.raises(ImportError, match=r"dreamerv2-torch\[atari\]"):
        make_env("atari_pong", seed=0)


def test_package_imports_no_suite():
    code = (
        "import sys, dreamerv2_torch.envs, dreamerv2_torch.envs.gym, dreamerv2_torch.envs.dmc\n"
        "import dreamerv2_torch.envs.atari, dreamerv2_torch.envs.crafter\n"
        "import dreamerv2_torch.envs.minatar\n"
        "heavy = ('ale_py', 'cv2', 'dm_control', 'mujoco', 'crafter', 'minatar', 'torch')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

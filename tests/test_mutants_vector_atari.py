"""Tests for mutants of vector_atari.py that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing"): the emulator settings of spec §5.1 as ale-py receives them (bound to the real
`AtariVectorEnv` signature with its defaults applied, so a setting left out whose library default
is the same value is no difference), seeding and partial resets, the time limit in policy steps,
the spaces and `from_config`. A recording stand-in replaces the C++ env: no emulator runs."""

from __future__ import annotations

import inspect
import sys
import types

import numpy as np
import pytest

vector_env = pytest.importorskip("ale_py.vector_env")

from dreamerv2_torch import vector_atari  # noqa: E402
from dreamerv2_torch.envs.atari import rom_id  # noqa: E402
from dreamerv2_torch.envs.base import Space  # noqa: E402
from dreamerv2_torch.vector_atari import VectorAtari, from_config  # noqa: E402


class Recorder:
    """The settings ale-py would run with, and scripted frames: env i, step t shows t + 10 i."""

    def __init__(self, *args, **kwargs):
        bound = inspect.signature(vector_env.AtariVectorEnv.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        self.settings = {k: v for k, v in bound.arguments.items() if k != "self"}
        self.settings["autoreset_mode"] = getattr(self.settings["autoreset_mode"], "value",
                                                  self.settings["autoreset_mode"])
        s, n = self.settings, self.settings["num_envs"]
        self.shape = (n, 1, s["img_height"], s["img_width"]) + (() if s["grayscale"] else (3,))
        self.single_action_space = types.SimpleNamespace(n=18 if s["full_action_space"] else 6)
        self.resets, self.actions, self.terminated = [], [], np.zeros(n, bool)

    def _frames(self):
        offset = 10 * np.arange(self.shape[0]).reshape(-1, *[1] * (len(self.shape) - 1))
        return (np.full(self.shape, len(self.actions)) + offset).astype(np.uint8)

    def reset(self, seed=None, options=None):
        self.resets.append((seed, options))
        return self._frames(), {}

    def step(self, index):
        self.actions.append(index)
        n = self.shape[0]
        return self._frames(), np.full(n, 2.5), self.terminated.copy(), np.zeros(n, bool), {}


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setattr(vector_atari, "require",
                        lambda module, extra: types.SimpleNamespace(AtariVectorEnv=Recorder))


def one_hot(index, n=18):
    return {"action": np.eye(n, dtype=np.float32)[index]}


def test_the_default_settings_are_the_papers_protocol(recorded):
    env = VectorAtari("boxing", 3, seed=5)
    settings = env.env.settings
    assert settings.pop("max_num_frames_per_episode") > 108_000  # the policy-step limit decides
    assert settings == dict(  # spec §5.1: sticky 0.25, <= 30 NOOPs, raw rewards, no life loss
        game=rom_id("boxing"), num_envs=3, batch_size=0, num_threads=0, thread_affinity_offset=-1,
        repeat_action_probability=0.25, full_action_space=True, continuous=False,
        continuous_action_threshold=0.5, autoreset_mode="NextStep", img_height=64, img_width=64,
        grayscale=True, stack_num=1, frameskip=4, maxpool=True, noop_max=30, episodic_life=False,
        life_loss_info=False, reward_clipping=False, use_fire_reset=False)
    assert env.obs_space["image"] == Space((64, 64, 1), np.uint8, 0, 255)
    assert env.act_space["action"] == Space((18,), np.float32, 0.0, 1.0, discrete=True)
    env.reset(range(3))
    assert not any(obs["is_last"] for _ in range(50) for obs in env.step([one_hot(0)] * 3))


def test_every_argument_reaches_ale(recorded):
    env = VectorAtari("pong", 2, seed=0, action_repeat=2, size=(40, 48), grayscale=False,
                      all_actions=False, time_limit=9, sticky_prob=0.0, noop_max=0, threads=3)
    settings = env.env.settings
    assert (settings["img_height"], settings["img_width"], settings["frameskip"]) == (40, 48, 2)
    assert settings["grayscale"] is False and settings["full_action_space"] is False
    assert settings["repeat_action_probability"] == 0.0 and settings["noop_max"] == 0
    assert settings["num_threads"] == 3 and env.time_limit == 9
    assert env.obs_space["image"].shape == (40, 48, 3) and env.act_space["action"].shape == (6,)
    assert env.reset([0, 1])[1]["image"].shape == (40, 48, 3)


def test_seeded_once_then_partial_resets_and_the_time_limit_in_policy_steps(recorded):
    env = VectorAtari("boxing", 3, seed=5, time_limit=3)
    first = env.reset([0, 1, 2])
    seed, options = env.env.resets[0]
    assert seed.tolist() == [5, 6, 7] and options is None  # env i: seed + i
    assert [o["image"][0, 0, 0] for o in first] == [0, 10, 20] and first[0]["image"].shape[-1] == 1
    assert all(o["is_first"] and not o["is_last"] and not o["is_terminal"] for o in first)
    assert first[0]["reward"] == 0.0 and first[0]["reward"].dtype == np.float32
    for t in (1, 2, 3):
        obs = env.step([one_hot(4), one_hot(5), one_hot(17)])
        assert [o["is_last"] for o in obs] == [t == 3] * 3
        assert not any(o["is_terminal"] for o in obs)
    assert env.env.actions[0].tolist() == [4, 5, 17]
    assert obs[1]["reward"] == np.float32(2.5) and obs[1]["reward"].dtype == np.float32
    assert not obs[1]["is_first"] and obs[2]["image"][0, 0, 0] == 23
    again = env.reset([1])  # the game continues its stream: no new seed
    seed, options = env.env.resets[1]
    assert seed is None and options["reset_mask"].tolist() == [False, True, False]
    assert len(again) == 1 and again[0]["image"][0, 0, 0] == 13
    env.env.terminated[2] = True
    obs = env.step([one_hot(0)] * 3)
    assert [o["is_last"] for o in obs] == [True, False, True]  # env 1 restarted its count
    assert [o["is_terminal"] for o in obs] == [False, False, True]
    assert env.get_states() == [None] * 3 and env.set_states([None] * 3) is None


def test_from_config_and_a_task_that_is_not_atari(recorded):
    config = types.SimpleNamespace(task="atari_pong", envs=2, action_repeat=3, render_size=[40, 48],
                                   atari_grayscale=False, atari_all_actions=False, time_limit=7)
    env = from_config(config, seed=11)
    settings = env.env.settings
    assert settings["game"] == rom_id("pong") and settings["num_envs"] == 2
    assert (settings["frameskip"], settings["img_height"], settings["img_width"]) == (3, 40, 48)
    assert settings["grayscale"] is False and settings["full_action_space"] is False
    assert env.time_limit == 7 and env.seed == 11
    env.reset([0, 1])
    assert env.env.resets[0][0].tolist() == [11, 12]
    config.task = "dmc_walker_walk"
    with pytest.raises(ValueError, match="^atari_vector needs an atari_<game> task, not "
                       "'dmc_walker_walk'$"):
        from_config(config, seed=0)


def test_a_missing_ale_names_the_atari_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py.vector_env", None)
    with pytest.raises(ImportError, match=r'pip install "dreamerv2-torch\[atari\]"'):
        VectorAtari("boxing", 1, seed=0)

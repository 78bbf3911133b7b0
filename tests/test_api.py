"""The Python API (`dreamerv2_torch.train`): env objects and factories, configs, errors.

Two short real runs (a gymnasium env object; a continuous factory with 2 worker processes and an
eval env), the rest with `training.train` replaced by a recorder, which is enough to check what
reaches the loop.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import yaml

import dreamerv2_torch
from dreamerv2_torch import Config, resolve, train
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.logger import read_jsonl

TINY = {"steps": 150, "threads": 1, "progress": False}


def pendulum(seed: int, mode: str) -> gymnasium.Env:
    return gymnasium.make("Pendulum-v1")


def test_package_exports():
    assert {"Config", "resolve", "train"} <= set(dreamerv2_torch.__all__)
    assert isinstance(resolve(["debug"]), Config)


def test_gymnasium_env_object(tmp_path):
    logdir = tmp_path / "cartpole"
    result = train(gymnasium.make("CartPole-v1"), presets=["debug"], logdir=str(logdir), **TINY)
    assert result["step"] == 150 and result["logdir"] == str(logdir)
    saved = yaml.safe_load((logdir / "config.yaml").read_text())
    assert saved["task"] == "gym:CartPole-v1" and saved["eval_eps"] == 0
    scores = read_jsonl(logdir / "scores.jsonl")
    assert scores and {s["mode"] for s in scores} == {"train"}  # no eval env: no eval episodes
    assert any("model_loss" in m for m in read_jsonl(logdir / "metrics.jsonl"))


def test_continuous_factory_in_two_workers_with_evaluation(tmp_path):
    logdir = tmp_path / "pendulum"
    result = train(pendulum, resolve(["debug"]), logdir=str(logdir), envs=2, **TINY)
    assert result["step"] >= 150
    saved = yaml.safe_load((logdir / "config.yaml").read_text())
    assert saved["task"] == "api:pendulum" and saved["envs"] == 2
    scores = read_jsonl(logdir / "scores.jsonl")
    assert {s["mode"] for s in scores} == {"train", "eval"}
    episode = np.load(next((logdir / "train_episodes").glob("*.npz")))
    action = episode["action"]
    assert action.shape[1:] == (1,) and np.abs(action).max() <= 1.0 and action.std() > 0


@pytest.fixture
def recorded(monkeypatch):
    """Replace the training loop with one that records its config and builds its envs."""
    calls = []

    def fake_train(config, env_factory, progress=True):
        train_env = env_factory(config.seed, "train")
        eval_env = env_factory(config.seed + 10_000, "eval") if config.eval_eps else None
        calls.append((config, train_env, eval_env))
        return {"step": 0, "frames": 0, "stopped": False}

    monkeypatch.setattr("dreamerv2_torch.training.train", fake_train)
    return calls


def test_overrides_presets_and_our_env_objects(recorded, tmp_path):
    train(DummyEnv("continuous", seed=0), presets=["debug"], logdir=str(tmp_path),
          eval_env=DummyEnv("continuous", seed=1), model_opt__lr=3e-4, **{"rssm.deter": 16})
    config, train_env, eval_env = recorded[0]
    assert config.model_opt.lr == 3e-4 and config.rssm.deter == 16
    assert config.time_limit == 100  # from the debug preset
    assert config.task == "api:DummyEnv" and config.eval_eps == 1
    # Our own env got the make_env wrappers: [-1, 1] actions and the time limit.
    assert train_env.act_space["action"].low == -1.0 and eval_env is not None
    obs = train_env.reset()
    for _ in range(100):
        obs = train_env.step({"action": np.zeros(2, np.float32)})
    assert obs["is_last"]


def test_factory_arities(recorded, tmp_path):
    seen = []

    def with_seed(seed):
        seen.append(seed)
        return gymnasium.make("CartPole-v1")

    train(with_seed, logdir=str(tmp_path / "a"), seed=3)
    train(lambda: gymnasium.make("CartPole-v1"), logdir=str(tmp_path / "b"))
    assert seen == [3, 10_003]
    assert all(c.task.startswith("api:") for c, _, _ in recorded)
    assert recorded[0][1].obs_space["vector"].shape == (4,)


def test_errors(recorded, tmp_path):
    env = gymnasium.make("CartPole-v1")
    with pytest.raises(ValueError, match="needs a factory"):
        train(env, logdir=str(tmp_path), envs=2)
    with pytest.raises(ValueError, match="needs a logdir"):
        train(env)
    with pytest.raises(ValueError, match="either a config or preset"):
        train(env, Config(), presets=["debug"], logdir=str(tmp_path))
    with pytest.raises(TypeError, match="expected a gymnasium.Env"):
        train(42, logdir=str(tmp_path))
    with pytest.raises(Exception, match="unknown config key"):
        train(env, logdir=str(tmp_path), no_such_key=1)
    bad = gymnasium.make("CartPole-v1")
    bad.observation_space = gymnasium.spaces.MultiDiscrete([3, 3])
    with pytest.raises(ValueError, match="unsupported observation space.*MultiDiscrete"):
        train(bad, logdir=str(tmp_path))
    assert not recorded

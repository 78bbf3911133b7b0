"""Issue 8: use a trained agent — `dreamerv2_torch.load(logdir).act(obs, state)` on raw gymnasium
observations, `dreamerv2_torch.evaluate(logdir, env=..., episodes=...)`, and a clear message for a
run trained on an env of the user's code."""

import shutil
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

import dreamerv2_torch as dv2

TINY = {"steps": 150, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("trained") / "cartpole"
    dv2.train(lambda seed, mode: gymnasium.make("CartPole-v1"), presets=["debug"],
              logdir=str(logdir), **TINY)
    return logdir


def test_load_and_act_on_raw_gymnasium_observations(cartpole):
    env = gymnasium.make("CartPole-v1")
    agent = dv2.load(cartpole, env=env)
    assert agent.step == 150
    obs, _ = env.reset(seed=0)
    state, steps, done = None, 0, False
    while not done and steps < 50:
        action, state = agent.act(obs, state)
        assert isinstance(action, int) and env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        done, steps = terminated or truncated, steps + 1
    assert steps > 0


def test_evaluate_from_python_with_the_env(cartpole):
    result = dv2.evaluate(cartpole, env=lambda: gymnasium.make("CartPole-v1"), episodes=2,
                          video=False)
    assert result["episodes"] == 2 and len(result["returns"]) == 2


def test_api_run_without_an_env_says_how_to_pass_it(cartpole):
    with pytest.raises(ValueError, match=r"pass it: dreamerv2_torch.evaluate\("):
        dv2.load(cartpole)
    exe = shutil.which("dreamerv2-torch")
    entry = [exe] if exe else [sys.executable, "-m", "dreamerv2_torch"]
    out = subprocess.run([*entry, "eval", "--logdir", str(cartpole)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "env=<env or factory>" in line


def test_continuous_actions_come_back_in_the_env_bounds(tmp_path):
    logdir = tmp_path / "pendulum"
    dv2.train(gymnasium.make("Pendulum-v1"), presets=["debug"], logdir=str(logdir), **TINY)
    env = gymnasium.make("Pendulum-v1")
    agent = dv2.load(logdir)  # a gym:<id> task is rebuilt from its name
    obs, _ = env.reset(seed=0)
    action, state = agent.act(obs)
    assert action.shape == (1,) and action.dtype == env.action_space.dtype
    assert env.action_space.contains(action)
    action, _ = agent.act(obs, state, mode="train")
    assert env.action_space.contains(action)


def test_load_a_task_run_and_act_on_its_env(tmp_path):
    logdir = tmp_path / "dummy"
    dv2.train(lambda: __import__("dreamerv2_torch.envs", fromlist=["make_env"]).make_env(
        "dummy_discrete", seed=0), presets=["debug"], logdir=str(logdir), task="dummy_discrete",
        **TINY)
    agent = dv2.load(logdir)
    env = agent.make_env()
    obs = env.reset()
    action, state = agent.act(obs)
    assert action.shape == env.act_space["action"].shape and np.isclose(action.sum(), 1.0)
    obs = env.step({"action": action})
    action, _ = agent.act(obs, state)


def test_a_gpu_run_on_a_machine_without_one_names_the_fix(cartpole, tmp_path, monkeypatch):
    import shutil as sh

    copy = tmp_path / "gpu_run"
    sh.copytree(cartpole, copy)
    text = (copy / "config.yaml").read_text().replace("device: auto", "device: cuda")
    (copy / "config.yaml").write_text(text)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="pass device='cpu'"):
        dv2.load(copy, env=gymnasium.make("CartPole-v1"))
    assert dv2.load(copy, env=gymnasium.make("CartPole-v1"), device="cpu").step == 150

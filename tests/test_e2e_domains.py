"""End to end through the real CLI, one tiny `debug` run per domain (issue 3): DMC proprio and
vision (continuous actions, no discount head), Crafter (score and achievements), MinAtar, a
Gymnasium id, the continuous dummy, and `--envs 2` (worker processes). Suites that are not
installed are skipped; pixel DMC is skipped where headless EGL rendering does not work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamerv2_torch.logger import read_jsonl


def cli(logdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--logdir",
                          str(logdir), "--threads", "1", *args],
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def episodes(logdir: Path, mode: str = "train") -> list[dict]:
    return [dict(np.load(p)) for p in sorted((logdir / f"{mode}_episodes").glob("*.npz"))]


def checkpoint(logdir: Path) -> dict:
    return torch.load(logdir / "checkpoint.pt", weights_only=True)


def assert_continuous(logdir: Path, dims: int) -> None:
    state = checkpoint(logdir)
    assert not any(k.startswith("wm.heads.discount") for k in state["agent"]["nets"])
    action = np.concatenate([ep["action"] for ep in episodes(logdir)])
    assert action.shape[1] == dims and np.abs(action).max() <= 1.0
    assert len(np.unique(action)) > 10  # real-valued, not one-hot


def test_dmc_proprio(tmp_path):
    pytest.importorskip("dm_control")
    logdir = tmp_path / "walker"
    cli(logdir, "--preset", "dmc_proprio", "debug", "--task", "dmc_walker_walk", "--steps", "150")
    assert_continuous(logdir, 6)
    ep = episodes(logdir)[0]
    assert "image" not in ep and ep["orientations"].shape[1:] == (14,)
    assert checkpoint(logdir)["step"] == 150
    assert any("eval_return" in m for m in read_jsonl(logdir / "metrics.jsonl"))


def _egl_works() -> bool:
    code = ("from dm_control import suite; e = suite.load('cartpole', 'swingup'); "
            "e.physics.render(8, 8)")
    env = {**os.environ, "MUJOCO_GL": "egl"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          timeout=120).returncode == 0


def test_dmc_vision(tmp_path):
    pytest.importorskip("dm_control")
    if not _egl_works():
        pytest.skip("headless EGL rendering is not available (see docs/environments.md)")
    logdir = tmp_path / "walker_pixels"
    cli(logdir, "--preset", "dmc_vision", "debug", "--task", "dmc_walker_walk", "--steps", "110",
        "--time_limit", "30")
    assert_continuous(logdir, 6)
    ep = episodes(logdir)[0]
    assert ep["image"].shape[1:] == (64, 64, 3) and ep["image"].std() > 0


def test_crafter_score_and_achievements(tmp_path):
    pytest.importorskip("crafter")
    logdir = tmp_path / "crafter"
    cli(logdir, "--preset", "crafter", "debug", "--steps", "150")
    metrics = read_jsonl(logdir / "metrics.jsonl")
    scored = [m for m in metrics if "crafter_score" in m]
    assert scored and all(0 <= m["crafter_score"] <= 100 for m in scored)
    rates = {k: v for k, v in scored[-1].items() if k.startswith("achievement_")}
    assert len(rates) == 22 and all(0 <= v <= 100 for v in rates.values())
    assert any(k.startswith("max_train_log_achievement_") for k in scored[-1])
    # The running counts are checkpointed (one per finished train episode) and a resumed run
    # continues them rather than starting again from zero.
    train_eps = [s for s in read_jsonl(logdir / "scores.jsonl") if s["mode"] == "train"]
    assert checkpoint(logdir)["crafter"]["episodes"] == len(train_eps) > 0
    cli(logdir, "--preset", "crafter", "debug", "--steps", "260")
    train_eps = [s for s in read_jsonl(logdir / "scores.jsonl") if s["mode"] == "train"]
    assert checkpoint(logdir)["crafter"]["episodes"] == len(train_eps) >= 2


def test_minatar(tmp_path):
    pytest.importorskip("minatar")
    logdir = tmp_path / "breakout"
    cli(logdir, "--preset", "minatar", "debug", "--steps", "150")
    ep = episodes(logdir)[0]
    assert ep["image"].shape[1:] == (10, 10, 4) and set(np.unique(ep["image"])) <= {0, 255}
    assert ep["action"].shape[1] == 3  # Breakout's minimal action set, one-hot
    state = checkpoint(logdir)
    assert state["step"] >= 150 and state["updates"] > 1


def test_gymnasium_id(tmp_path):
    logdir = tmp_path / "cartpole"
    cli(logdir, "--preset", "debug", "--task", "gym:CartPole-v1", "--steps", "150")
    ep = episodes(logdir)[0]
    assert ep["vector"].shape[1:] == (4,) and ep["action"].shape[1] == 2
    nets = checkpoint(logdir)["agent"]["nets"]
    assert any("encoder.mlp" in k for k in nets) and not any("encoder.cnn" in k for k in nets)


def test_continuous_dummy(tmp_path):
    logdir = tmp_path / "continuous"
    cli(logdir, "--preset", "debug", "--task", "dummy_continuous", "--steps", "150")
    action = np.concatenate([ep["action"] for ep in episodes(logdir)])
    assert action.shape[1] == 2 and np.abs(action).max() <= 1.0 and len(np.unique(action)) > 10


def test_two_envs_in_workers(tmp_path):
    logdir = tmp_path / "two"
    # Prefill (100 steps) waits for a finished 100-step episode: 2 x 100 steps; then 2 x 100 more.
    cli(logdir, "--preset", "debug", "--task", "dummy_discrete", "--envs", "2", "--steps", "400")
    state = checkpoint(logdir)
    assert state["step"] == 400  # every env's steps count
    eps = episodes(logdir)
    assert len(eps) == 4 and all(len(ep["reward"]) == 101 for ep in eps)
    scores = [s for s in read_jsonl(logdir / "scores.jsonl") if s["mode"] == "train"]
    # Steps are counted per env as their results come in: env 0's episodes end one step earlier.
    assert sorted(s["frames"] for s in scores) == [199, 200, 399, 400]

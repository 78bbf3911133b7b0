"""`dreamerv2-torch sweep` on a local Ray instance: two tiny runs, one SIGKILLed after its first
checkpoint and resumed by Ray's retry; plus the checks that need no Ray."""

import json
import os
import subprocess
import sys

import pytest
import torch

from dreamerv2_torch.sweep import TEST_KILL, sweep_main


def test_without_ray_tells_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    assert sweep_main(["--tasks", "dummy_discrete", "--root", str(tmp_path)]) == 2
    assert 'pip install "dreamerv2-torch[ray]"' in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--seed", "--logdir", "--task"])
def test_flags_the_sweep_sets_are_refused(tmp_path, capsys, flag):
    assert sweep_main(["--tasks", "dummy_discrete", "--root", str(tmp_path), flag, "1"]) == 2
    assert f"sets {flag}" in capsys.readouterr().err


def test_bad_train_flag_starts_nothing(tmp_path):
    pytest.importorskip("ray")
    code = sweep_main(["--tasks", "dummy_discrete", "--root", str(tmp_path / "r"),
                       "--rssm.nope", "3"])
    assert code == 2 and not (tmp_path / "r").exists()


def test_sweep_retries_a_killed_run_and_it_resumes(tmp_path):
    pytest.importorskip("ray")
    root, marker = tmp_path / "root", tmp_path / "killed.marker"
    env = {**os.environ, TEST_KILL: f"1:{marker}"}
    out = subprocess.run(
        [sys.executable, "-m", "dreamerv2_torch", "sweep", "--preset", "debug",
         "--tasks", "dummy_discrete", "--seeds", "2", "--root", str(root), "--num-cpus", "2",
         "--poll", "2", "--steps", "200", "--eval_every", "50", "--threads", "1"],
        capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    for seed in (0, 1):
        state = torch.load(root / "dummy_discrete" / str(seed) / "checkpoint.pt",
                           weights_only=True)
        assert state["step"] == 200
    assert marker.exists()
    log = (root / "sweep" / "dummy_discrete-1.log").read_text()
    assert "Resumed from step" in log and "=== attempt 2" in log
    assert "=== attempt 2" not in (root / "sweep" / "dummy_discrete-0.log").read_text()
    summary = json.loads((root / "sweep" / "summary.json").read_text())["runs"]
    assert [(r["seed"], r["state"], r["attempt"], r["frames"]) for r in summary] == [
        (0, "done", 1, 200), (1, "done", 2, 200)]
    assert "eval_return" in out.stdout and "Sweep done: 2 of 2" in out.stdout
    assert (root / "curves.png").stat().st_size > 0 and (root / "curves.json").exists()


def test_run_folders_have_no_colon(tmp_path):
    import argparse

    from dreamerv2_torch.sweep import _plan

    args = argparse.Namespace(tasks="gym:CartPole-v1", seeds="2", root=str(tmp_path), preset=[])
    runs = _plan(args, ["--preset", "debug"])
    assert [r["logdir"] for r in runs] == [str(tmp_path / "gym-CartPole-v1" / s) for s in "01"]
    assert all(":" not in r["log"] for r in runs)

"""End to end through the real CLI on the `debug` preset: outputs, exact resume, kill -9,
Ctrl-C, and bad input that must leave the logdir untouched."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dreamerv2_torch.logger import read_jsonl

# One torch thread: on a shared 2-core CI machine the default (all cores) is several times slower.
BASE = ["--preset", "debug", "--task", "dummy_discrete", "--threads", "1"]


def cli(*args, check=True, timeout=300):
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", *BASE, *args],
                         capture_output=True, text=True, timeout=timeout)
    if check and out.returncode:
        raise AssertionError(f"exit {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def ckpt_step(logdir: Path) -> int:
    return int(torch.load(logdir / "checkpoint.pt", weights_only=True)["step"])


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("run") / "debug"
    cli("--logdir", str(logdir), "--steps", "300")
    return logdir


def test_outputs(run):
    metrics = read_jsonl(run / "metrics.jsonl")
    assert any("model_loss" in m for m in metrics) and any("eval_return" in m for m in metrics)
    assert max(m["step"] for m in metrics) == 300
    scores = read_jsonl(run / "scores.jsonl")
    assert {s["mode"] for s in scores} == {"train", "eval"}
    assert all(set(s) >= {"mode", "return", "length", "frames"} for s in scores)
    for name in ("train_policy_image", "eval_policy_image", "eval_openl_image",
                 "train_openl_image"):
        assert list((run / "videos" / name).glob("*.mp4")), name
    assert list(run.glob("events.out.tfevents.*"))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 300 and state["updates"] > 10
    assert {"nets", "model_opt", "actor_opt", "critic_opt"} <= set(state["agent"])
    assert (run / "config.yaml").exists()


def test_resume_continues_the_exact_step(run):
    updates = int(torch.load(run / "checkpoint.pt", weights_only=True)["updates"])
    out = cli("--logdir", str(run), "--steps", "400")
    assert "Resumed from step 300" in out.stdout and "Prefill" not in out.stdout
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 400 and state["updates"] > updates
    # Rerunning a finished run changes nothing but the checkpoint.
    out = cli("--logdir", str(run), "--steps", "400")
    assert ckpt_step(run) == 400


def test_incompatible_config_leaves_the_logdir_untouched(run):
    before = snapshot(run)
    out = cli("--logdir", str(run), "--rssm.deter", "64", check=False)
    assert out.returncode == 2 and "rssm.deter: saved 32, given 64" in out.stderr
    assert snapshot(run) == before


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, run):
    logdir = tmp_path / "copy"
    logdir.mkdir()
    (logdir / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    (logdir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = snapshot(logdir)
    out = cli("--logdir", str(logdir), check=False)
    assert out.returncode == 2 and "cannot read checkpoint" in out.stderr
    assert snapshot(logdir) == before


def test_unknown_task_creates_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                          "--task", "atari_pongg", "--logdir", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "did you mean" in out.stderr.lower()
    assert not (tmp_path / "x").exists()


def _start(logdir, steps):
    return subprocess.Popen([sys.executable, "-m", "dreamerv2_torch", "train", *BASE,
                             "--logdir", str(logdir), "--steps", str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(logdir, proc, minimum, timeout=600):
    start = time.time()
    try:
        while time.time() - start < timeout:
            if (logdir / "checkpoint.pt").exists() and ckpt_step(logdir) >= minimum:
                return ckpt_step(logdir)
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        raise TimeoutError(f"no checkpoint at step >= {minimum} after {timeout} s")
    except BaseException:
        proc.kill()  # never leave a training process behind
        proc.wait()
        raise


def test_kill_9_loses_at_most_the_work_since_the_checkpoint(tmp_path):
    logdir = tmp_path / "killed"
    proc = _start(logdir, 100_000)
    saved = _wait_for_checkpoint(logdir, proc, 300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = ckpt_step(logdir)  # a later checkpoint may have landed before the kill
    out = cli("--logdir", str(logdir), "--steps", str(saved + 50))
    assert f"Resumed from step {saved}" in out.stdout
    assert ckpt_step(logdir) == saved + 50


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_ctrl_c_saves_and_resumes(tmp_path):
    logdir = tmp_path / "interrupted"
    proc = _start(logdir, 100_000)
    _wait_for_checkpoint(logdir, proc, 300)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "stopped at" in output
    stopped = ckpt_step(logdir)
    assert stopped >= 300
    out = cli("--logdir", str(logdir), "--steps", str(stopped + 20))
    assert f"Resumed from step {stopped}" in out.stdout


def test_atari_through_the_cli(tmp_path):
    pytest.importorskip("ale_py")
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "atari",
                          "debug", "--task", "atari_pong", "--logdir", str(tmp_path / "pong"),
                          "--steps", "150", "--time_limit", "120", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    eps = read_jsonl(tmp_path / "pong" / "scores.jsonl")
    assert eps and all(e["frames"] % 4 == 0 for e in eps)
    state = torch.load(tmp_path / "pong" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 150
    action = state["agent"]["nets"]["behavior.actor.dist.out.weight"]
    assert action.shape[0] == 18  # the full action set

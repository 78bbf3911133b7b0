"""Bad data, corrupt files, full disks, early Ctrl-C, restarts and logs (issue 9): each caught
where it arises with one clear message, nothing saved lost."""

import errno
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

from dreamerv2_torch import checkpoint, presets
from dreamerv2_torch.driver import NonFiniteData, stream_seed
from dreamerv2_torch.envs.base import check_one_hot
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.logger import read_jsonl
from dreamerv2_torch.loop import Loop, SkippedUpdates
from dreamerv2_torch.rundir import RunError
from dreamerv2_torch.training import train

# ---- non-finite data (bug 2) ----

class BadAt(DummyEnv):
    """dummy_vector that returns NaN in `key` at step `at` of episode `episode` (train envs)."""

    def __init__(self, seed, mode, key="reward", at=30, episode=1):
        super().__init__("vector", seed=seed, length=40)
        self.key, self.at, self.bad_episode, self.mode = key, at, episode, mode
        self.episodes = -1

    def reset(self):
        self.episodes += 1
        return super().reset()

    def step(self, action):
        ob = super().step(action)
        if self.mode == "train" and self.episodes == self.bad_episode and self._step == self.at:
            ob[self.key] = np.full_like(ob[self.key], np.nan)
        return ob


def _tiny(logdir, **overrides):
    return presets.resolve(["debug"], {"task": "api:BadAt", "threads": 1, "steps": 200,
                                       "prefill": 40, "time_limit": 0, "logdir": str(logdir),
                                       "checkpoint_every": 0, **overrides})


def _stored_finite(logdir):
    files = list((logdir / "train_episodes").glob("*.npz"))
    for path in files:
        with np.load(path) as ep:
            assert all(np.isfinite(ep[k]).all() for k in ep.files if ep[k].dtype.kind == "f")
    return len(files)


@pytest.mark.parametrize("key", ["reward", "vector"])
def test_nonfinite_data_stops_naming_env_key_and_step(tmp_path, key):
    with pytest.raises(NonFiniteData, match=f"train env 0 returned non-finite {key} at step 30"):
        train(_tiny(tmp_path / "run"), lambda seed, mode: BadAt(seed, mode, key), progress=False)
    _stored_finite(tmp_path / "run")


def test_nonfinite_data_can_drop_the_episode(tmp_path):
    logdir = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="the episode is dropped"):
        result = train(_tiny(logdir, nonfinite="drop"),
                       lambda seed, mode: BadAt(seed, mode, "vector"), progress=False)
    assert result["step"] == 200
    assert _stored_finite(logdir) >= 3
    metrics = read_jsonl(logdir / "metrics.jsonl")
    assert max(m.get("dropped_episodes", 0) for m in metrics) == 1


def test_nan_action_is_not_blamed_on_one_hot():
    with pytest.raises(ValueError, match="non-finite"):
        check_one_hot(np.array([np.nan, 0, 0, 0], np.float32), 4)


def _loop_with_skips(limit):
    opts = {name: types.SimpleNamespace(skipped=0) for name in ("model", "actor", "critic")}
    agent = types.SimpleNamespace(**{f"{k}_opt": v for k, v in opts.items()})
    loop = types.SimpleNamespace(agent=agent, updates=0, step=0, skipped_mark=({}, 0),
                                 config=types.SimpleNamespace(skip_limit=limit, action_repeat=1))
    loop.frames = 0
    return loop, opts


def test_skipped_updates_warn_and_then_stop():
    loop, opts = _loop_with_skips(0.5)
    Loop.check_skipped(loop)
    loop.updates, opts["model"].skipped = 20, torch.tensor(3.0)  # a device tensor or an int
    with pytest.warns(RuntimeWarning, match="3 of the last 20 world-model updates"):
        Loop.check_skipped(loop)
    loop.updates, opts["model"].skipped = 40, 18
    with pytest.raises(SkippedUpdates, match="15 of the last 20 world-model updates"):
        Loop.check_skipped(loop)


# ---- corrupt files, full disks, early Ctrl-C (bugs 7, 8, 9, 10) ----

def _vector(logdir, **overrides):
    return presets.resolve(["debug"], {"task": "dummy_vector", "threads": 1, "steps": 60,
                                       "prefill": 20, "eval_every": 20, "time_limit": 20,
                                       "replay.minlen": 5, "replay.maxlen": 10,
                                       "checkpoint_every": 0, "logdir": str(logdir),
                                       **overrides})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("finished") / "run"
    train(_vector(logdir), progress=False)
    return logdir


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("log_every", [50, 10])  # 10: two updates between two checks
def test_nan_in_replay_stops_the_run_instead_of_stalling(finished, tmp_path, log_every):
    """The original bug: NaN rewards already in the replay (files written by an older version)
    made the world-model updates skip silently; now the run stops with `SkippedUpdates`."""
    logdir = _copy(finished, tmp_path / "run")
    for path in (logdir / "train_episodes").glob("*.npz"):
        with np.load(path) as ep:
            data = dict(ep)
        data["reward"] = np.full_like(data["reward"], np.nan)
        np.savez(path, **data)
    with pytest.raises(SkippedUpdates, match="world-model updates .* skipped"):
        train(_vector(logdir, steps=400, log_every=log_every), progress=False)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_unreadable_checkpoint_falls_back_to_the_previous_one(finished, tmp_path, damage,
                                                              monkeypatch):
    logdir = _copy(finished, tmp_path / "run")
    data = (logdir / "checkpoint.pt").read_bytes()
    (logdir / "checkpoint.pt").write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    previous = torch.load(logdir / "checkpoint.prev.pt", weights_only=True)["step"]
    save = checkpoint.save

    def save_and_check(logdir, payload):  # after any save, a kill must leave two good files
        path = save(logdir, payload)
        for name in ("checkpoint.pt", "checkpoint.prev.pt"):
            checkpoint.load(logdir / name)
        return path

    monkeypatch.setattr(checkpoint, "save", save_and_check)
    with pytest.warns(RuntimeWarning, match="resuming from checkpoint.prev.pt"):
        result = train(_vector(logdir, steps=80), progress=False)
    assert previous < 60 and result["step"] == 80
    assert (logdir / "checkpoint.pt.bad").exists()
    assert torch.load(logdir / "checkpoint.prev.pt", weights_only=True)["step"] >= previous


@pytest.mark.parametrize("module, writer", [(torch, "save"), (np, "savez_compressed")],
                         ids=["checkpoint", "episode"])
def test_disk_full_is_one_line_and_leaves_no_temporary_file(finished, tmp_path, monkeypatch,
                                                            module, writer):
    """The disk fills while a checkpoint or an episode file is written: one line, no temporary
    or part file left, the last checkpoint intact."""
    logdir = _copy(finished, tmp_path / "run")
    before = (logdir / "checkpoint.pt").read_bytes()

    def full(*args, **kwargs):
        next(a for a in args if hasattr(a, "write")).write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(module, writer, full)
    with pytest.raises(RunError) as error:
        train(_vector(logdir, steps=80), progress=False)
    assert "No space left on device" in str(error.value) and "\n" not in str(error.value)
    assert not list(logdir.rglob("*.tmp")) and not list(logdir.rglob(".*.part*"))
    assert (logdir / "checkpoint.pt").read_bytes() == before


def test_disk_full_in_checkpoint_save_removes_its_temporary_file(tmp_path, monkeypatch):
    (tmp_path / "checkpoint.pt").write_bytes(b"the last one")

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path, {"step": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"the last one"


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", b"steps: [unclosed", b"- a list"])
def test_unreadable_config_yaml_names_the_file(finished, tmp_path, content):
    logdir = _copy(finished, tmp_path / "run")
    (logdir / "config.yaml").write_bytes(content)
    with pytest.raises(presets.ConfigError, match="config.yaml") as error:
        train(_vector(logdir), progress=False)
    assert "\n" not in str(error.value)
    assert (logdir / "config.yaml").read_bytes() == content


def test_ctrl_c_while_the_run_is_being_built_is_one_line(monkeypatch, capsys):
    """Deterministic twin of the test below: a KeyboardInterrupt from anywhere in the command
    before the loop's handler exists (here: while parsing) ends it with exit code 130."""
    from dreamerv2_torch import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "parse_train_args", interrupted)
    try:
        code = cli.main(["train", "--preset", "debug"])
    except KeyboardInterrupt:  # not let through: it would end the whole pytest session
        pytest.fail("KeyboardInterrupt escaped cli.main")
    assert code == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_ctrl_c_before_training_starts_prints_no_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                             "--task", "dummy_vector", "--logdir", str(tmp_path / "x")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.7)  # importing torch and building the run: no handler yet
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130, -signal.SIGINT), err  # -2: Python re-raises at exit


# ---- restarts and logs (bugs 3, 4) ----

def test_stream_seeds_never_repeat_across_starts():
    seeds = {stream_seed(0, i, restarts, stored)
             for i in range(4) for restarts in range(5) for stored in range(5)}
    assert len(seeds) == 4 * 5 * 5
    assert [stream_seed(7, i, 0, 0) for i in range(3)] == [7, 8, 9]  # a fresh run: seed + i


def test_resume_drops_log_lines_written_after_the_checkpoint(finished, tmp_path):
    logdir = _copy(finished, tmp_path / "run")
    kept = {n: (logdir / n).read_text() for n in ("metrics.jsonl", "scores.jsonl")}
    # What a run killed after its last checkpoint leaves behind.
    with open(logdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 75, "model_loss": 1.0}\n')
    with open(logdir / "scores.jsonl", "a") as f:
        f.write('{"mode": "eval", "return": 1.0, "length": 20, "frames": 60}\n')
    train(_vector(logdir, steps=80), progress=False)
    for name, text in kept.items():
        now = (logdir / name).read_text()
        assert now.startswith(text) and '"step": 75,' not in now
    frames = [s["frames"] for s in read_jsonl(logdir / "scores.jsonl") if s["mode"] == "eval"]
    later = [f for f in frames if f > 20]  # at 20: the prefill's random episode and the first
    assert later == [40, 60]  # the fake line is gone, the real evaluation at 60 logged once

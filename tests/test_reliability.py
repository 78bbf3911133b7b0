"""Bad values, bad data, kills and stops (issue 9): each refused before anything is written, or
caught where it arises with one clear message."""

import errno
import math
import shutil
import signal
import subprocess
import sys
import time
import types
import typing

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreamerv2_torch import checkpoint, presets
from dreamerv2_torch.config import flatten
from dreamerv2_torch.driver import NonFiniteData, stream_seed
from dreamerv2_torch.envs.base import check_one_hot
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.logger import read_jsonl
from dreamerv2_torch.loop import train
from dreamerv2_torch.rundir import RunError
from dreamerv2_torch.runner import Loop, SkippedUpdates


def test_eval_every_zero_is_refused_before_the_logdir_exists(tmp_path):
    # It used to loop forever at one step, writing eval episodes.
    with pytest.raises(presets.ConfigError, match="eval_every"):
        presets.resolve(["debug"], {"eval_every": 0})
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                          "--task", "dummy_discrete", "--eval_every", "0",
                          "--logdir", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "eval_every" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# ---- config values (bug 5) ----

def _numeric_keys():
    out = []
    for key, kind in presets.FIELD_TYPES.items():
        args = typing.get_args(kind)
        if kind in (int, float) or (args and args[0] in (int, float)):
            out.append(key)
    return out


def test_every_numeric_field_has_a_range():
    assert set(_numeric_keys()) <= set(presets.RANGES), set(_numeric_keys()) - set(presets.RANGES)


@pytest.mark.parametrize("key, value", [
    ("prefill", -1), ("replay.minlen", 0), ("replay.capacity", 0), ("rssm.stoch", 0),
    ("model_opt.lr", -1), ("time_limit", -5), ("steps", -5), ("eval_eps", -1), ("discount", 2),
    ("kl.free", float("nan")), ("render_size", "0,64"), ("model_opt.eps", 0),
])
def test_out_of_range_values_are_one_line_naming_the_key(key, value, tmp_path):
    config = presets.apply(presets.resolve(["debug"]), {key: value, "logdir": str(tmp_path / "x")})
    with pytest.raises(presets.ConfigError) as error:
        train(config)
    assert key in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "x").exists()


_VALUES = st.one_of(st.integers(-3, 3), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e-9]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(_numeric_keys()), value=_VALUES)
def test_any_value_is_refused_in_one_line_or_accepted_in_range(key, value):
    kind = presets.FIELD_TYPES[key]
    if typing.get_args(kind) and typing.get_origin(kind) is tuple:
        value = (value, value)
    try:
        config = presets.resolve(["debug"], {key: value})
    except presets.ConfigError as error:
        assert "\n" not in str(error) and (key in str(error) or "replay.minlen" in str(error))
        return
    got = flatten(config)[key]
    for item in got if isinstance(got, tuple) else (got,):
        assert math.isfinite(float(item)), (key, got)


_SMALL = {
    "prefill": st.integers(0, 40), "eval_every": st.integers(10, 60),
    "eval_eps": st.integers(0, 1), "train_every": st.integers(1, 20),
    "train_steps": st.integers(0, 2), "pretrain": st.integers(0, 2),
    "time_limit": st.sampled_from([0, 12, 30]), "replay.minlen": st.integers(1, 12),
    "replay.capacity": st.integers(1, 400), "dataset.batch": st.integers(1, 4),
    "dataset.length": st.integers(2, 12), "log_every": st.integers(1, 60),
}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({"steps": st.integers(1, 60)}, optional=_SMALL))
def test_small_loop_values_either_refuse_or_run(values, tmp_path_factory):
    """Either a one-line error with the logdir untouched, or a run that reaches --steps."""
    logdir = tmp_path_factory.mktemp("prop") / "run"
    overrides = {"task": "dummy_vector", "threads": 1, "checkpoint_every": 0, **values,
                 "logdir": str(logdir)}
    try:
        config = presets.resolve(["debug"], {"replay.maxlen": 12, **overrides})
    except presets.ConfigError as error:
        assert "\n" not in str(error)
        assert not logdir.exists()
        return
    result = train(config, progress=False)
    assert result["step"] >= config.steps
    assert torch.load(logdir / "checkpoint.pt", weights_only=True)["step"] == result["step"]


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


def test_disk_full_is_one_line_and_leaves_no_temporary_file(finished, tmp_path, monkeypatch):
    logdir = _copy(finished, tmp_path / "run")
    before = (logdir / "checkpoint.pt").read_bytes()

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(logdir / "checkpoint.pt.tmp"))

    monkeypatch.setattr(torch, "save", full)
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


def test_disk_full_in_an_episode_write_is_one_line_and_leaves_no_part_file(finished, tmp_path,
                                                                          monkeypatch):
    logdir = _copy(finished, tmp_path / "run")
    before = (logdir / "checkpoint.pt").read_bytes()

    def full(f, **arrays):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full)
    with pytest.raises(RunError) as error:
        train(_vector(logdir, steps=80), progress=False)
    assert "No space left on device" in str(error.value) and "\n" not in str(error.value)
    assert not list(logdir.rglob(".*.part*")) and not list(logdir.rglob("*.tmp"))
    assert (logdir / "checkpoint.pt").read_bytes() == before


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


# ---- episode file order (exact resume) ----

class _Clock:
    """Stands in for `replay.datetime`: `now()` gives the times in `stamps`, in turn."""

    def __init__(self, *stamps):
        self.stamps = list(stamps)
        self.datetime = self

    def now(self):
        return self.stamps.pop(0) if len(self.stamps) > 1 else self.stamps[0]


def _episode(eplen, ident):
    steps = np.arange(eplen + 1)
    return {"vector": np.stack([steps, np.full_like(steps, ident)], -1).astype(np.float32),
            "reward": np.ones(eplen + 1, np.float32), "is_first": steps == 0,
            "is_last": steps == eplen, "is_terminal": steps == eplen}


@pytest.mark.parametrize("clock", ["one second", "backwards"])
def test_episodes_reload_in_insertion_order(tmp_path, monkeypatch, clock):
    """Episodes stored within one second (or while the clock goes back: NTP, a DST change)
    reload in the order they were stored, so a resumed replay samples as the live one."""
    import datetime

    from dreamerv2_torch import replay as replay_module
    from dreamerv2_torch.replay import Replay

    t = datetime.datetime(2026, 10, 25, 2, 30, 0)
    stamps = [t] if clock == "one second" else [t - datetime.timedelta(minutes=i)
                                                for i in range(12)]
    monkeypatch.setattr(replay_module, "datetime", _Clock(*stamps))
    live = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12, seed=3)
    names = [live.add_episode(_episode(10 + i, i)).name for i in range(12)]
    live.sample(3, 7)  # leaves a sequence half used
    state = live.state_dict()
    resumed = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12, seed=3)
    resumed.load()
    assert resumed.episode_files() == names
    resumed.load_state_dict(state)
    for _ in range(5):
        np.testing.assert_array_equal(resumed.sample(4, 7)["vector"], live.sample(4, 7)["vector"])
    # Capacity keeps the newest episodes, by insertion order too.
    small = Replay(tmp_path, capacity=60, minlen=5, maxlen=12)
    small.load()
    assert small.episode_files() == names[-len(small.episode_files()):]


def test_official_episode_names_still_load_before_indexed_ones(tmp_path):
    from dreamerv2_torch.replay import Replay

    old = tmp_path / "20991231T235959-0123456789abcdef0123456789abcdef-10.npz"  # a later time
    np.savez_compressed(old, **_episode(10, 99))
    replay = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12)
    replay.load()
    new = replay.add_episode(_episode(11, 0)).name
    assert new.split("-")[1] == "00000001"  # the index goes on after the files already there
    reloaded = Replay(tmp_path, capacity=10_000, minlen=5, maxlen=12)
    reloaded.load()
    assert reloaded.episode_files() == [old.name, new]
    assert reloaded.stats["total_episodes"] == 2 and reloaded.stats["total_steps"] == 21


# ---- Atari: a stop continues the emulator's stream (bug 3) ----

def _atari_rollout(env, actions):
    out = []
    for index in actions:
        ob = env.step({"action": np.eye(18, dtype=np.float32)[index]})
        out.append(ob)
        if ob["is_last"]:
            out.append(env.reset())  # the next episode's NOOP start continues the RNG too
    return out


@pytest.mark.parametrize("game, saved_at", [("breakout", [0, 1, 37, 90]), ("pong", [5, 60])])
def test_atari_state_continues_the_same_frames_with_sticky_actions(game, saved_at):
    """Save the state after n steps, restore it into an env built with another seed: the next
    steps' frames, RAM, rewards and flags equal the original's, with sticky actions on (p=0.25,
    as in the `atari` preset) and through a game over and the next episode's NOOP start."""
    pytest.importorskip("ale_py")
    from dreamerv2_torch.envs import make_env

    actions = np.random.default_rng(0).integers(18, size=400)
    for n in saved_at:
        env = make_env(f"atari_{game}", seed=3, action_repeat=4, time_limit=150)
        env.reset()
        _atari_rollout(env, actions[:n])
        state = checkpoint.to_numpy(checkpoint.to_torch(env.get_state()))  # as in a checkpoint
        want = _atari_rollout(env, actions[n:])
        fresh = make_env(f"atari_{game}", seed=99, action_repeat=4, time_limit=150)
        fresh.reset()
        _atari_rollout(fresh, actions[:7])  # another position, another sticky action
        fresh.set_state(state)
        got = _atari_rollout(fresh, actions[n:])
        assert sum(ob["is_first"] for ob in want) >= 1  # the comparison crosses an episode end
        for t, (a, b) in enumerate(zip(want, got, strict=True)):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"n={n} t={t} {key}")


def test_atari_state_of_an_env_never_reset_keeps_its_seed():
    """A checkpoint can come before an env's first reset (the eval env during prefill)."""
    pytest.importorskip("ale_py")
    from dreamerv2_torch.envs import make_env

    actions = np.random.default_rng(1).integers(18, size=120)
    env = make_env("atari_pong", seed=5, action_repeat=4, time_limit=50)
    fresh = make_env("atari_pong", seed=77, action_repeat=4, time_limit=50)
    fresh.set_state(env.get_state())
    want, got = ([e.reset()] + _atari_rollout(e, actions) for e in (env, fresh))
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


class _AtariStopping:
    """atari_pong (sticky actions on, 100-step episodes) whose train env interrupts the process
    once at train step `stop_at`."""

    stop_at, steps = None, 0

    def __init__(self, seed, mode):
        from dreamerv2_torch.envs import make_env

        self.env = make_env("atari_pong", seed=seed, mode=mode, action_repeat=4, time_limit=100)
        self.mode = mode
        self.obs_space, self.act_space = self.env.obs_space, self.env.act_space
        self.reset, self.close = self.env.reset, self.env.close
        self.get_state, self.set_state = self.env.get_state, self.env.set_state

    def step(self, action):
        ob = self.env.step(action)
        if self.mode == "train":
            _AtariStopping.steps += 1
            if _AtariStopping.steps == _AtariStopping.stop_at:
                signal.raise_signal(signal.SIGINT)
        return ob


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_atari_stop_and_resume_equals_an_uninterrupted_run(tmp_path, one_thread):
    pytest.importorskip("ale_py")
    from test_resume_exact import _assert_same

    def run(logdir, stop_at=None):
        _AtariStopping.stop_at, _AtariStopping.steps = stop_at, 0
        config = presets.resolve(["debug"], {
            "task": "api:_AtariStopping", "logdir": str(logdir), "steps": 300, "prefill": 100,
            "eval_every": 150, "log_every": 100, "time_limit": 0, "eval_eps": 1,
            "threads": 1, "checkpoint_every": 0})
        return train(config, _AtariStopping, progress=False)

    whole = run(tmp_path / "whole")
    assert run(tmp_path / "stopped", stop_at=170)["step"] == 170
    assert run(tmp_path / "stopped")["step"] == whole["step"] == 300
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "stopped"))
    _assert_same(a["agent"], b["agent"])
    assert b["restarts"] == 1
    scores = [[{k: v for k, v in s.items() if k != "time"} for s in read_jsonl(tmp_path / d /
               "scores.jsonl")] for d in ("whole", "stopped")]
    assert scores[0] == scores[1]


# ---- time-based checkpoints outside the train phase (checkpoint_every) ----

class _Crash(Exception):
    """Stands in for a kill -9: the run ends where it is, with no checkpoint of its own."""


class _Crashing(DummyEnv):
    """dummy_vector whose `mode` env raises `_Crash` once at its step `at` (counted over all
    envs of that mode)."""

    at, mode_, steps = None, "train", 0

    def __init__(self, seed, mode):
        super().__init__("vector", seed=seed)
        self.mode = mode

    def step(self, action):
        ob = super().step(action)
        if self.mode == _Crashing.mode_:
            _Crashing.steps += 1
            if _Crashing.steps == _Crashing.at:
                raise _Crash
        return ob


def _crash_config(logdir, **overrides):
    return presets.resolve(["debug"], {
        "task": "api:_Crashing", "logdir": str(logdir), "steps": 150, "prefill": 100,
        "eval_every": 100, "log_every": 50, "time_limit": 0, "threads": 1,
        "checkpoint_every": 1e-9, **overrides})  # a checkpoint at every safe point


def _crash_run(logdir, at=None, mode="train", **overrides):
    _Crashing.at, _Crashing.mode_, _Crashing.steps = at, mode, 0
    return train(_crash_config(logdir, **overrides), _Crashing, progress=False)


def test_a_kill_during_prefill_resumes_from_a_checkpoint_in_prefill(tmp_path, one_thread):
    from test_resume_exact import _assert_same

    _crash_run(tmp_path / "whole")
    with pytest.raises(_Crash):
        _crash_run(tmp_path / "killed", at=60)
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 59 and not saved["pretrained"]  # the safe point before the kill
    assert _crash_run(tmp_path / "killed")["step"] == 150
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "killed"))
    _assert_same(a["agent"], b["agent"])  # nothing was stored after it: the streams continue


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_kill_or_stop_during_pretrain_resumes_in_pretrain(tmp_path, monkeypatch, one_thread,
                                                           how):
    from test_resume_exact import _assert_same

    from dreamerv2_torch.agent import Agent

    _crash_run(tmp_path / "whole", pretrain=6)
    updates, update = [0], Agent.train

    def crashing(self, batch):
        updates[0] += 1
        if updates[0] == 5 and how == "kill":
            raise _Crash
        if updates[0] == 5:  # Ctrl-C during the 5th update: the stop comes after it
            signal.raise_signal(signal.SIGINT)
        return update(self, batch)

    monkeypatch.setattr(Agent, "train", crashing)
    if how == "kill":
        with pytest.raises(_Crash):
            _crash_run(tmp_path / "killed", pretrain=6)
    else:
        assert _crash_run(tmp_path / "killed", pretrain=6)["stopped"]
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    done = 4 if how == "kill" else 5
    assert (saved["step"], saved["updates"], saved["pretrained"]) == (100, done, False)
    monkeypatch.setattr(Agent, "train", update)
    assert _crash_run(tmp_path / "killed", pretrain=6)["step"] == 150
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "killed"))
    assert a["updates"] == b["updates"]
    _assert_same(a["agent"], b["agent"])


def test_a_kill_during_evaluation_keeps_the_finished_eval_episodes(tmp_path, one_thread):
    # eval env steps: 1-100 the prefill's random episode, 101-400 the first phase's 3 episodes.
    with pytest.raises(_Crash):
        _crash_run(tmp_path / "run", at=250, mode="eval", eval_eps=3)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert (saved["step"], saved["last_eval"], saved["eval_done"]) == (100, None, 1)
    assert _crash_run(tmp_path / "run", eval_eps=3)["step"] == 150
    frames = [s["frames"] for s in read_jsonl(tmp_path / "run" / "scores.jsonl")
              if s["mode"] == "eval"]
    assert frames == [100] * 4  # the prefill's random one, then the phase's 3, none twice

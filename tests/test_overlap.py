"""Collection overlapped with training (issue 11, `overlap.py`): the schedule, not thread timing,
fixes which policy acts at each step, so the threaded path equals its one-thread emulation bit for
bit; the replay ratio is the configured one; stops resume exactly; errors and Ctrl-C end both."""

import json
import random
import signal
import threading
import time

import numpy as np
import pytest
import torch
from state_support import assert_same

from dreamerv2_torch import overlap, presets
from dreamerv2_torch.agent import Agent, draw
from dreamerv2_torch.dists import OneHotDist, TruncNormalDist
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.replay import Replay
from dreamerv2_torch.training import train

pytestmark = pytest.mark.usefixtures("one_thread")
SETUP = {"stop_at": None, "fail_at": None, "jitter": False, "steps": 0, "actions": []}


class Recorded(DummyEnv):
    """dummy_discrete recording the train actions; it can sleep at random (to shift thread
    timing), raise SIGINT or fail at a given train step."""

    def __init__(self, seed, mode):
        super().__init__("discrete", seed=seed, size=(64, 64))
        self.mode = mode
        self.jitter = random.Random(seed)  # its own stream: timing only, never the data

    def step(self, action):
        ob = super().step(action)
        if self.mode != "train":
            return ob
        SETUP["steps"] += 1
        SETUP["actions"].append(int(np.argmax(action["action"])))
        if SETUP["jitter"]:
            time.sleep(self.jitter.random() * 0.003)
        if SETUP["steps"] == SETUP["stop_at"]:
            signal.raise_signal(signal.SIGINT)
        if SETUP["steps"] == SETUP["fail_at"]:
            raise RuntimeError("emulator broke at step 150")
        return ob


def _run(logdir, overlap_on=True, **setup):
    SETUP.update({"stop_at": None, "fail_at": None, "jitter": False, "steps": 0, "actions": []})
    SETUP.update(setup)
    config = presets.resolve(["debug"], {
        "task": "api:Recorded", "logdir": str(logdir), "steps": 301, "prefill": 100,
        "eval_every": 121, "log_every": 50, "time_limit": 40, "threads": 1, "train_every": 5,
        "train_steps": 2, "checkpoint_every": 0, "overlap": overlap_on})
    result = train(config, Recorded, progress=False)
    return result, list(SETUP["actions"])


def _checkpoint(logdir):
    return torch.load(logdir / "checkpoint.pt", weights_only=True)


def _losses(logdir):
    lines = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in ("time", "fps")} for m in lines]


@pytest.fixture
def no_hang():
    """A hang (a lost error, a thread waited on forever) fails the test after 120 s."""
    def hung(signum, frame):
        raise TimeoutError("the run hung")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _collector_threads():
    return [t for t in threading.enumerate() if t.name == "overlap-collector"]


def test_threaded_overlap_equals_its_one_thread_emulation(tmp_path, monkeypatch):
    threaded, actions = _run(tmp_path / "threaded", jitter=True)
    monkeypatch.setattr(overlap, "THREADED", False)
    emulated, emulated_actions = _run(tmp_path / "emulated")
    assert threaded["step"] == emulated["step"] == 301
    assert actions == emulated_actions  # the same transitions (the env is deterministic)
    a, b = _checkpoint(tmp_path / "threaded"), _checkpoint(tmp_path / "emulated")
    assert_same(a["agent"], b["agent"])  # weights and optimiser states: the same losses
    assert _losses(tmp_path / "threaded") == _losses(tmp_path / "emulated")
    assert not _collector_threads()


def test_replay_ratio_is_the_configured_one(tmp_path, monkeypatch):
    threads, sample = set(), Replay._sample

    def spy(self, *args):
        threads.add(threading.current_thread().name)
        return sample(self, *args)

    monkeypatch.setattr(Replay, "_sample", spy)
    _run(tmp_path / "on")
    # Each update samples its batch when it starts, from the replay as the schedule leaves it,
    # not ahead in the replay's prefetch thread (whose timing would decide the batch).
    assert threads == {"MainThread"}
    _run(tmp_path / "off", overlap_on=False)
    on, off = _checkpoint(tmp_path / "on"), _checkpoint(tmp_path / "off")
    # 1 + pretrain updates, then train_steps (2) at the first train step and every 5 steps after
    # it: steps 101, 106, ..., 301 → 41 due steps. The phases end at due steps (221, 301): the
    # round due there runs before the evaluation and the final checkpoint.
    assert on["updates"] == off["updates"] == 2 + 2 * 41
    assert on["owed"] == off["owed"] == []


def _fingerprint(module):
    return hash(b"".join(p.detach().numpy().tobytes() for p in module.parameters()))


def _acting_versions(tmp_path, monkeypatch, overlap_on):
    """For each train policy call, the number of updates behind the weights that acted."""
    versions, calls = {}, []
    train_, policy_ = Agent.train, Agent.policy

    def spy_train(self, batch):
        if not versions:
            versions[_fingerprint(self.behavior.actor)] = 0  # the initial weights
        out = train_(self, batch)
        versions[_fingerprint(self.behavior.actor)] = len(versions)  # updates so far
        return out

    def spy_policy(self, obs, state=None, mode="train", nets=None, generator=None):
        if mode == "train":
            actor = self.behavior.actor if nets is None else nets["actor"]
            calls.append(versions[_fingerprint(actor)])
        return policy_(self, obs, state, mode, nets, generator)

    monkeypatch.setattr(Agent, "train", spy_train)
    monkeypatch.setattr(Agent, "policy", spy_policy)
    _run(tmp_path, overlap_on=overlap_on)
    return calls


@pytest.mark.parametrize("overlap_on", [True, False])
def test_which_weights_act_is_fixed_by_the_schedule(tmp_path, monkeypatch, overlap_on):
    calls = _acting_versions(tmp_path, monkeypatch, overlap_on)
    assert len(calls) == 201
    # Policy call i acts at step 100 + i; updates fall due after steps 101, 106, 111, ... (2
    # each), after 1 + pretrain = 2 first updates. The official order acts with all updates due
    # so far; overlap with one round (2 updates) fewer.
    due = [0 if i == 0 else (i - 1) // 5 + 1 for i in range(201)]
    official = [2 + 2 * d for d in due]
    if not overlap_on:
        assert calls == official
        return
    # The first block of a training phase acts with every update so far: the evaluation before
    # it waited for the queued round (the second phase starts at step 221: i = 121..125).
    expected = [2 + 2 * max(d - (0 if 121 <= i <= 125 else 1), 0) for i, d in enumerate(due)]
    assert calls == expected


def test_draws_follow_the_rules_of_sample():
    logits = torch.randn(6, 4, 5)
    torch.manual_seed(3)
    plain = OneHotDist(logits, 1).sample()
    assert torch.equal(draw(OneHotDist(logits, 1), torch.Generator().manual_seed(3)), plain)
    loc, scale = torch.rand(6, 3) * 2 - 1, torch.rand(6, 3) + 0.1
    torch.manual_seed(4)
    plain = TruncNormalDist(loc, scale, -1, 1, event_dims=1).sample()
    mine = draw(TruncNormalDist(loc, scale, -1, 1, event_dims=1), torch.Generator().manual_seed(4))
    assert torch.equal(mine, plain)


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_ctrl_c_stops_both_and_the_resume_continues_the_schedule_exactly(tmp_path):
    _run(tmp_path / "whole")
    first, _ = _run(tmp_path / "stopped", stop_at=163)
    # The stop takes effect at the end of the block being played (the next due step, 166).
    assert first["stopped"] and first["step"] == 166
    assert not _collector_threads()
    stopped = _checkpoint(tmp_path / "stopped")
    assert stopped["owed"] == [165, 165]  # the round due at step 166, at policy step 165
    second, _ = _run(tmp_path / "stopped")
    assert second["step"] == 301
    a, b = _checkpoint(tmp_path / "whole"), _checkpoint(tmp_path / "stopped")
    assert a["updates"] == b["updates"]
    assert_same(a["agent"], b["agent"])


def test_an_error_in_the_collector_is_raised_once_without_a_hang(tmp_path, no_hang):
    with pytest.raises(RuntimeError, match="emulator broke at step 150"):
        _run(tmp_path / "x", fail_at=150)
    assert not _collector_threads()


def test_an_error_in_the_updates_stops_the_collector(tmp_path, monkeypatch, no_hang):
    train_, count = Agent.train, {"n": 0}

    def failing(self, batch):
        count["n"] += 1
        if count["n"] == 10:
            raise FloatingPointError("update 10 failed")
        return train_(self, batch)

    monkeypatch.setattr(Agent, "train", failing)
    with pytest.raises(FloatingPointError, match="update 10 failed"):
        _run(tmp_path / "x")
    assert not _collector_threads()


class ThreadNoting(DummyEnv):
    """An env that notes the thread of every call (DMC's OpenGL context is bound to one)."""

    calls: list = []

    def __init__(self, seed, mode):
        super().__init__("discrete", seed=seed, size=(64, 64))
        self.note("init")

    def note(self, what):
        ThreadNoting.calls.append((what, threading.current_thread().name))

    def reset(self):
        self.note("reset")
        return super().reset()

    def step(self, action):
        self.note("step")
        return super().step(action)

    def close(self):
        self.note("close")
        super().close()


def test_in_process_train_envs_live_in_one_thread(tmp_path):
    ThreadNoting.calls = []
    config = presets.resolve(["debug"], {
        "task": "api:ThreadNoting", "logdir": str(tmp_path), "steps": 160, "prefill": 100,
        "eval_eps": 0, "time_limit": 40, "threads": 1, "overlap": True})
    train(config, ThreadNoting, progress=False)
    names = {name for _, name in ThreadNoting.calls}
    kinds = {what for what, _ in ThreadNoting.calls}
    assert kinds == {"init", "reset", "step", "close"}
    assert len(names) == 1 and next(iter(names)).startswith("train-envs")


def test_dmc_pixels_with_overlap(tmp_path, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    pytest.importorskip("dm_control")
    config = presets.resolve(["dmc_vision", "debug"], {
        "task": "dmc_walker_walk", "logdir": str(tmp_path), "steps": 130, "prefill": 100,
        "pretrain": 0, "eval_eps": 0, "threads": 1, "overlap": True})
    assert train(config, progress=False)["step"] == 130

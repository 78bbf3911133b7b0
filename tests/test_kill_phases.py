"""Time-based checkpoints outside the train phase (issue 9, `checkpoint_every`): a kill or stop
during prefill, pretrain or evaluation resumes from a checkpoint taken there."""

import signal

import pytest
import torch

from dreamerv2_torch import presets
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.logger import read_jsonl
from dreamerv2_torch.training import train

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
    from state_support import assert_same

    _crash_run(tmp_path / "whole")
    with pytest.raises(_Crash):
        _crash_run(tmp_path / "killed", at=60)
    saved = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 59 and not saved["pretrained"]  # the safe point before the kill
    assert _crash_run(tmp_path / "killed")["step"] == 150
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)
            for d in ("whole", "killed"))
    assert_same(a["agent"], b["agent"])  # nothing was stored after it: the streams continue


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_kill_or_stop_during_pretrain_resumes_in_pretrain(tmp_path, monkeypatch, one_thread,
                                                           how):
    from state_support import assert_same

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
    assert_same(a["agent"], b["agent"])


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

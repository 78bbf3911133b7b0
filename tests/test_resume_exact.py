"""A graceful stop and resume gives the same weights and optimiser states as an uninterrupted run
(issue 9): env streams, unfinished episodes, policy state, eval schedule, replay sampling and RNGs
all continue. Exactness needs envs that save their state (the dummy envs do) and a stop at least
two updates after the last stored episode (the replay prefetches two batches ahead)."""

import json
import signal

import pytest
import torch
from state_support import assert_same

from dreamerv2_torch import presets
from dreamerv2_torch.envs.dummy import DummyEnv
from dreamerv2_torch.training import train

pytestmark = pytest.mark.usefixtures("one_thread")
STOP_AT = {"step": None}  # the train step at which the env sends SIGINT (None: never)


class Stopping(DummyEnv):
    """dummy_discrete whose train env interrupts the process once at STOP_AT['step']."""

    steps = 0

    def __init__(self, seed, mode):
        super().__init__("discrete", seed=seed, size=(64, 64))
        self.mode = mode

    def step(self, action):
        ob = super().step(action)
        if self.mode == "train":
            Stopping.steps += 1
            if Stopping.steps == STOP_AT["step"]:
                signal.raise_signal(signal.SIGINT)
        return ob


def _config(logdir):
    return presets.resolve(["debug"], {
        "task": "api:Stopping", "logdir": str(logdir), "steps": 400, "prefill": 100,
        "eval_every": 150, "log_every": 100, "time_limit": 0, "threads": 1,
        "checkpoint_every": 0})


def _run(logdir, stop_at=None):
    STOP_AT["step"], Stopping.steps = stop_at, 0
    return train(_config(logdir), Stopping, progress=False)


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    whole = _run(tmp_path / "whole")
    first = _run(tmp_path / "stopped", stop_at=170)
    assert first["stopped"] and first["step"] == 170
    second = _run(tmp_path / "stopped")
    assert whole["step"] == second["step"] == 400
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert a["updates"] == b["updates"] and a["agent"]["model_opt"]["steps"] > 10
    # Weights with the slow critic, Adam moments and step counts of all three optimisers.
    assert_same(a["agent"], b["agent"])
    assert b["restarts"] == 1
    # Every counted step is stored (the unfinished episode was kept, not lost), and the eval
    # schedule did not shift: the same episodes at the same frames.
    def episodes(logdir):  # every field but the wall-clock time
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (logdir / "scores.jsonl").read_text().splitlines()]

    assert episodes(tmp_path / "stopped") == episodes(tmp_path / "whole")
    assert _stored_steps(tmp_path / "whole") == _stored_steps(tmp_path / "stopped")


def _stored_steps(logdir):
    return sorted(int(p.stem.rsplit("-", 1)[1]) for p in (logdir / "train_episodes").glob("*.npz"))


class Stateless(Stopping):
    """The same env without get_state (like gym, DMC or Crafter envs here)."""

    get_state = None


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_a_stop_keeps_the_unfinished_episode_of_an_env_without_state(tmp_path):
    STOP_AT["step"], Stopping.steps = 170, 0
    config = presets.apply(_config(tmp_path / "run"), {"task": "api:Stateless"})
    result = train(config, Stateless, progress=False)
    assert result["stopped"] and result["step"] == 170
    # Every counted step is stored: 100 in the prefill episode, 70 in the cut one.
    assert sum(_stored_steps(tmp_path / "run")) == 170

"""Tests for mutants of loop.py that survived tools/parity/mutation.sh (docs/parity.md, "training
loop: loop, training, overlap"): the per-phase and per-step work of `loop.Loop`: prefill,
evaluation, collection, owed updates (issue 11), `train_step`'s schedule, `write` and `close`.
Each method is called on stand-ins that record what they are asked; expected values are written
out by hand from the spec and the official `train.py`. No training run."""

from __future__ import annotations

import types

import numpy as np
import pytest

from dreamerv2_torch import loop as loop_module
from dreamerv2_torch import presets
from dreamerv2_torch.loop import Every, Loop

NS = types.SimpleNamespace


def _config(**overrides):
    return presets.resolve(["debug"], {"task": "dummy_discrete", "logdir": "", **overrides})




# ---- Loop.prefill, evaluate, collect, run_owed, update ---------------------------------------


class _Driver:
    """A driver stand-in: records its calls and resets."""

    def __init__(self, name, log, after=None):
        self.name, self.log, self.after = name, log, after

    def __call__(self, policy, steps=0, episodes=0):
        self.log.append((self.name, policy, steps, episodes))
        if self.after:
            self.after()

    def reset(self):
        self.log.append((self.name, "reset"))


def _prefill(monkeypatch, *, train_total=0, eval_total=0, loaded_after=1, eval_env=True,
             stop=False):
    monkeypatch.setattr(loop_module, "random_policy",
                        lambda space, n, rng: ("random", space, n, rng))
    log, loop = [], Loop.__new__(Loop)
    loop.config = NS(prefill=100, replay=NS(minlen=10))
    loop.step, loop.rng, loop.stop = 30, "rng", NS(flag=stop)
    loop.train_envs = NS(act_space="space", num_envs=2)
    loop.train_replay = NS(stats={"total_episodes": train_total, "loaded_episodes": 0})
    loop.eval_replay = NS(stats={"total_episodes": eval_total})

    def stored():
        if sum(entry[0] == "train" for entry in log) >= loaded_after:
            loop.train_replay.stats["loaded_episodes"] = 1

    loop.train_driver = _Driver("train", log, stored)
    loop.eval_driver = _Driver("eval", log) if eval_env else None
    return loop, log


def test_prefill_plays_random_steps_and_one_stored_episode_per_replay(monkeypatch, capsys):
    loop, log = _prefill(monkeypatch)
    loop.prefill()
    policy = ("random", "space", 2, "rng")  # the loop's random stream (checkpointed)
    assert log == [("train", policy, 70, 1),  # the steps left, and at least one episode
                   ("eval", ("random", "space", 1, "rng"), 0, 1),  # one for the eval report
                   ("train", "reset"), ("eval", "reset")]
    assert capsys.readouterr().out == "Prefill: 70 random policy steps.\n"
    # Episodes already stored (a resume): no episode asked for; episodes shorter than minlen
    # are not stored, so it goes on one episode at a time until one is; no second eval episode.
    loop, log = _prefill(monkeypatch, train_total=2, eval_total=1, loaded_after=3)
    loop.prefill()
    assert log == [("train", policy, 70, 0), ("train", policy, 0, 1), ("train", policy, 0, 1),
                   ("train", "reset"), ("eval", "reset")]


def test_prefill_gives_up_after_1000_short_episodes_and_stops_on_ctrl_c(monkeypatch):
    loop, log = _prefill(monkeypatch, loaded_after=10**6)
    with pytest.raises(ValueError, match=r"^no random episode reached replay.minlen=10 steps in "
                       r"1000 tries; lower --replay.minlen$"):
        loop.prefill()
    assert len(log) == 1 + 1000
    loop, log = _prefill(monkeypatch, loaded_after=10**6, stop=True)
    loop.prefill()  # a stop: no error, no eval episode
    assert [entry[0] for entry in log] == ["train", "train", "eval"]
    assert log[1:] == [("train", "reset"), ("eval", "reset")]
    loop, log = _prefill(monkeypatch, eval_env=False)
    loop.prefill()
    assert log == [("train", ("random", "space", 2, "rng"), 70, 1), ("train", "reset")]


def _eval_loop(log, *, eval_done=0, loaded=1, video_keys=("image",), batch=16, eval_env=True):
    loop = Loop.__new__(Loop)
    loop.config = NS(dataset=NS(batch=batch, length=50), eval_eps=3)
    loop.eval_done, loop.video_keys = eval_done, list(video_keys)
    loop.eval_replay = NS(stats={"loaded_episodes": loaded},
                          sample=lambda b, n: log.append(("sample", b, n)) or "batch")
    loop.agent = NS(report=lambda batch: {"report": batch})
    loop.logger = NS(add=lambda metrics, prefix: log.append(("add", metrics, prefix)))
    loop._policy = lambda mode: f"{mode} policy"
    loop.eval_driver = _Driver("eval", log) if eval_env else None
    return loop


def test_evaluate_reports_once_per_phase_and_plays_the_episodes_left():
    log = []
    _eval_loop(log).evaluate()
    assert log == [("sample", 6, 50), ("add", {"report": "batch"}, "eval"), ("eval", "reset"),
                   ("eval", "eval policy", 0, 3)]
    log.clear()
    _eval_loop(log, batch=4).evaluate()
    assert log[0] == ("sample", 4, 50)  # min(6, batch)
    log.clear()  # a phase continued after a stop: no second report, the episodes left only
    _eval_loop(log, eval_done=1).evaluate()
    assert log == [("eval", "reset"), ("eval", "eval policy", 0, 2)]
    log.clear()
    _eval_loop(log, eval_done=3).evaluate()
    assert log == []
    for kwargs in ({"loaded": 0}, {"video_keys": ()}):  # nothing to report from
        _eval_loop(log, **kwargs).evaluate()
        assert [entry[0] for entry in log] == ["eval", "eval"]
        log.clear()
    _eval_loop(log, eval_env=False).evaluate()
    assert log == [("sample", 6, 50), ("add", {"report": "batch"}, "eval")]


def test_collect_runs_the_owed_round_first_or_hands_over_to_the_collector():
    log, loop = [], Loop.__new__(Loop)
    loop.overlap, loop.train_driver = None, _Driver("train", log)
    loop.run_owed = lambda: log.append("owed")
    loop._policy = lambda mode: f"{mode} policy"
    loop.collect(25)
    assert log == ["owed", ("train", "train policy", 25, 0)]
    log.clear()
    loop.overlap = NS(collect=lambda steps: log.append(("overlap", steps)))
    loop.collect(25)
    assert log == [("overlap", 25)]


def test_owed_updates_run_at_the_step_they_fell_due():
    loop, seen = Loop.__new__(Loop), []
    loop.agent, loop.owed = NS(step=0), [5, 5, 9]
    loop.update = lambda: seen.append(loop.agent.step)
    loop.run_owed()
    assert seen == [5, 5, 9] and loop.owed == []


def test_update_builds_the_dataset_once_and_counts(monkeypatch):
    calls = []
    monkeypatch.setattr(loop_module, "device_batches", lambda source, device, switch, replay: (
        calls.append((source, device, switch, replay)) or iter(["b1", "b2"])))
    monkeypatch.setattr(loop_module, "sampled_batches", lambda replay, batch, length: (
        calls.append((replay, batch, length)) or iter(["s1"])))
    loop = Loop.__new__(Loop)
    loop.config = NS(dataset=NS(batch=16, length=50), prefetch="auto")
    loop.dataset, loop.overlap, loop.updates = None, None, 4
    loop.train_replay = NS(dataset=lambda batch, length: ("dataset", batch, length))
    loop.agent = NS(device="cpu", train=lambda batch: {"loss": batch})
    loop.metrics = NS(add=lambda metrics: calls.append(metrics))
    loop.update()
    loop.update()
    assert calls == [(("dataset", 16, 50), "cpu", "auto", loop.train_replay), {"loss": "b1"},
                     {"loss": "b2"}]
    assert loop.updates == 6
    calls.clear()  # with `overlap`: each batch sampled when its update starts
    loop.dataset, loop.overlap = None, "collector"
    loop.update()
    assert calls == [(loop.train_replay, 16, 50), {"loss": "s1"}]


# ---- Loop.train_step, write, close ------------------------------------------------------------


def _step_loop(log, *, pretrained=True, video_keys=("image",), overlap=None, forecast=True):
    loop = Loop.__new__(Loop)
    loop.config = NS(action_repeat=4, train_steps=2, dataset=NS(batch=16, length=50))
    loop.step, loop.updates, loop.pretrained, loop.owed = 9, 3, pretrained, []
    loop.agent = NS(step=8, report=lambda batch: {"report": batch})
    loop.progress = NS(update=lambda frames: log.append(("progress", frames)))
    loop.forecast = (lambda step, updates: log.append(("forecast", step, updates))) if forecast \
        else None
    loop.every = {"train": Every(5), "log": Every(10)}
    loop.overlap, loop.video_keys = overlap, list(video_keys)
    loop.run_owed = lambda: log.append(("run owed", list(loop.owed)))
    loop.train_replay = NS(sample=lambda b, n: log.append(("sample", b, n)) or "batch")
    loop.logger = NS(add=lambda metrics, prefix: log.append(("add", metrics, prefix)))
    loop.write = lambda fps: log.append(("write", fps))
    loop.check_skipped = lambda: log.append("check")
    return loop


def test_a_train_step_counts_trains_and_logs_on_schedule():
    log = []
    loop = _step_loop(log)
    loop.train_step({"t": 1}, 0)
    assert loop.step == 10
    assert log == [("progress", 40), ("forecast", 10, 3),
                   ("run owed", [8, 8]),  # train_steps updates at the acting step
                   ("sample", 6, 50), ("add", {"report": "batch"}, "train"), ("write", True),
                   "check"]
    log.clear()
    loop.train_step({"t": 2}, 0)  # neither is due one step later
    assert log == [("progress", 44), ("forecast", 11, 3)]


def test_a_train_step_in_prefill_only_counts_and_overlap_queues_the_round():
    log = []
    loop = _step_loop(log, pretrained=False)
    loop.train_step({}, 0)
    assert loop.step == 10 and log == [("progress", 40)]
    assert loop.every["train"].last is None  # the schedule starts after the prefill
    log.clear()
    loop = _step_loop(log, overlap="collector", video_keys=(), forecast=False)
    loop.owed = [3]  # a round a checkpoint kept, not yet run
    loop.train_step({}, 0)
    assert loop.owed == [3, 8, 8]  # run by the collector's schedule, not here
    assert log == [("progress", 40), ("write", True), "check"]


def _write_loop(log, monkeypatch, now=110.0):
    monkeypatch.setattr(loop_module.time, "time", lambda: now)
    loop = Loop.__new__(Loop)
    loop.config = NS(action_repeat=4)
    loop.step, loop.last_write = 30, (100.0, 40)
    loop.metrics = NS(pop=lambda: {"image_loss": 3.0, "kl": 1.0})
    loop.image_shapes = {"image": (2, 2, 1)}
    loop.logger = NS(scalar=lambda name, value: log.append(("scalar", name, value)),
                     add=lambda metrics: log.append(("add", metrics)),
                     write=lambda frames: log.append(("logger write", frames)) or "written")
    loop.progress = NS(update=lambda frames, line: log.append(("progress", frames, line)))
    return loop


def test_write_logs_fps_the_update_means_and_the_pixel_error(monkeypatch):
    log = []
    loop = _write_loop(log, monkeypatch)
    loop.write(fps=True)
    # fps: (120 − 40) frames in 10 s; image_mse = 2·(loss / pixels − log √(2π)) (docs/metrics.md)
    mse = 2 * (3.0 / 4 - 0.5 * np.log(2 * np.pi))
    assert log[0] == ("scalar", "fps", 8.0)
    assert log[1] == ("add", {"image_loss": 3.0, "kl": 1.0})
    assert log[2][0] == "add" and log[2][1] == {"image_mse": pytest.approx(mse)}
    assert log[3:] == [("logger write", 120), ("progress", 120, "written")]
    assert loop.last_write == (110.0, 120)
    log.clear()
    loop = _write_loop(log, monkeypatch)
    loop.write()  # without fps: no clock read
    assert [entry[0] for entry in log] == ["add", "add", "logger write", "progress"]
    assert loop.last_write == (100.0, 40)
    log.clear()
    loop = _write_loop(log, monkeypatch, now=100.0)  # no time has passed: no rate, a new mark
    loop.write(fps=True)
    assert log[0][0] == "add" and loop.last_write == (100.0, 120)


def test_close_stops_the_collector_the_dataset_and_the_envs():
    log, loop = [], Loop.__new__(Loop)

    def closer(name):
        return NS(close=lambda: log.append(name))

    loop.overlap, loop.dataset = closer("overlap"), closer("dataset")
    loop.train_envs, loop.eval_env = closer("train envs"), closer("eval env")
    loop.close()
    assert log == ["overlap", "dataset", "train envs", "eval env"] and loop.dataset is None
    log.clear()
    loop.overlap = loop.dataset = loop.eval_env = None
    loop.close()
    assert log == ["train envs"]

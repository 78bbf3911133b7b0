"""Tests for mutants of runner.py, loop.py and overlap.py that survived tools/parity/mutation.sh
(docs/parity.md, "training loop: runner, loop, overlap"): the official `train.py` order (spec §3.2,
§3.3: `Every`, prefill, the first updates, the phases of [evaluate → checkpoint → train]) and
issue 9/11's rules (stops, resumes, owed updates), with each `runner.Loop` method called on
stand-ins that record what they are asked; expected values are written out by hand. No training
run."""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import signal
import threading
import types

import numpy as np
import pytest
import torch

from dreamerv2_torch import loop as loop_module
from dreamerv2_torch import overlap, presets, runner
from dreamerv2_torch.device_metrics import DeviceMetrics
from dreamerv2_torch.driver import stream_seed
from dreamerv2_torch.loop import StopRequested
from dreamerv2_torch.rundir import RunError
from dreamerv2_torch.runner import Every, Loop

NS = types.SimpleNamespace


def _config(**overrides):
    return presets.resolve(["debug"], {"task": "dummy_discrete", "logdir": "", **overrides})


# ---- Every -------------------------------------------------------------------------------------


def test_every_fires_first_then_once_per_period_without_catching_up():
    every = Every(5)  # official `common.Every`
    fired = [every(s) for s in (3, 7, 8, 12, 20, 20, 22, 23)]
    assert fired == [True, False, True, False, True, True, False, True]
    assert every.last == 23  # 3, 8, then 13, 18, 23: one period per firing
    off = Every(0)
    assert [off(s) for s in (0, 1, 100)] == [False] * 3 and off.last is None
    resumed = Every(5, last=10)  # a checkpoint's `last`
    assert [resumed(s) for s in (14, 15, 16)] == [False, True, False] and resumed.last == 15


# ---- Loop.__init__, attach, _policy --------------------------------------------------------


def _envs(num_envs=1):
    obs_space = {"image": NS(shape=(64, 64, 1)), "reward": NS(shape=())}
    return NS(num_envs=num_envs, obs_space=obs_space, act_space={})


def _agent():
    return NS(wm=NS(image_keys=["image"]), device=torch.device("cpu"), policy_snapshot=dict,
              step=0)


def test_a_new_loop_starts_every_counter_at_its_beginning(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.time, "monotonic", lambda: 77.0)
    monkeypatch.setattr(runner.time, "time", lambda: 88.0)
    config = _config(train_every=5, log_every=50, eval_every=300, action_repeat=4,
                     nonfinite="drop", log_keys_video=["image", "depth"])
    agent, envs, eval_env, rng = _agent(), _envs(2), _envs(), np.random.default_rng(0)
    loop = Loop(config, agent, envs, eval_env, "train replay", "eval replay", rng, tmp_path)
    assert (loop.config, loop.agent, loop.logdir, loop.rng) == (config, agent, tmp_path, rng)
    assert (loop.train_replay, loop.eval_replay) == ("train replay", "eval replay")
    assert loop.train_envs is envs and loop.eval_env is eval_env
    drivers = (loop.train_driver, loop.eval_driver)
    assert [(d.envs, d.name, d.nonfinite) for d in drivers] == [
        (envs, "train", "drop"), (eval_env, "eval", "drop")]
    assert loop.crafter == {"episodes": 0, "counts": {}}
    assert (loop.step, loop.updates, loop.pretrained, loop.frames) == (0, 0, False, 0)
    assert {k: (e.every, e.last) for k, e in loop.every.items()} == {
        "train": (5, None), "log": (50, None), "video_train": (300, None),
        "video_eval": (300, None)}
    assert loop.dataset is None and loop.owed == [] and loop.overlap is None
    assert isinstance(loop.metrics, DeviceMetrics)
    assert (loop.last_eval, loop.eval_done, loop.restarts) == (None, 0, 0)
    assert loop.last_save == 77.0 and loop.last_write == (88.0, 0)
    assert loop.skipped_mark == ({}, 0) and loop.forecast is None
    assert loop.video_keys == ["image"]  # the configured keys the env has
    assert loop.image_shapes == {"image": (64, 64, 1)}
    loop.step = 7
    assert loop.frames == 28  # frames = policy steps × action_repeat
    alone = Loop(config, agent, envs, None, None, None, rng, tmp_path)  # eval_eps 0: no eval env
    assert alone.eval_driver is None
    both = Loop(_config(overlap=True), agent, envs, None, None, None, rng, tmp_path)
    assert isinstance(both.overlap, overlap.Overlap) and both.overlap.loop is both


def test_attach_wires_the_driver_callbacks(tmp_path):
    loop = Loop(_config(), _agent(), _envs(), _envs(), None, None, None, tmp_path)
    calls, stop = [], NS(flag=False)
    loop.save_by_the_clock = lambda: calls.append("clock")
    loop.train_step = lambda transition, worker: calls.append(("step", transition, worker))
    loop.per_episode = lambda episode, mode: calls.append((mode, episode))
    loop.attach("logger", "progress", stop)
    assert (loop.logger, loop.progress, loop.stop) == ("logger", "progress", stop)
    train, evaluation = loop.train_driver, loop.eval_driver
    assert not train.should_stop() and not evaluation.should_stop()
    stop.flag = True  # a Ctrl-C stops both drivers
    assert train.should_stop() and evaluation.should_stop()
    assert [len(d.on_steps) for d in (train, evaluation)] == [1, 0]
    for callbacks, args in ((train.on_safe_points, ()), (train.on_steps, ("t", 1)),
                            (train.on_episodes, ("ep", 1)), (evaluation.on_episodes, ("ev", 0)),
                            (evaluation.on_safe_points, ())):
        (callback,) = callbacks
        callback(*args)
    assert calls == ["clock", ("step", "t", 1), ("train", "ep"), ("eval", "ev")]
    # No clock checkpoint in an evaluation phase before its first episode has finished.
    loop.eval_done = 1
    evaluation.on_safe_points[0]()
    assert calls[-1] == "clock" and len(calls) == 5
    alone = Loop(_config(), _agent(), _envs(), None, None, None, None, tmp_path)
    alone.attach("logger", "progress", stop)  # no eval driver to wire
    assert alone.train_driver.should_stop()


def test_the_policy_acts_at_the_policy_step_counter():
    loop = Loop.__new__(Loop)
    loop.step, loop.agent = 42, NS(step=0)
    loop.agent.policy = lambda obs, state, mode: (obs, state, mode, loop.agent.step)
    assert loop._policy("eval")("obs", "state") == ("obs", "state", "eval", 42)


# ---- Loop.run: the phases --------------------------------------------------------------------


def _run_loop(log, *, step=0, updates=0, pretrained=False, loaded=0, last_eval=None,
              stop_in=None, prefill=100, pretrain=2, steps=450, eval_every=200):
    """A `Loop` whose phases only record (and move the counters as the real ones would)."""
    loop = Loop.__new__(Loop)
    loop.config = NS(prefill=prefill, pretrain=pretrain, steps=steps, eval_every=eval_every)
    loop.step, loop.updates, loop.pretrained = step, updates, pretrained
    loop.last_eval, loop.eval_done = last_eval, 5
    loop.train_replay = NS(stats={"loaded_episodes": loaded})
    loop.stop = NS(flag=False)

    def record(*entry):
        log.append(entry)
        if entry[0] == stop_in:
            loop.stop.flag = True

    def prefill_():
        record("prefill", loop.step)
        loop.step = max(loop.step, prefill)

    def update():
        loop.updates += 1
        record("update", loop.updates)

    def evaluate():
        record("evaluate", loop.step)
        loop.eval_done = 3

    def collect(n):
        loop.step += n
        record("collect", n)

    loop.prefill, loop.update, loop.evaluate, loop.collect = prefill_, update, evaluate, collect
    loop.save_by_the_clock = lambda: record("clock")
    loop.write = lambda: record("write", loop.step)
    loop.save = lambda: record("save", loop.step, loop.last_eval, loop.eval_done)
    return loop


def test_a_fresh_run_goes_through_the_official_phases():
    log = []
    loop = _run_loop(log)
    loop.run()
    assert log == [
        ("prefill", 0), ("update", 1), ("clock",), ("update", 2), ("clock",), ("update", 3),
        ("clock",),  # the variable-creation update + pretrain 2, a clock checkpoint after each
        ("write", 100), ("evaluate", 100), ("save", 100, 100, 0), ("collect", 200),
        ("write", 300), ("evaluate", 300), ("save", 300, 300, 0),  # at last_eval + eval_every
        ("collect", 150),  # up to `steps`, not a whole period
        ("write", 450), ("save", 450, 300, 0)]
    assert loop.pretrained


def test_a_resume_continues_the_phase_it_stopped_in():
    log = []
    _run_loop(log, step=250, updates=3, pretrained=True, loaded=1, last_eval=100).run()
    assert log[:2] == [("collect", 50), ("write", 300)]  # no prefill, no pretrain, no evaluation
    log.clear()  # the prefill is done, but no episode was stored (`--prefill 0`): one first
    _run_loop(log, step=100, updates=3, pretrained=True, loaded=0, last_eval=100).run()
    assert log[:2] == [("prefill", 100), ("collect", 200)]
    log.clear()  # stored episodes, but fewer steps than the prefill
    _run_loop(log, step=99, updates=3, pretrained=True, loaded=1, last_eval=0, eval_every=99).run()
    assert log[:3] == [("prefill", 99), ("write", 100), ("evaluate", 100)]
    log.clear()  # a stop in pretraining left it unfinished: 1 + pretrain updates in all
    _run_loop(log, step=100, updates=1, loaded=1, steps=100).run()
    assert log == [("update", 2), ("clock",), ("update", 3), ("clock",), ("write", 100),
                   ("save", 100, None, 5)]


def test_stops_end_each_phase_with_one_write_and_one_checkpoint():
    log = []
    loop = _run_loop(log, stop_in="update")
    loop.run()
    assert log == [("prefill", 0), ("update", 1), ("clock",), ("write", 100),
                   ("save", 100, None, 5)]
    assert not loop.pretrained  # the resume runs the rest of the first updates
    log.clear()
    _run_loop(log, stop_in="evaluate").run()  # the phase is continued on resume, not redone
    assert log[-4:] == [("write", 100), ("evaluate", 100), ("write", 100), ("save", 100, None, 3)]
    log.clear()
    _run_loop(log, stop_in="collect").run()
    assert log[-3:] == [("collect", 200), ("write", 300), ("save", 300, 100, 0)]


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
    monkeypatch.setattr(runner, "random_policy", lambda space, n, rng: ("random", space, n, rng))
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
    monkeypatch.setattr(runner, "device_batches", lambda source, device, switch, replay: (
        calls.append((source, device, switch, replay)) or iter(["b1", "b2"])))
    monkeypatch.setattr(runner, "sampled_batches", lambda replay, batch, length: (
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
    monkeypatch.setattr(runner.time, "time", lambda: now)
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


# ---- loop.py: the env factory and the stop flag ------------------------------------------------


def test_the_task_env_gets_every_env_setting_of_the_config(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(loop_module, "make_env", lambda task, **kwargs: made.append(
        (task, kwargs)) or "env")
    config = _config(task="atari_pong", action_repeat=3, time_limit=77, render_size=[48, 40],
                     atari_grayscale=False, atari_all_actions=False, dmc_camera=2)
    factory = loop_module.default_env_factory(config, tmp_path)
    assert pickle.loads(pickle.dumps(factory)).args[0] == config  # envs > 1 pickles it
    assert factory(123, "eval") == "env"
    assert made == [("atari_pong", {
        "seed": 123, "mode": "eval", "action_repeat": 3, "time_limit": 77, "size": (48, 40),
        "grayscale": False, "all_actions": False, "camera": 2, "logdir": tmp_path,
        "pixels": True})]
    vector = _config(task="atari_pong", **{"encoder.cnn_keys": "$^"})  # no image encoder
    loop_module.default_env_factory(vector, tmp_path)(0, "train")
    assert made[-1][1]["pixels"] is False


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="signals")
def test_a_stop_request_sets_the_flag_once_and_restores_the_handlers(capsys):
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopRequested() as stop:
        assert stop.flag is False
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == stop._handle
        signal.raise_signal(signal.SIGTERM)
        assert stop.flag is True
        # The first signal restores the old handlers: a second Ctrl-C aborts without saving.
        assert {sig: signal.getsignal(sig) for sig in before} == before
    assert capsys.readouterr().out == ("\nStopping after the current step and saving a "
                                       "checkpoint (interrupt again to abort without saving).\n")
    with StopRequested() as stop:
        pass
    assert not stop.flag and {sig: signal.getsignal(sig) for sig in before} == before
    in_thread = []  # not the main thread (e.g. a Ray worker): no handler, no error
    thread = threading.Thread(target=lambda: in_thread.append(StopRequested().__enter__()._old))
    thread.start()
    thread.join()
    assert in_thread == [{}]


# ---- overlap.py: the collector's schedule pieces -----------------------------------------------


def _overlap(seed=5):
    loop = NS(config=NS(seed=seed), agent=NS(device=torch.device("cpu"), step=0,
                                           policy_snapshot=lambda: {"actor": "copy"}),
              step=12, every={"train": Every(5)})
    return overlap.Overlap(loop), loop


def test_the_collector_starts_idle_with_its_own_random_stream():
    collector, loop = _overlap()
    assert collector.loop is loop and collector.agent is loop.agent
    assert collector.nets == {"actor": "copy"}
    # A fresh run: `stream_seed` is seed + index (driver.py), index POLICY_STREAM = 2·10⁶.
    assert collector.generator.initial_seed() == 5 + 2 * 10**6
    assert not collector.halt.is_set() and collector.thread is None
    assert collector.pending is None and collector.stream is None and collector.refreshed is None
    assert collector.requests.empty() and collector.results.empty()
    collector.reseed(restarts=2, stored=7)  # a restart: the words of `stream_seed`, hashed
    words = np.random.SeedSequence([5, 2 * 10**6, 2, 7]).generate_state(1)[0]
    assert collector.generator.initial_seed() == int(words)


def test_a_block_ends_at_the_next_due_step():
    collector, loop = _overlap()
    assert collector._next_due() == 13  # `Every` fires on its first call: the next step
    loop.every["train"].last = 10
    assert collector._next_due() == 15  # last + every
    loop.step = 20  # a batched step of several envs went past it: at least one step
    assert collector._next_due() == 21


def test_the_block_events_go_through_the_loop_callbacks_in_order():
    collector, loop = _overlap()
    seen = []
    loop.train_step = lambda transition, worker: seen.append(("step", transition, worker,
                                                              loop.agent.step))
    loop.per_episode = lambda episode, mode: seen.append((mode, episode))
    collector._replay([("act",), ("step", "t1", 0), ("episode", "ep"), ("step", "t2", 1)])
    assert seen == [("step", "t1", 0, 12), ("train", "ep"), ("step", "t2", 1, 12)]


class _BlockDriver:
    """A train driver whose call plays two steps and one episode through its callbacks."""

    def __init__(self, fail=False):
        self.on_steps, self.on_episodes, self.on_safe_points = ["steps"], ["episodes"], ["safe"]
        self.should_stop, self.fail, self.seen = "stop", fail, []

    def __call__(self, policy, steps=0, episodes=0):
        self.seen.append((steps, self.on_safe_points, self.should_stop()))
        policy("obs", "policy state")
        self.on_steps[0]("t1", 0)
        self.on_episodes[0]("ep", 0)
        if self.fail:
            raise RuntimeError("emulator broke")


def test_a_block_records_instead_of_calling_back_and_restores_the_driver():
    collector, loop = _overlap()
    loop.train_driver = driver = _BlockDriver()
    acted = []
    loop.agent.policy = lambda obs, state, mode, nets, generator: acted.append(
        (obs, state, mode, nets, generator)) or "action"
    assert collector._play(7) == [("act",), ("step", "t1", 0), ("episode", "ep")]
    assert driver.seen == [(7, [], False)]  # no checkpoint inside a block; stops by `halt`
    assert acted == [("obs", "policy state", "train", {"actor": "copy"}, collector.generator)]
    restored = (driver.on_steps, driver.on_episodes, driver.on_safe_points, driver.should_stop)
    assert restored == (["steps"], ["episodes"], ["safe"], "stop")
    loop.train_driver = driver = _BlockDriver(fail=True)
    with pytest.raises(RuntimeError, match="emulator broke"):
        collector._play(3)
    assert driver.on_steps == ["steps"] and driver.should_stop == "stop"
    collector.halt.set()
    loop.train_driver = driver = _BlockDriver()
    collector._play(1)
    assert driver.seen[0][2] is True


def test_without_a_thread_a_block_is_played_at_the_wait(monkeypatch):
    monkeypatch.setattr(overlap, "THREADED", False)
    collector, loop = _overlap()
    plays = []
    collector._play = lambda steps: plays.append(steps) or ["events"]
    collector.start(4)
    assert plays == [] and collector.pending == 4 and collector.thread is None
    assert collector.wait() == ["events"] and plays == [4] and collector.pending is None
    collector.close()
    assert collector.halt.is_set()


def test_an_error_in_the_collector_thread_is_raised_in_the_main_thread():
    collector, _ = _overlap()

    def play(steps):
        if steps == 2:
            raise RuntimeError("emulator broke")
        return [("played", steps)]

    collector._play = play
    collector.start(1)
    thread = collector.thread
    assert thread.name == "overlap-collector" and thread.daemon
    assert collector.wait() == [("played", 1)]
    collector.start(2)
    with pytest.raises(RuntimeError, match="emulator broke"):
        collector.wait()
    assert collector.thread is None and not thread.is_alive() and collector.halt.is_set()


def test_in_process_envs_are_made_called_and_closed_in_their_own_thread():
    seen = []

    class Envs:
        num_envs, obs_space, act_space = 3, "obs space", "act space"

        def __getattr__(self, name):
            def call(*args):
                seen.append((name, args, threading.current_thread().name))
                return name
            return call

    envs = overlap.EnvThread(lambda: seen.append(("build", threading.current_thread().name))
                             or Envs())
    assert (envs.num_envs, envs.obs_space, envs.act_space) == (3, "obs space", "act space")
    assert envs.reset([0, 2]) == "reset" and envs.step(["a"]) == "step"
    assert envs.get_states() == "get_states" and envs.set_states(["s"]) == "set_states"
    envs.close()
    assert envs.envs is None
    names = {entry[-1] for entry in seen}
    assert len(names) == 1 and next(iter(names)).startswith("train-envs")
    assert [entry[:-1] for entry in seen[1:]] == [
        ("reset", ([0, 2],)), ("step", (["a"],)), ("get_states", ()), ("set_states", (["s"],)),
        ("close", ())]
    with pytest.raises(RuntimeError, match="after shutdown"):  # the thread pool is shut down
        envs._call(print)


def test_sampled_batches_sample_when_asked():
    asked = []
    replay = NS(sample=lambda batch, length: asked.append((batch, length)) or len(asked))
    batches = overlap.sampled_batches(replay, 16, 50)
    assert asked == []  # nothing ahead
    assert [next(batches), next(batches)] == [1, 2] and asked == [(16, 50)] * 2


# ---- loop._train: the wiring -----------------------------------------------------------------


class _Recorder:
    """Stands in for a class `_train` builds: records its arguments and the calls made on it."""

    def __init__(self, log, name, **attributes):
        self.log, self.name = log, name
        self.__dict__.update(attributes)

    def __call__(self, *args, **kwargs):
        self.log.append((self.name, args, kwargs))
        made = _Recorder(self.log, f"{self.name}()", **self.__dict__.get("made", {}))
        made.args, made.kwargs = args, kwargs
        return made

    def __getattr__(self, method):
        if method.startswith("__"):
            raise AttributeError(method)
        return lambda *args, **kwargs: self.log.append((f"{self.name}.{method}", args, kwargs))


def _wire(monkeypatch, tmp_path, checkpoint=None, run_raises=None):
    log = []
    monkeypatch.setattr(loop_module, "open_rundir", lambda config: log.append(
        ("open_rundir", config)) or NS(logdir=tmp_path, checkpoint=checkpoint,
                                       commit=lambda: log.append("commit")))
    monkeypatch.setattr(loop_module.torch, "set_num_threads", lambda n: log.append(("threads", n)))
    monkeypatch.setattr(loop_module.torch, "manual_seed", lambda s: log.append(("torch seed", s)))
    spaces = {"obs_space": "obs", "act_space": "act"}
    for name in ("SerialEnvs", "ParallelEnvs", "EnvThread"):
        monkeypatch.setattr(loop_module, name, _Recorder(log, name, made=spaces))
    monkeypatch.setattr(loop_module.vector_atari, "from_config",
                        _Recorder(log, "from_config", made=spaces))
    monkeypatch.setattr(loop_module, "truncate_logs", lambda logdir, sizes: log.append(
        ("truncate", logdir, sizes)) or sum(sizes.values()))
    monkeypatch.setattr(loop_module, "Replay",
                        _Recorder(log, "Replay", made={"stats": {"total_steps": 33}}))
    nets = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(1_005_001)),
                                   torch.nn.Parameter(torch.zeros(9), requires_grad=False)])
    agent = NS(device=torch.device("cpu"), bf16=False, nets=nets)
    monkeypatch.setattr(loop_module, "Agent", lambda *args: log.append(("Agent", args)) or agent)

    class Loop_(_Recorder):
        def __call__(self, *args):
            made = super().__call__(*args)
            made.step = 40 if checkpoint else None
            if run_raises:
                made.run = lambda: (_ for _ in ()).throw(run_raises)
            return made

    monkeypatch.setattr(loop_module, "Loop", Loop_(log, "Loop"))
    monkeypatch.setattr(loop_module, "Logger", _Recorder(log, "Logger"))
    monkeypatch.setattr(loop_module, "Progress",
                        _Recorder(log, "Progress", made={"restart_rate": "the bar's restart"}))
    monkeypatch.setattr(loop_module, "Forecast", _Recorder(log, "Forecast"))
    monkeypatch.setattr(loop_module.tracking, "make_trackers", lambda config, logdir: (
        "trackers", config, logdir))
    return log, agent


def _calls(log, name):
    return [entry[1:] for entry in log if isinstance(entry, tuple) and entry[0] == name]


def _make(log):
    return lambda seed, mode: log.append(("make", seed, mode)) or f"{mode} env {seed}"


def test_a_fresh_run_is_wired_from_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    config = _config(seed=7, threads=2, action_repeat=2, steps=500, log_every=50, precision=32,
                     train_every=5, train_steps=3, **{
                         "replay.capacity": 1005, "replay.minlen": 10, "replay.maxlen": 50,
                         "replay.prioritize_ends": True, "dataset.length": 20})
    log, agent = _wire(monkeypatch, tmp_path)
    result = loop_module._train(config, _make(log), progress=True)
    order = [e if isinstance(e, str) else e[0] for e in log]
    assert log[0] == ("open_rundir", config)
    # The envs are built (the task checked) before the logdir is written, then seeding.
    assert order[1:7] == ["threads", "make", "SerialEnvs", "make", "SerialEnvs", "commit"]
    assert order[7] == "torch seed"
    assert _calls(log, "threads") == [(2,)] and _calls(log, "torch seed") == [(7,)]
    # A fresh run: env i gets seed + i, the eval env seed + 10000 (driver.stream_seed).
    assert _calls(log, "make") == [(10007, "eval"), (7, "train")]
    assert _calls(log, "SerialEnvs") == [((["eval env 10007"],), {}), ((["train env 7"],), {})]
    assert _calls(log, "truncate") == [(tmp_path, {"metrics.jsonl": 0, "scores.jsonl": 0})]
    assert _calls(log, "Replay") == [
        ((tmp_path / "train_episodes", 1005, 10, 50, True), {"seed": 7}),
        ((tmp_path / "eval_episodes", 100, 20, 20, False), {"seed": 8})]  # capacity // 10
    assert len(_calls(log, "Replay().load")) == 2
    (agent_args,) = _calls(log, "Agent")
    assert agent_args == (("obs", "act", config),)
    ((loop_args, _),) = _calls(log, "Loop")
    assert loop_args[0] is config and loop_args[1] is agent and loop_args[7] == tmp_path
    assert loop_args[2].args == (["train env 7"],)
    assert loop_args[3].args == (["eval env 10007"],)
    assert [r.args[0].name for r in loop_args[4:6]] == ["train_episodes", "eval_episodes"]
    assert loop_args[6].random() == np.random.default_rng(7 + 10**6).random()  # random policy
    assert _calls(log, "Loop().restore") == []
    assert _calls(log, "Logger") == [((tmp_path,), {"tensorboard_videos":
                                                    config.tensorboard_videos,
                                                    "trackers": ("trackers", config,
                                                                 tmp_path)})]
    # Progress in frames: steps × action_repeat, from the loaded steps, a line per log_every.
    (progress,) = _calls(log, "Progress")
    assert progress == ((1000, 66), {"disable": None, "every": 100})
    ((forecast_args, forecast_kwargs),) = _calls(log, "Forecast")
    assert forecast_args == (500, 2, "cpu", torch.get_num_threads())
    assert forecast_kwargs["small_model"] is False
    assert (forecast_kwargs["train_every"], forecast_kwargs["train_steps"]) == (5, 3)
    assert forecast_kwargs["on_start"] == "the bar's restart"  # the bar's rate restarts
    assert [e[0] for e in log if isinstance(e, tuple)][-5:] == [
        "Loop().attach", "Loop().run", "Loop().close", "Progress().close", "Logger().close"]
    ((attach, _),) = _calls(log, "Loop().attach")
    assert attach[0].name == "Logger()" and attach[1].name == "Progress()"
    assert attach[2].flag is False
    out = capsys.readouterr().out
    assert "Log lines written after" not in out
    assert (f"Task dummy_discrete, device cpu, float32, threads {torch.get_num_threads()} "
            "(OpenMP wait policy passive), ") in out
    # 1 005 001 trainable parameters (the frozen 9 are not counted): 1.005001M, to 2 places.
    assert f"1.01M trainable parameters, logdir {tmp_path}.\n" in out
    assert result == {"step": 33, "frames": 66, "stopped": False}


def test_a_resume_is_wired_from_its_checkpoint_and_the_stored_episodes(tmp_path, monkeypatch,
                                                                      capsys):
    for name in ("train_episodes/a.npz", "train_episodes/b.npz", "eval_episodes/c.npz",
                 "train_episodes/notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("x")
    ckpt = {"restarts": 2, "logs": {"metrics.jsonl": 5}}
    config = _config(seed=7, threads=0, eval_eps=0, envs=2, action_repeat=2,
                     **{"replay.capacity": 5})
    log, _ = _wire(monkeypatch, tmp_path, checkpoint=ckpt)
    result = loop_module._train(config, _make(log), progress=False)
    assert _calls(log, "threads") == []  # 0: torch's default
    # Restart 3 with 3 episode files: no stream of an earlier start repeats (driver.stream_seed).
    seeds = [stream_seed(7, i, 3, 3) for i in (0, 1)]
    ((make, envs, name), _), = _calls(log, "ParallelEnvs")
    assert (envs, name) == (seeds, "train") and make(1, "x") == "x env 1"
    assert _calls(log, "SerialEnvs") == []  # eval_eps 0: no eval env
    ((loop_args, _),) = _calls(log, "Loop")
    assert loop_args[3] is None
    assert loop_args[6].random() == np.random.default_rng(stream_seed(7, 10**6, 3, 3)).random()
    assert _calls(log, "truncate") == [(tmp_path, {"metrics.jsonl": 5})]
    assert _calls(log, "Replay")[1][0][1] == 1  # max(1, capacity // 10)
    assert _calls(log, "Loop().restore") == [((ckpt,), {})]
    assert _calls(log, "Progress")[0] == ((config.steps * 2, 80),
                                          {"disable": True, "every": config.log_every * 2})
    assert result == {"step": 40, "frames": 80, "stopped": False}
    assert capsys.readouterr().out.startswith(
        "Log lines written after the last checkpoint were dropped (a kill lost that work).\n")
    log, _ = _wire(monkeypatch, tmp_path, checkpoint={"step": 40})  # written before issue 9
    loop_module._train(config, _make(log), progress=False)
    ((_, envs, _), _), = _calls(log, "ParallelEnvs")
    assert envs == [stream_seed(7, i, 1, 3) for i in (0, 1)]  # its restart counter was 0
    assert _calls(log, "truncate") == [(tmp_path, {})]  # no log sizes kept: nothing cut


def test_the_train_envs_follow_atari_vector_and_overlap(tmp_path, monkeypatch):
    log, _ = _wire(monkeypatch, tmp_path)
    config = dataclasses.replace(_config(seed=7, eval_eps=0), atari_vector=True, envs=2)
    loop_module._train(config, _make(log), progress=True)
    assert _calls(log, "from_config") == [((config, 7), {})]
    assert _calls(log, "ParallelEnvs") == []
    log.clear()
    loop_module._train(_config(seed=7, eval_eps=0, overlap=True), _make(log), progress=True)
    ((build,), _), = _calls(log, "EnvThread")
    assert _calls(log, "make") == []  # made in the env thread, by `build`
    build()
    assert _calls(log, "make") == [(7, "train")]
    assert _calls(log, "SerialEnvs") == [((["train env 7"],), {})]


def test_the_run_is_closed_when_it_fails_and_a_big_atari_model_is_forecast_as_such(
        tmp_path, monkeypatch, capsys):
    log, agent = _wire(monkeypatch, tmp_path, run_raises=FloatingPointError("update failed"))
    agent.bf16 = False
    config = dataclasses.replace(_config(seed=7, eval_eps=0, precision=16), task="atari_pong")
    config.rssm = dataclasses.replace(config.rssm, deter=257)
    with pytest.raises(FloatingPointError, match="update failed"):
        loop_module._train(config, _make(log), progress=True)
    assert [e[0] for e in log if isinstance(e, tuple)][-3:] == [
        "Loop().close", "Progress().close", "Logger().close"]
    assert _calls(log, "Forecast")[0][1]["small_model"] is True
    assert ", float32 (no native bf16 here), " in capsys.readouterr().out
    agent.bf16 = True
    config.rssm = dataclasses.replace(config.rssm, deter=256)
    log.clear()
    monkeypatch.setattr(loop_module, "Loop", _Recorder(log, "Loop", made={"step": 0}))
    loop_module._train(config, _make(log), progress=True)
    assert _calls(log, "Forecast")[0][1]["small_model"] is False
    assert ", bfloat16 autocast, threads" in capsys.readouterr().out


def test_without_a_factory_the_task_env_is_made_from_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    log, _ = _wire(monkeypatch, tmp_path)
    monkeypatch.setattr(loop_module, "make_env", lambda task, **kwargs: log.append(
        ("make_env", task, kwargs["seed"], kwargs["mode"], kwargs["logdir"])) or "env")
    loop_module._train(_config(seed=7), None, progress=True)
    assert _calls(log, "make_env") == [("dummy_discrete", 10007, "eval", tmp_path),
                                       ("dummy_discrete", 7, "train", tmp_path)]
    assert "(OpenMP wait policy default), " in capsys.readouterr().out  # OMP_WAIT_POLICY unset


def test_train_validates_first_and_turns_an_os_error_into_one_line(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(loop_module, "_train", lambda config, factory, progress: calls.append(
        (config, factory, progress)) or "result")
    monkeypatch.setattr(loop_module.tracking, "check_available",
                        lambda config: calls.append(("tracking", config)))
    config = _config(logdir=str(tmp_path))
    assert loop_module.train(config, "factory") == "result"
    assert calls == [("tracking", config), (config, "factory", True)]
    with pytest.raises(presets.ConfigError):  # refused before anything else
        loop_module.train(dataclasses.replace(config, steps=0))
    assert len(calls) == 2
    (tmp_path / "checkpoint.pt.tmp").write_text("partial")

    def disk_full(config, factory, progress):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loop_module, "_train", disk_full)
    with pytest.raises(RunError) as error:
        loop_module.train(config, progress=False)
    assert str(error.value) == (f"[Errno 28] No space left on device (run in {tmp_path}; its "
                                "last checkpoint is intact)")
    assert error.value.__cause__ is None and error.value.__suppress_context__
    assert not (tmp_path / "checkpoint.pt.tmp").exists()  # the failed write's file is removed


def _collect(stop):
    """`Overlap.collect(12)` from step 100 with updates due every 5 steps, its parts recorded."""
    collector, loop = _overlap()
    log, blocks = [], []
    loop.step, loop.stop = 100, NS(flag=False)
    loop.run_owed = lambda: log.append("owed")
    loop.save_by_the_clock = lambda: log.append("clock")
    collector.refresh = lambda: log.append("refresh")
    collector._next_due = lambda: loop.step + 5
    collector.start = lambda steps: blocks.append(steps) or log.append(("start", steps))
    collector.wait = lambda: log.append("wait") or ["events"]

    def replay(events):
        log.append(("replay", events))
        loop.step += blocks[-1]
        loop.stop.flag = stop  # a Ctrl-C in the block

    collector._replay = replay
    collector.collect(12)
    return log, loop.step


def test_collect_plays_blocks_up_to_the_phase_end_then_runs_the_last_round():
    block = ["owed", "wait", "refresh", ("replay", ["events"]), "clock"]
    log, step = _collect(stop=False)
    assert log == ["refresh", ("start", 5), *block, ("start", 5), *block, ("start", 2),
                   *block, "owed", "refresh"]  # evaluation sees every update due
    assert step == 112
    log, step = _collect(stop=True)  # the round stays queued for the checkpoint
    assert log == ["refresh", ("start", 5), *block] and step == 105


def test_on_cuda_the_collector_acts_on_its_own_stream_after_the_snapshot(monkeypatch):
    log = []

    class Stream:
        def __init__(self, device):
            log.append(("stream", device))

        def wait_event(self, event):
            log.append(("wait", event))

    class Event:
        def record(self):
            log.append(("record", self))

    @contextlib.contextmanager
    def stream(s):
        log.append(("enter", s))
        yield
        log.append(("exit", s))

    cuda = NS(Stream=Stream, Event=Event, stream=stream)
    monkeypatch.setattr(overlap, "torch", NS(Generator=lambda device: log.append(
        ("generator", device)) or torch.Generator(), cuda=cuda))
    device = NS(type="cuda")
    collector, loop = _overlap()
    loop.agent.device = device
    loop.agent.refresh_snapshot = lambda nets: log.append(("refresh", nets))
    log.clear()
    collector = overlap.Overlap(loop)
    assert log == [("generator", device), ("stream", device)]
    assert isinstance(collector.stream, Stream) and isinstance(collector.refreshed, Event)
    collector.refresh()
    assert log[-2:] == [("refresh", collector.nets), ("record", collector.refreshed)]
    loop.train_driver, loop.agent.policy = _BlockDriver(), lambda *args: "action"
    collector._play(3)
    assert log[-3:] == [("enter", collector.stream), ("wait", collector.refreshed),
                        ("exit", collector.stream)]


def test_in_process_env_calls_wait_for_each_other():
    started, other, result = threading.Event(), threading.Event(), []

    class Envs:
        num_envs, obs_space, act_space = 1, None, None

        def step(self, actions):
            started.set()
            return other.wait(0.2)  # True only if `reset` ran meanwhile, in another thread

        def reset(self, indices):
            other.set()

        def close(self):
            pass

    envs = overlap.EnvThread(Envs)
    caller = threading.Thread(target=lambda: result.append(envs.step([])))
    caller.start()
    assert started.wait(5)
    envs.reset([0])  # the collector steps while the main thread resets: one env thread
    caller.join()
    envs.close()
    assert result == [False]

"""Tests for mutants of loop.py that survived tools/parity/mutation.sh (docs/parity.md, "training
loop: loop, training, overlap"): the official `train.py` order (spec §3.2, §3.3): `Every`, a new
`Loop`'s counters and wiring, and `Loop.run`'s phases [prefill → first updates → evaluate →
checkpoint → train], with stops and resumes (issue 9). Each method is called on stand-ins that
record what they are asked; expected values are written out by hand from the spec and the
official `train.py`. No training run."""

from __future__ import annotations

import types

import numpy as np
import torch

from dreamerv2_torch import loop as loop_module
from dreamerv2_torch import overlap, presets
from dreamerv2_torch.device_metrics import DeviceMetrics
from dreamerv2_torch.loop import Every, Loop

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
    monkeypatch.setattr(loop_module.time, "monotonic", lambda: 77.0)
    monkeypatch.setattr(loop_module.time, "time", lambda: 88.0)
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
    assert [len(d.on_stores) for d in (train, evaluation)] == [1, 0]
    loop.train_replay = NS(add_episode=lambda episode: calls.append(("stored", episode)))
    train.on_stores[0]("ep", 1)  # before the last step's update, as the official `add_step`
    assert calls.pop() == ("stored", "ep")
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

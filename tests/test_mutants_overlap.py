"""Tests for mutants of overlap.py that survived tools/parity/mutation.sh (docs/parity.md,
"training loop: loop, training, overlap"): the collector of `--overlap` (issue 11): its
schedule, blocks, errors, the env thread and the CUDA stream wiring (stand-ins for
`torch.cuda`). Each method is called on stand-ins that record what they are asked; expected
values are written out by hand from the spec and the official `train.py`. No training run."""

from __future__ import annotations

import contextlib
import threading
import types

import numpy as np
import pytest
import torch

from dreamerv2_torch import overlap, presets
from dreamerv2_torch.loop import Every

NS = types.SimpleNamespace


def _config(**overrides):
    return presets.resolve(["debug"], {"task": "dummy_discrete", "logdir": "", **overrides})




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
    loop.train_replay = NS(add_episode=lambda episode: seen.append(("store", episode)))
    collector._replay([("act",), ("store", "ep"), ("step", "t1", 0), ("episode", "ep"),
                       ("step", "t2", 1)])
    assert seen == [("store", "ep"), ("step", "t1", 0, 12), ("train", "ep"),
                    ("step", "t2", 1, 12)]


class _BlockDriver:
    """A train driver whose call plays one episode's last step through its callbacks."""

    def __init__(self, fail=False):
        self.on_steps, self.on_episodes, self.on_safe_points = ["steps"], ["episodes"], ["safe"]
        self.on_stores = ["stores"]
        self.should_stop, self.fail, self.seen = "stop", fail, []

    def __call__(self, policy, steps=0, episodes=0):
        self.seen.append((steps, self.on_safe_points, self.should_stop()))
        policy("obs", "policy state")
        self.on_stores[0]("ep", 0)
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
    assert collector._play(7) == [("act",), ("store", "ep"), ("step", "t1", 0), ("episode", "ep")]
    assert driver.seen == [(7, [], False)]  # no checkpoint inside a block; stops by `halt`
    assert acted == [("obs", "policy state", "train", {"actor": "copy"}, collector.generator)]
    restored = (driver.on_stores, driver.on_steps, driver.on_episodes, driver.on_safe_points,
                driver.should_stop)
    assert restored == (["stores"], ["steps"], ["episodes"], ["safe"], "stop")
    loop.train_driver = driver = _BlockDriver(fail=True)
    with pytest.raises(RuntimeError, match="emulator broke"):
        collector._play(3)
    assert driver.on_steps == ["steps"] and driver.on_stores == ["stores"]
    assert driver.should_stop == "stop"
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

"""Tests written for `prefetch.py` mutants that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "env stepping: driver, parallel, prefetch"): how far ahead the thread draws
(the documented lag: a batch is drawn at most `depth` + 1 = 3 updates before it is used), the
resume point before the first batch, the `auto` switch on CUDA, the batch on the asked device
without `log_*` keys, the thread's name and daemon flag, `close` with a lingering thread or a
source without `close`, and the CUDA path (pinned, non-blocking copies on a side stream, the
consumer's stream waiting on the copy's event) with stand-ins for `torch.cuda` (no GPU here)."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace as NS

import numpy as np
import torch
from thread_support import Lingering, assert_closes_promptly

from dreamerv2_torch import prefetch
from dreamerv2_torch.prefetch import DevicePrefetch, device_batches


class Counting:
    """An endless source of small batches that counts how many were drawn; `state_dict` (the
    replay's sampling state) is the number drawn so far."""

    def __init__(self):
        self.drawn = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.drawn += 1
        return {"x": np.full(2, self.drawn, np.float32)}

    def state_dict(self):
        return {"drawn": self.drawn}


def settled_count(source: Counting, expected: int) -> int:
    """How many batches the thread has drawn once it waits for room: at least `expected` (up to
    5 s of waiting for them), and whatever more it draws in the next 0.1 s."""
    deadline = time.monotonic() + 5
    while source.drawn < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    return source.drawn


def test_the_thread_draws_at_most_depth_plus_one_batches_ahead():
    """docs/parity.md, "The GPU path": a batch is drawn up to 3 updates before it is used
    (`depth` 2 queued, one more in the thread's hands waiting for room)."""
    cases = [(lambda s: DevicePrefetch(s, torch.device("cpu")), 3),
             (lambda s: device_batches(s, torch.device("cpu"), "on"), 3),
             (lambda s: DevicePrefetch(s, torch.device("cpu"), depth=1), 2),
             (lambda s: DevicePrefetch(s, torch.device("cpu"), depth=0), 2)]  # at least one slot
    for build, ahead in cases:
        source = Counting()
        batches = build(source)
        try:
            assert settled_count(source, ahead) == ahead
            assert next(batches)["x"].tolist() == [1.0, 1.0]
            assert settled_count(source, ahead + 1) == ahead + 1  # one taken, one more drawn
        finally:
            batches.close()


def test_resume_state_before_the_first_batch_is_the_replays_state_at_the_start():
    """Nothing handed out yet: a checkpoint must store the state before any draw, not None."""
    source = Counting()
    batches = DevicePrefetch(source, torch.device("cpu"), replay=source)
    try:
        assert batches.resume_state() == {"drawn": 0}
        settled_count(source, 3)
        assert batches.resume_state() == {"drawn": 0}  # the thread's draws do not count
        next(batches)
        assert batches.resume_state() == {"drawn": 1}
    finally:
        batches.close()


def test_auto_on_cuda_builds_the_prefetcher_with_every_argument(monkeypatch):
    monkeypatch.setattr(prefetch, "DevicePrefetch", lambda *args: ("prefetch", args))
    source, replay, cuda = iter([]), object(), torch.device("cuda")
    assert device_batches(source, cuda, "auto", replay, 5) == ("prefetch",
                                                               (source, cuda, replay, 5))
    assert device_batches(source, cuda) == ("prefetch", (source, cuda, None, 2))
    assert device_batches(source, torch.device("cpu")) is source  # `auto` is the default


def test_batches_land_on_the_asked_device_without_log_keys():
    """`on` forces the thread on any device (here `meta`); `log_*` entries are never modelled,
    whatever their dtype, and object arrays cannot become tensors."""
    batch = {"image": np.zeros((2, 3), np.uint8), "reward": np.ones(2, np.float32),
             "log_score": np.ones(2, np.float32), "log_name": np.array(["a", "b"], object),
             "names": np.array(["a", "b"], object)}
    batches = DevicePrefetch(iter([batch]), torch.device("meta"))
    try:
        out = next(batches)
        assert set(out) == {"image", "reward"}
        assert all(v.device.type == "meta" for v in out.values())
        assert out["image"].dtype == torch.uint8 and out["reward"].dtype == torch.float32
    finally:
        batches.close()


def test_the_thread_is_a_named_daemon():
    """A daemon never keeps the interpreter alive at exit; the name makes it findable."""
    batches = DevicePrefetch(Counting(), torch.device("cpu"))
    try:
        assert batches.thread.name == "device-prefetch" and batches.thread.daemon
        assert batches.thread in threading.enumerate()
    finally:
        batches.close()
    assert not batches.thread.is_alive()


def test_close_polls_a_thread_that_puts_nothing_more_and_a_source_without_close(monkeypatch):
    """The thread can still be alive after its last put (between the put and its exit): close
    must poll the queue briefly, neither block on it, nor fail on `queue.Empty`, nor wait long; a
    source without `close` (a plain iterator) is fine."""
    monkeypatch.setattr(prefetch.threading, "Thread", Lingering)
    batches = DevicePrefetch(iter([{"x": np.zeros(1)}]), torch.device("cpu"))
    next(batches)
    assert_closes_promptly(batches.close)


def test_on_cuda_copies_are_pinned_non_blocking_on_a_side_stream(monkeypatch):
    """The thread copies each batch into pinned memory and sends it with `non_blocking=True`
    inside its own stream, then records an event on that stream; the consumer's current stream
    waits on the event and each tensor is recorded as in use on that stream."""
    log = []

    class Stream:
        def __init__(self, device):
            log.append(("stream", device))

    class Current:
        def wait_event(self, event):
            log.append(("wait", event))

    current = Current()

    class Event:
        def record(self, stream):
            log.append(("record", stream))

    @contextlib.contextmanager
    def stream(s):
        log.append(("enter", s))
        yield
        log.append(("exit", s))

    class Tensor:
        def __init__(self, name, where="pageable"):
            self.name, self.where = name, where

        def pin_memory(self):
            return Tensor(self.name, "pinned")

        def to(self, device, non_blocking=False):
            log.append(("to", self.name, self.where, device, non_blocking))
            return Tensor(self.name, device)

        def record_stream(self, s):
            log.append(("in use", self.name, s))

    def current_stream(device):
        log.append(("current", device))
        return current

    cuda = NS(Stream=Stream, Event=Event, stream=stream, current_stream=current_stream)
    monkeypatch.setattr(prefetch, "torch", NS(
        device=torch.device, cuda=cuda, from_numpy=lambda a: Tensor(str(a.dtype))))
    device = torch.device("cuda", 1)
    batches = DevicePrefetch(iter([{"a": np.zeros(2, np.float32), "b": np.zeros(2, np.uint8)}]),
                             device)
    batches.thread.join(timeout=5)  # one batch, then the end of the source: the thread ends
    assert not batches.thread.is_alive()
    side = batches.stream
    assert isinstance(side, Stream) and batches.cuda
    assert log == [("stream", device), ("enter", side),
                   ("to", "float32", "pinned", device, True),
                   ("to", "uint8", "pinned", device, True),
                   ("record", side), ("exit", side)]
    log.clear()
    out = next(batches)
    assert [(v.name, v.where) for v in out.values()] == [("float32", device), ("uint8", device)]
    event = log[1][1]
    assert isinstance(event, Event)
    assert log == [("current", device), ("wait", event), ("in use", "float32", current),
                   ("in use", "uint8", current)]
    batches.close()

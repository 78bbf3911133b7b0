"""Tests written for `parallel.py` mutants that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "env stepping: driver, parallel, prefetch"), part 1: the worker loop
`_worker`, called in this process with a scripted connection (a spawned worker process neither
reports to mutmut which functions the tests reach nor dies quickly when a mutant hangs), and
`_portable`, `restart_seed`. Part 2, the parent side, is tests/test_mutants_parallel.py."""

from __future__ import annotations

import pickle
import signal

import numpy as np
import pytest
from parallel_support import BUILT, Recorder, failing_recorder

from dreamerv2_torch import parallel
from dreamerv2_torch.parallel import _portable, _worker, restart_seed


class Conn:
    """One end of a pipe, scripted: `recv` hands out `requests` in order (an exception in the
    list is raised), `send` records; `broken` makes `send` raise it for the given status."""

    def __init__(self, requests=(), broken=None):
        self.requests, self.sent, self.broken = list(requests), [], broken or {}

    def recv(self):
        item = self.requests.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def send(self, message):
        error = self.broken.get(message[0])
        if error is not None:
            raise error
        self.sent.append(message)


@pytest.fixture
def handlers(monkeypatch):
    """The worker's signal handlers, recorded instead of installed in this process."""
    calls = []
    monkeypatch.setattr(parallel.signal, "signal", lambda *args: calls.append(args))
    BUILT.clear()
    return calls


def run_worker(conn, factory=Recorder, seed=7, mode="train") -> Recorder | None:
    _worker(conn, pickle.dumps(factory), seed, mode)
    return BUILT[-1] if BUILT else None


# ---- the worker loop ----

def test_worker_ignores_sigint_builds_its_env_and_serves_requests_until_close(handlers):
    action = {"action": np.array([0.5, -0.5, 0.0], np.float32)}
    conn = Conn([("reset", None), ("step", action), ("get_state", None),
                 ("set_state", {"calls": 9}), ("close", None), ("reset", None)])
    env = run_worker(conn, seed=7, mode="eval")
    assert handlers == [(signal.SIGINT, signal.SIG_IGN)]
    assert (env.seed, env.mode) == (7, "eval")
    status = [m[0] for m in conn.sent]
    assert status == ["ready", "ok", "ok", "ok", "ok", "ok"]
    assert conn.sent[0][1] == (Recorder.obs_space, Recorder.act_space)
    assert conn.sent[1][1]["is_first"] and conn.sent[1][1]["vector"].tolist() == [7.0, 7.0]
    assert conn.sent[2][1]["vector"].tolist() == [0.5, -0.5]
    assert conn.sent[3][1] == {"calls": 2}  # get_state
    assert conn.sent[4][1] is None and conn.sent[5][1] is None  # set_state, close
    assert env.calls == ["reset", ("step", action), ("set_state", {"calls": 9}), "close"]
    assert conn.requests == [("reset", None)]  # nothing is read after close


def test_a_request_other_than_step_and_the_state_ones_is_a_reset(handlers):
    conn = Conn([("anything", None), ("close", None)])
    env = run_worker(conn)
    assert env.calls == ["reset", "close"]


@pytest.mark.parametrize("gone", [EOFError(), OSError("closed")])
def test_worker_ends_quietly_when_the_parent_is_gone(handlers, gone):
    conn = Conn([("reset", None), gone, ("reset", None)])
    env = run_worker(conn)
    assert [m[0] for m in conn.sent] == ["ready", "ok"]
    assert env.calls == ["reset"] and conn.requests == [("reset", None)]


def test_a_build_error_goes_back_with_its_type_and_the_worker_ends(handlers):
    import functools

    conn = Conn([("reset", None)])
    run_worker(conn, functools.partial(failing_recorder, fail="build"), seed=3)
    ((status, error),) = conn.sent
    assert status == "build_error" and isinstance(error, ValueError)
    assert str(error) == "cannot build env 3"
    assert conn.requests == [("reset", None)]  # no request is served


def test_an_env_error_goes_back_with_its_type_and_the_worker_ends(handlers):
    import functools

    conn = Conn([("step", {"action": np.zeros(3)}), ("reset", None)])
    run_worker(conn, functools.partial(failing_recorder, fail="step"))
    assert [m[0] for m in conn.sent] == ["ready", "error"]
    error = conn.sent[1][1]
    assert isinstance(error, KeyError) and error.args == ("broken step",)
    assert conn.requests == [("reset", None)]


@pytest.mark.parametrize("broken", [OSError("pipe closed"), pickle.PicklingError("no")])
def test_an_error_that_cannot_be_sent_ends_the_worker_quietly(handlers, broken):
    import functools

    conn = Conn([("step", {"action": np.zeros(3)})], broken={"error": broken})
    run_worker(conn, functools.partial(failing_recorder, fail="step"))  # raises nothing
    assert [m[0] for m in conn.sent] == ["ready"]


class Unpicklable(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.callback = lambda: None  # lambdas do not pickle


def raised(error: BaseException) -> BaseException:
    """`error` as an except clause holds it: raised here, so it carries a traceback."""
    try:
        raise error
    except BaseException as caught:
        return caught


def test_portable_keeps_a_picklable_error_and_notes_the_worker_traceback():
    error = raised(KeyError("lost key"))
    out = _portable(error)
    assert out is error
    (note,) = out.__notes__
    assert note.startswith("In the env worker process:\nTraceback (most recent call last):\n"
                           '  File "')
    assert "KeyError: 'lost key'" in note
    again = pickle.loads(pickle.dumps(out))  # what the parent receives
    assert type(again) is KeyError


def test_portable_turns_an_unpicklable_error_into_a_runtime_error_with_its_traceback():
    out = _portable(raised(Unpicklable("odd env")))
    assert type(out) is RuntimeError
    (text,) = out.args
    lines = text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith('  File "') and __file__ in lines[1]
    assert lines[-1].endswith("Unpicklable: odd env")
    pickle.loads(pickle.dumps(out))


def test_restart_seed_mixes_the_seed_modulo_2_to_the_63():
    """Seeds are taken modulo 2**63 (SeedSequence words must be non-negative)."""
    assert restart_seed(2**63 + 5, 1) == restart_seed(5, 1) != restart_seed(5, 2)
    assert restart_seed(5, 1) != restart_seed(7, 1) and restart_seed(5, 1) == restart_seed(5, 1)
    assert restart_seed(-1, 1) == restart_seed(2**63 - 1, 1)
    assert restart_seed(np.int64(9), 0) == 9 and type(restart_seed(np.int64(9), 0)) is int
    assert type(restart_seed(9, 1)) is int and 0 <= restart_seed(9, 1) < 2**32

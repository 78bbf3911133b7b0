"""Tests written for `parallel.py` mutants that survived tools/parity/mutation.sh (docs/parity.md,
"Mutation testing", "env stepping: driver, parallel, prefetch"), part 2 (part 1, the worker loop, is
tests/test_mutants_parallel_worker.py).

Everything runs in this process, so that mutmut's forked test runs see the code (a spawned worker
process neither reports which functions the tests reach nor dies quickly when a mutant hangs):
the worker loop `_worker` is called with a scripted connection, and `ParallelEnvs` is driven with
stand-in pipes and processes (`FakeContext`) whose answers each test scripts. The behaviour checked
is the module docstring's: one request and one answer per env, every request sent before any
answer is read, a broken worker restarted with a fresh seed and its reset observation returned,
build errors raised, the parent's view of a dead, hung or raising worker."""

from __future__ import annotations

import pickle
import sys
import warnings

import numpy as np
import pytest
from parallel_support import Recorder

from dreamerv2_torch import parallel
from dreamerv2_torch.parallel import ParallelEnvs, WorkerError, _worker, restart_seed

# ---- the parent side, with stand-in pipes and processes ----

class Pipe:
    """The parent's end of a worker's pipe. Answers each request after its `behaviour`:
    "ok" (("ok", what it was asked, by which seed)), "raise" (the env's KeyError), "dead" (EOF:
    the process is gone, exit code -9), "hang" (never answers), "send" (sending fails)."""

    def __init__(self, ctx):
        self.ctx, self.answers, self.closed, self.seed = ctx, [], False, None
        self.behaviour = "ok"

    def poll(self, timeout):
        self.ctx.log.append(("poll", self.index, timeout))
        return self.behaviour != "hang" and bool(self.answers)

    def recv(self):
        self.ctx.log.append(("recv", self.index))
        if not self.answers:
            raise AssertionError("recv without an answer (a hung worker)")
        answer = self.answers.pop(0)
        if self.behaviour == "hang after ready":
            self.behaviour = "hang"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def send(self, message):
        self.ctx.log.append(("send", self.index, message[0]))
        if self.behaviour == "send":
            raise OSError("broken pipe")
        command, arg = message
        if self.behaviour == "ok":
            self.answers.append(("ok", None if command == "close" else (command, arg, self.seed)))
        elif self.behaviour == "raise":
            self.answers.append(("error", KeyError("boom")))
        elif self.behaviour == "dead":
            self.proc.exitcode = -9
            self.answers.append(EOFError())

    def close(self):
        self.ctx.log.append(("close", self.index))
        self.closed = True


class Child:
    def __init__(self, ctx):
        self.ctx, self.closed = ctx, False

    def close(self):
        self.closed = True


class Process:
    def __init__(self, ctx, target, args, daemon, name):
        self.ctx, self.target, self.args, self.daemon, self.name = ctx, target, args, daemon, name
        self.alive, self.exitcode, self.lingers = False, None, False

    def start(self):
        self.ctx.log.append(("start", self.name))
        self.alive = True

    def join(self, timeout):
        self.ctx.log.append(("join", self.name, timeout))
        if not self.lingers:
            self.alive = False

    def is_alive(self):
        return self.alive

    def kill(self):
        self.ctx.log.append(("kill", self.name))
        self.alive = False


class FakeContext:
    """`mp.get_context(...)` stand-in. `plan[(i, n)]` is the behaviour of env i's worker in its
    n-th launch (0 = the first): a Pipe behaviour, or "build_error" / "build_dead" /
    "build_hang" while building, or "linger" (alive until killed)."""

    def __init__(self, plan=None):
        self.plan, self.log, self.launches, self.pipes, self.procs = plan or {}, [], {}, [], []

    def Pipe(self):  # noqa: N802 - multiprocessing's name
        self.pending = Pipe(self), Child(self)
        return self.pending

    def Process(self, target, args, daemon, name):  # noqa: N802
        parent, child = self.pending
        index = int(name.rsplit("-", 1)[1])
        launch = self.launches.get(index, 0)
        self.launches[index] = launch + 1
        proc = Process(self, target, args, daemon, name)
        parent.index, parent.proc, parent.child, parent.seed = index, proc, child, args[2]
        behaviour = self.plan.get((index, launch), "ok")
        if behaviour == "build_error":
            parent.answers.append(("build_error", ValueError(f"cannot build env {index}")))
        elif behaviour == "build_dead":
            parent.answers.append(EOFError())
        elif behaviour != "build_hang":
            parent.answers.append(("ready", (Recorder.obs_space, {"action": index})))
        if behaviour == "linger":
            proc.lingers = True
        parent.behaviour = {"build_hang": "hang", "hang": "hang after ready"}.get(behaviour,
                                                                                  behaviour)
        if parent.behaviour in ("build_error", "build_dead", "linger"):
            parent.behaviour = "ok"
        self.pipes.append(parent)
        self.procs.append(proc)
        return proc


def parallel_envs(monkeypatch, seeds=(10, 20), plan=None, **kwargs) -> tuple[ParallelEnvs,
                                                                           FakeContext]:
    ctx = FakeContext(plan)
    asked = []
    monkeypatch.setattr(parallel.mp, "get_context", lambda name: asked.append(name) or ctx)
    envs = ParallelEnvs(Recorder, list(seeds), "eval", **kwargs)
    ctx.asked = asked
    return envs, ctx


def test_workers_are_all_started_before_any_is_waited_for(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10, 20, 30))
    assert ctx.asked == ["spawn"] and envs.num_envs == 3
    assert ctx.log == [("start", "dreamerv2-env-0"), ("start", "dreamerv2-env-1"),
                       ("start", "dreamerv2-env-2"), ("poll", 0, 600.0), ("recv", 0),
                       ("poll", 1, 600.0), ("recv", 1), ("poll", 2, 600.0), ("recv", 2)]
    for i, (proc, pipe) in enumerate(zip(ctx.procs, ctx.pipes)):
        child, payload, seed, mode = proc.args
        assert proc.target is _worker and proc.daemon and proc.name == f"dreamerv2-env-{i}"
        assert pickle.loads(payload) is Recorder and (seed, mode) == (10 * (i + 1), "eval")
        assert child is pipe.child and child.closed  # only the worker holds it now
    assert envs.obs_space == Recorder.obs_space and envs.act_space == {"action": 0}  # env 0's
    assert envs._procs == ctx.procs and envs._conns == ctx.pipes


def test_seeds_are_needed_and_the_context_is_asked_for(monkeypatch):
    with pytest.raises(ValueError, match="^ParallelEnvs needs at least one seed$"):
        ParallelEnvs(Recorder, [])
    ctx = FakeContext()
    asked = []
    monkeypatch.setattr(parallel.mp, "get_context", lambda name: asked.append(name) or ctx)
    envs = ParallelEnvs(Recorder, [np.int64(4)], context="forkserver")
    assert asked == ["forkserver"] and ctx.procs[0].args[2:] == (4, "train")  # the default mode
    assert type(envs._seeds[0]) is int


def test_reset_and_step_send_every_request_first_then_read_the_answers(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10, 20, 30))
    ctx.log.clear()
    assert envs.reset([2, 0]) == [("reset", None, 30), ("reset", None, 10)]
    assert ctx.log == [("send", 2, "reset"), ("send", 0, "reset"), ("poll", 2, 600.0),
                       ("recv", 2), ("poll", 0, 600.0), ("recv", 0)]
    ctx.log.clear()
    assert envs.step(["a", "b", "c"]) == [("step", "a", 10), ("step", "b", 20),
                                          ("step", "c", 30)]
    assert [entry[0] for entry in ctx.log] == ["send"] * 3 + ["poll", "recv"] * 3
    with pytest.raises(ValueError, match=r"^expected 3 actions, got 2$"):
        envs.step(["a", "b"])


def test_without_timeouts_nothing_polls(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), timeout=None, build_timeout=None)
    assert envs.reset([0]) == [("reset", None, 10)]
    assert not [entry for entry in ctx.log if entry[0] == "poll"]
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), timeout=2.5, build_timeout=7.0)
    envs.reset([0])
    assert [entry[2] for entry in ctx.log if entry[0] == "poll"] == [7.0, 2.5]


def test_a_build_error_is_raised_with_its_type_and_every_worker_is_stopped(monkeypatch):
    ctx = FakeContext({(1, 0): "build_error"})
    monkeypatch.setattr(parallel.mp, "get_context", lambda name: ctx)
    with pytest.raises(ValueError, match="^cannot build env 1$"):
        ParallelEnvs(Recorder, [10, 20])
    assert [entry for entry in ctx.log if entry[0] == "send"] == [("send", 0, "close"),
                                                                   ("send", 1, "close")]
    assert all(pipe.closed for pipe in ctx.pipes)
    assert all(not proc.alive for proc in ctx.procs)


def test_a_worker_that_dies_or_hangs_while_building_is_a_worker_error(monkeypatch):
    ctx = FakeContext({(0, 0): "build_dead"})
    monkeypatch.setattr(parallel.mp, "get_context", lambda name: ctx)
    with pytest.raises(WorkerError, match=r"^env 0's worker died while building the env "
                                          r"\(EOFError\(\)\)\. Workers are started with 'spawn', "
                                          r"which re-imports the main script: a script that "
                                          r"starts training must do so under `if __name__ == "
                                          r"'__main__':`$") as info:
        ParallelEnvs(Recorder, [10])
    assert info.value.__cause__ is None and info.value.__suppress_context__
    ctx = FakeContext({(0, 0): "build_hang"})
    monkeypatch.setattr(parallel.mp, "get_context", lambda name: ctx)
    with pytest.raises(WorkerError, match=r"^env 0 was not built within 1\.5 s$"):
        ParallelEnvs(Recorder, [10], build_timeout=1.5)


@pytest.mark.parametrize(("behaviour", "summary"), [
    ("raise", "KeyError: 'boom'"),
    ("dead", "WorkerError: the worker process died (exit code -9): EOFError()"),
    ("hang", "WorkerError: no answer within 2.5 s"),
    ("send", "WorkerError: could not send to the worker: OSError('broken pipe')")])
def test_a_failed_worker_is_restarted_with_a_fresh_seed_and_answers_with_a_reset(
        monkeypatch, behaviour, summary):
    envs, ctx = parallel_envs(monkeypatch, plan={(1, 0): behaviour}, timeout=2.5)
    old_proc, old_pipe = ctx.procs[1], ctx.pipes[1]
    ctx.log.clear()
    seed = restart_seed(20, 1)
    with pytest.warns(RuntimeWarning) as caught:
        results = envs.step(["a", "b"])
    (warning,) = caught
    assert str(warning.message) == (
        f"env 1 failed during step ({summary}); restarting its worker (restart 1, seed {seed}); "
        "its current episode is dropped")
    assert results == [("step", "a", 10), ("reset", None, seed)]
    new_proc, new_pipe = ctx.procs[2], ctx.pipes[2]
    assert new_proc.args[2] == seed and new_proc.name == "dreamerv2-env-1"
    assert old_pipe.closed and not old_proc.alive
    assert ("join", "dreamerv2-env-1", 0.5) in ctx.log
    assert envs._procs[1] is new_proc and envs._conns[1] is new_pipe
    assert envs._restarts == [0, 1] and envs._failures == [0, 1]
    assert envs.step(["c", "d"]) == [("step", "c", 10), ("step", "d", seed)]
    assert envs._failures == [0, 0]  # a success starts the count again


def test_a_worker_that_does_not_stop_is_killed(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, plan={(0, 0): "linger"}, seeds=(10,))
    ctx.pipes[0].behaviour = "raise"
    ctx.log.clear()
    with pytest.warns(RuntimeWarning):
        envs.reset([0])
    assert ctx.log[3:7] == [("join", "dreamerv2-env-0", 0.5), ("kill", "dreamerv2-env-0"),
                            ("join", "dreamerv2-env-0", 0.5), ("close", 0)]


def test_consecutive_failures_give_up_after_max_failures(monkeypatch):
    plan = {(0, n): "raise" for n in range(10)}
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), plan=plan, max_failures=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(WorkerError) as info:
            envs.reset([0])
    # The reset fails, then the restarted workers' resets fail too ("restart"), until the
    # third failure in a row.
    assert [str(w.message).split(" (")[0] for w in caught] == [
        "env 0 failed during reset", "env 0 failed during restart"]
    assert str(info.value) == "env 0 failed 3 times in a row; giving up. Last error: 'boom'"
    assert isinstance(info.value.__cause__, KeyError)
    assert ctx.launches == {0: 3} and envs._restarts == [2]


def test_the_default_is_three_failures_in_a_row(monkeypatch):
    plan = {(0, n): "raise" for n in range(10)}
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), plan=plan)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        with pytest.raises(WorkerError, match="failed 4 times in a row"):
            envs.reset([0])
    assert ctx.launches == {0: 4}


def test_a_restart_whose_build_fails_is_retried(monkeypatch):
    plan = {(0, 0): "raise", (0, 1): "build_error"}
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), plan=plan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert envs.reset([0]) == [("reset", None, restart_seed(10, 2))]
    assert [str(w.message).rsplit("; ", 1)[0] for w in caught] == [
        f"env 0 failed during reset (KeyError: 'boom'); restarting its worker (restart 1, seed "
        f"{restart_seed(10, 1)})",
        f"env 0 failed during restart (ValueError: cannot build env 0); restarting its worker "
        f"(restart 2, seed {restart_seed(10, 2)})"]


def test_a_ctrl_c_during_a_restart_is_not_retried(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,), plan={(0, 0): "raise"})

    def interrupted(i):
        raise KeyboardInterrupt

    monkeypatch.setattr(envs, "_launch", interrupted)
    with pytest.warns(RuntimeWarning), pytest.raises(KeyboardInterrupt):
        envs.reset([0])


def test_an_error_without_text_is_summarised_by_its_type(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,))
    ctx.pipes[0].answers.append(("error", StopIteration()))
    ctx.pipes[0].behaviour = "none"  # the scripted error is the answer
    with pytest.warns(RuntimeWarning, match=r"failed during step \(StopIteration: \);"):
        envs.step(["a"])


def test_get_and_set_states(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10, 20, 30))
    ctx.pipes[1].behaviour = "dead"
    ctx.log.clear()
    assert envs.get_states() == [("get_state", None, 10), None, ("get_state", None, 30)]
    ctx.pipes[1].behaviour = "ok"
    ctx.log.clear()
    envs.set_states([{"s": 0}, None, {"s": 2}])
    assert ctx.log == [("send", 0, "set_state"), ("send", 2, "set_state"), ("poll", 0, 600.0),
                       ("recv", 0), ("poll", 2, 600.0), ("recv", 2)]
    ctx.pipes[2].behaviour = "raise"
    with pytest.raises(KeyError):
        envs.set_states([None, None, {"s": 2}])


def test_close_asks_every_worker_to_close_waits_and_is_idempotent(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10, 20, 30))
    ctx.procs[1].lingers = True
    ctx.pipes[2].behaviour = "send"  # a broken pipe is fine
    envs._conns[0] = None  # a worker that could not be restarted: nothing to send to
    ctx.log.clear()
    envs.close()
    assert ctx.log == [("send", 1, "close"), ("send", 2, "close"),
                       ("join", "dreamerv2-env-0", 5.0), ("join", "dreamerv2-env-1", 5.0),
                       ("kill", "dreamerv2-env-1"), ("join", "dreamerv2-env-1", 5.0),
                       ("close", 1), ("join", "dreamerv2-env-2", 5.0), ("close", 2)]
    assert envs._procs == [None] * 3 and envs._conns == [None] * 3
    ctx.log.clear()
    envs.close()
    del envs
    assert ctx.log == []


def test_close_ignores_a_closed_pipe(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,))

    def closed(message):
        raise ValueError("handle is closed")

    ctx.pipes[0].send = closed
    envs.close()
    assert envs._conns == [None]


def test_garbage_collection_closes_and_swallows_errors(monkeypatch):
    envs, ctx = parallel_envs(monkeypatch, seeds=(10,))
    envs.__del__()
    assert ctx.pipes[0].closed
    broken = object.__new__(ParallelEnvs)  # never initialised: close fails
    broken.__del__()


def test_an_unpicklable_factory_goes_through_cloudpickle_or_is_a_clear_error(monkeypatch):
    offset = 5

    def closure(seed, mode):  # a local function: plain pickle refuses it
        return Recorder(seed + offset, mode)

    payload = parallel._dumps(closure)
    with pytest.raises(Exception):  # noqa: B017, PT011 - pickle's own error type varies
        pickle.dumps(closure)
    assert pickle.loads(payload)(1, "train").seed == 6  # cloudpickle's payload loads with pickle
    monkeypatch.setitem(sys.modules, "cloudpickle", None)  # `import cloudpickle` now fails
    with pytest.raises(ValueError, match=r"^envs > 1 builds each env in a subprocess, so the env "
                                         r"factory must be picklable \(a module-level function "
                                         r"or a functools\.partial\), got <function .*closure.*>: "
                                         ) as info:
        parallel._dumps(closure)
    assert info.value.__cause__ is None and info.value.__suppress_context__

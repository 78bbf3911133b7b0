"""`envs: N` training environments in N worker processes, stepped concurrently (spec §5.5).

Official counterpart: the `Async` wrapper of ``dreamerv2/common/envs.py`` (threads or spawned
processes; its ``envs_parallel`` branch in ``train.py`` crashes, spec §9 item 22). Here
`ParallelEnvs` implements `driver.BatchEnv`: one process per env, one pipe each; `step` sends every
action first and then collects the results, so the envs step at the same time while the driver
still makes one batched policy call per step.

* Workers are started with the ``spawn`` method (safe with torch and threads in the parent) and
  build their env from a picklable factory ``(seed, mode) -> Env`` (a module-level function or a
  ``functools.partial``; with cloudpickle installed, closures work too).
* Fault tolerance: if a worker dies, raises or hangs (``timeout``) during ``step`` or ``reset``,
  a warning names the env index and the error, a new worker is started with a fresh seed derived
  from (seed, restart count) so it does not replay the same episodes, and its reset observation
  (``is_first=True``) is returned in place of the result. The driver then drops the broken episode
  and starts a new one there. Errors while *building* an env are raised, not retried: they are
  configuration errors.
* Workers ignore SIGINT, so Ctrl-C reaches only the training loop, which stops cleanly.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .envs.base import Env, Obs, Space, env_state

EnvFactory = Callable[[int, str], Env]  # (seed, mode) -> env


def restart_seed(seed: int, restarts: int) -> int:
    """The seed of a worker's env after `restarts` restarts; the original seed for 0."""
    if restarts == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed) % 2**63, restarts]).generate_state(1)[0])


def _dumps(factory: EnvFactory) -> bytes:
    try:
        return pickle.dumps(factory)
    except Exception as error:
        try:
            import cloudpickle
        except ImportError:
            raise ValueError(
                f"envs > 1 builds each env in a subprocess, so the env factory must be picklable "
                f"(a module-level function or a functools.partial), got {factory!r}: {error}"
            ) from None
        return cloudpickle.dumps(factory)


def _worker(conn, payload: bytes, seed: int, mode: str) -> None:
    """Build the env, report its spaces, then serve (command, argument) requests until close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        env = pickle.loads(payload)(seed, mode)
        conn.send(("ready", (env.obs_space, env.act_space)))
    except BaseException as error:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("build_error", _portable(error)))
        return
    try:
        while True:
            try:
                command, arg = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if command == "close":
                env.close()
                conn.send(("ok", None))
                return
            if command == "get_state":
                result = env_state(env)
            elif command == "set_state":
                result = env.set_state(arg)
            else:
                result = env.step(arg) if command == "step" else env.reset()
            conn.send(("ok", result))
    except BaseException as error:  # noqa: BLE001
        try:
            conn.send(("error", _portable(error)))
        except (OSError, pickle.PicklingError):
            pass


def _portable(error: BaseException) -> BaseException:
    """The exception itself if it pickles (so its type survives), else a RuntimeError copy.

    The worker's traceback travels as a note (shown by Python >= 3.11 under the parent's one).
    """
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(text)
    if hasattr(error, "add_note"):
        error.add_note(f"In the env worker process:\n{text}")
    return error


class WorkerError(RuntimeError):
    """A worker died, raised, or did not answer in time."""


class ParallelEnvs:
    """N environments, each in its own process (see the module docstring)."""

    def __init__(self, factory: EnvFactory, seeds: Sequence[int], mode: str = "train", *,
                 timeout: float | None = 600.0, build_timeout: float | None = 600.0,
                 max_failures: int = 3, context: str = "spawn"):
        """`timeout`: seconds a step or reset may take before the worker counts as hung;
        `build_timeout`: the same for building the env; `max_failures`: consecutive failures of
        one env after which the error is raised instead of restarting again."""
        if not seeds:
            raise ValueError("ParallelEnvs needs at least one seed")
        self.num_envs = len(seeds)
        self._payload, self._mode = _dumps(factory), mode
        self._seeds, self._restarts = [int(s) for s in seeds], [0] * len(seeds)
        self._failures = [0] * len(seeds)  # consecutive failures; a success resets it
        self._timeout, self._build_timeout = timeout, build_timeout
        self._max_failures = max_failures
        self._ctx = mp.get_context(context)
        self._procs: list[Any] = [None] * self.num_envs
        self._conns: list[Any] = [None] * self.num_envs
        self._closed = False
        for i in range(self.num_envs):  # start all first: the envs are built concurrently
            self._launch(i)
        try:
            spaces = [self._ready(i) for i in range(self.num_envs)]
        except BaseException:
            self.close()
            raise
        self.obs_space: dict[str, Space] = spaces[0][0]
        self.act_space: dict[str, Space] = spaces[0][1]

    # ---- BatchEnv ----
    def reset(self, indices: Sequence[int]) -> list[Obs]:
        return self._call([("reset", i, None) for i in indices])

    def step(self, actions: Sequence[dict[str, np.ndarray]]) -> list[Obs]:
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        return self._call([("step", i, a) for i, a in enumerate(actions)])

    def get_states(self) -> list[dict | None]:
        """Each env's `get_state()` (None where it has none or its worker is broken)."""
        states: list[dict | None] = []
        for i in range(self.num_envs):
            try:  # a broken worker has no state to save; step/reset restart it as usual
                self._conns[i].send(("get_state", None))
                states.append(self._receive(i))
            except Exception:  # noqa: BLE001
                states.append(None)
        return states

    def set_states(self, states: Sequence[dict | None]) -> None:
        todo = [i for i, state in enumerate(states) if state is not None]
        for i in todo:
            self._conns[i].send(("set_state", states[i]))
        for i in todo:
            self._receive(i)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (OSError, AttributeError, ValueError):
                pass
        for i in range(self.num_envs):
            self._stop(i, wait=5.0)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- internals ----
    def _call(self, requests: list[tuple[str, int, Any]]) -> list[Obs]:
        sent = {}
        for command, i, arg in requests:  # send everything first: the workers run in parallel
            try:
                self._conns[i].send((command, arg))
                sent[i] = None
            except (OSError, ValueError) as error:
                sent[i] = error
        results = []
        for command, i, _ in requests:
            try:
                if sent[i] is not None:
                    raise WorkerError(f"could not send to the worker: {sent[i]!r}")
                results.append(self._receive(i))
                self._failures[i] = 0
            except Exception as error:  # WorkerError or the env's own exception
                results.append(self._recover(i, command, error))
        return results

    def _receive(self, i: int) -> Obs:
        conn = self._conns[i]
        try:
            if self._timeout is not None and not conn.poll(self._timeout):
                raise WorkerError(f"no answer within {self._timeout:g} s")
            status, value = conn.recv()
        except (EOFError, OSError) as error:
            code = self._procs[i].exitcode if self._procs[i] is not None else None
            raise WorkerError(f"the worker process died (exit code {code}): {error!r}") from None
        if status != "ok":
            raise value
        return value

    def _recover(self, i: int, command: str, error: BaseException) -> Obs:
        """Restart worker i until it gives a reset observation (or fail after max_failures)."""
        while True:
            self._failures[i] += 1
            summary = str(error).strip().splitlines()
            summary = f"{type(error).__name__}: {summary[0] if summary else ''}"
            if self._failures[i] > self._max_failures:
                raise WorkerError(
                    f"env {i} failed {self._failures[i]} times in a row; giving up. "
                    f"Last error: {error}") from error
            self._stop(i, wait=0.5)
            self._restarts[i] += 1
            seed = restart_seed(self._seeds[i], self._restarts[i])
            warnings.warn(
                f"env {i} failed during {command} ({summary}); restarting its worker "
                f"(restart {self._restarts[i]}, seed {seed}); its current episode is dropped",
                RuntimeWarning, stacklevel=2)
            try:
                self._launch(i)
                self._ready(i)
                self._conns[i].send(("reset", None))
                return self._receive(i)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as retry:
                error, command = retry, "restart"

    def _launch(self, i: int) -> None:
        parent, child = self._ctx.Pipe()
        seed = restart_seed(self._seeds[i], self._restarts[i])
        proc = self._ctx.Process(target=_worker, args=(child, self._payload, seed, self._mode),
                                 daemon=True, name=f"dreamerv2-env-{i}")
        proc.start()
        child.close()  # only the worker holds it now, so its death reads as EOF here
        self._procs[i], self._conns[i] = proc, parent

    def _ready(self, i: int) -> tuple[dict[str, Space], dict[str, Space]]:
        conn = self._conns[i]
        try:
            if self._build_timeout is not None and not conn.poll(self._build_timeout):
                raise WorkerError(f"env {i} was not built within {self._build_timeout:g} s")
            status, value = conn.recv()
        except (EOFError, OSError) as error:
            raise WorkerError(
                f"env {i}'s worker died while building the env ({error!r}). Workers are started "
                "with 'spawn', which re-imports the main script: a script that starts training "
                "must do so under `if __name__ == '__main__':`") from None
        if status == "build_error":
            raise value
        return value

    def _stop(self, i: int, wait: float) -> None:
        proc, conn = self._procs[i], self._conns[i]
        if proc is not None:
            proc.join(wait)
            if proc.is_alive():
                proc.kill()
                proc.join(wait)
        if conn is not None:
            conn.close()
        self._procs[i] = self._conns[i] = None

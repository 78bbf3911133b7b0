"""Ctrl-C while the `train` command builds its run (issue 9's "interrupted", exit code 130).

Until `training.StopRequested` takes SIGINT over, Python's default handler would raise
KeyboardInterrupt wherever the main thread happens to be: inside `import torch`, MuJoCo or ALE
setup, or a C++ extension calling back into Python. CI saw both ways that goes wrong: raised in
importlib's weakref callback, Python printed "Exception ignored ..." with a traceback, dropped it
and the run trained on; raised in a callback that torch's pybind11 code could not propagate, the
process died with "terminate called after throwing an instance of 'pybind11::error_already_set'"
(SIGABRT, exit code -6).

So `defer` (the first thing `cli.train_main` does) installs a handler that only notes a first
Ctrl-C; `raise_pending` raises it as KeyboardInterrupt at safe points (after parsing, and where
`StopRequested` starts, via `release`), where the command ends with "interrupted", exit 130. A
second Ctrl-C before then raises at once, wherever that is: the user asked twice. The Python API
(`dreamerv2_torch.train`) never calls `defer`: a library does not take over its caller's SIGINT.
The other commands that load torch (eval, sweep, scores, plot) import it under `deferred()`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

_pending = False
_previous = None  # the SIGINT handler `defer` replaced; None while not deferring


def _note(signum, frame) -> None:
    global _pending
    if _pending:  # a second Ctrl-C: stop now
        raise KeyboardInterrupt
    _pending = True
    # os.write, not print: a print here could re-enter a print the main thread is in the middle of.
    os.write(2, b"\nCtrl-C: stopping before training starts (again to stop at once).\n")


def defer() -> None:
    """Until `release`, a first Ctrl-C is only noted (idempotent). Outside the main thread, where
    Python cannot set a signal handler (and never raises KeyboardInterrupt), a no-op."""
    global _previous, _pending
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not _note:
        _pending = False
        _previous = signal.signal(signal.SIGINT, _note)


def raise_pending() -> None:
    """Raise the Ctrl-C noted since `defer` as KeyboardInterrupt, if there was one."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def restore() -> None:
    """Give SIGINT back to the handler `defer` replaced. A no-op where `defer` was not called
    (the Python API) or the handler has changed since."""
    global _previous
    if _previous is not None and signal.getsignal(signal.SIGINT) is _note:
        signal.signal(signal.SIGINT, _previous)
    _previous = None


def release() -> None:
    """`restore`, then raise the Ctrl-C noted since `defer`, if any."""
    restore()
    raise_pending()


@contextlib.contextmanager
def deferred():
    """`defer` for the block; on leaving it, `release` (a Ctrl-C noted inside is raised there)."""
    defer()
    try:
        yield
    finally:
        restore()
    raise_pending()

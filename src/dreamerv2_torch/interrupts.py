"""Ctrl-C before the training loop's own handler exists (issue 9's "interrupted", exit code 130).

Until `training.StopRequested` takes SIGINT over, Python's default handler raises
KeyboardInterrupt wherever the main thread happens to be. Where that is a weakref callback or a
`__del__` (seen in CI: importlib's module-lock callback during `import torch`), Python cannot
raise it: it prints "Exception ignored in ..." with a traceback and drops it, and the run trains
on as if no key had been pressed. `install` notes such an interrupt instead of printing it;
`raise_pending` raises it at the next safe point (before the run is built, and where
`StopRequested` starts), so the command ends as any early Ctrl-C does.
"""

from __future__ import annotations

import sys

_pending = False
_previous = None  # the unraisable hook that was there before `install`


def _hook(unraisable) -> None:
    global _pending
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _pending = True
        return
    (_previous or sys.__unraisablehook__)(unraisable)


def install() -> None:
    """Route dropped KeyboardInterrupts to `raise_pending` (process-wide; idempotent)."""
    global _previous
    if sys.unraisablehook is not _hook:
        _previous, sys.unraisablehook = sys.unraisablehook, _hook


def raise_pending() -> None:
    """Raise the KeyboardInterrupt that Python dropped since the last call, if any."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt

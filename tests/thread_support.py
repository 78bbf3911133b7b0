"""Checks shared by the tests of the background threads (replay prefetch, device prefetch)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# The real class, taken at import: the tests patch `threading.Thread` (one module object for all)
# with `Lingering`, which must still call and start real threads.
_Thread = threading.Thread


class Lingering(_Thread):
    """A thread that reports "alive" twice more after it really ended (as between its last put
    and its exit): `close` must poll, neither block on an empty queue nor fail on `queue.Empty`."""

    extra = 2

    def is_alive(self) -> bool:
        if _Thread.is_alive(self):
            return True
        self.extra -= 1
        return self.extra >= 0


def assert_closes_promptly(close: Callable[[], None]) -> None:
    """`close()`, run in a plain thread, returns within 1 s without raising."""
    outcome: list = []

    def run() -> None:
        begin = time.perf_counter()
        try:
            close()
            outcome.append(time.perf_counter() - begin)
        except Exception as error:  # noqa: BLE001 - reported below
            outcome.append(error)

    closer = _Thread(target=run, daemon=True)
    closer.start()
    closer.join(timeout=5)
    assert not closer.is_alive(), "close() blocked"
    (seconds,) = outcome
    assert isinstance(seconds, float) and seconds < 1.0, seconds

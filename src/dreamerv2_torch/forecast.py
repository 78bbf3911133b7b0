"""The projected wall-clock time of a whole run, from the measured speed of its first updates.

Issue 8: a progress bar's ETA during the random prefill (or at its first, noisy rate) says nothing
about how long training takes. After the prefill and the first `1 + pretrain` updates, this times
the training mix itself (env steps, acting and updates) until `updates` more updates are done or
`seconds` have passed, then prints one line: the projected time of the remaining policy steps,
the measured seconds per update, and, for a run that would take more than a day on a CPU, what to
do instead. Evaluation episodes are not included (they add a little at every `eval_every`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

DAY = 86_400.0


def duration(seconds: float) -> str:
    """Seconds as people say them: 45 s, 12 min, 3.4 h, 2.1 days, 1.3 years."""
    for unit, size in (("years", 365 * DAY), ("days", DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


class Forecast:
    """Call with (policy step, update count) after every training step; prints one line once."""

    def __init__(self, total_steps: int, action_repeat: int, device: str, threads: int,
                 small_model: bool = False, updates: int = 5, seconds: float = 30.0,
                 on_start: Callable[[], None] | None = None,
                 out: Callable[[str], None] | None = None):
        self.total, self.repeat = int(total_steps), int(action_repeat)
        self.device, self.threads, self.small_model = device, threads, small_model
        self.min_updates, self.min_seconds = updates, seconds
        self.on_start = on_start
        self.out = out or (lambda text: print(text, flush=True))
        self.start: tuple[float, int, int] | None = None  # (time, step, updates)
        self.done = False

    def __call__(self, step: int, updates: int) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self.start is None:
            self.start = (now, step, updates)
            if self.on_start:
                self.on_start()
            return
        t0, step0, updates0 = self.start
        done_updates, elapsed = updates - updates0, now - t0
        if step >= self.total or (done_updates < self.min_updates and
                                  (elapsed < self.min_seconds or done_updates < 1)):
            if step >= self.total:
                self.done = True
            return
        self.done = True
        rate = (step - step0) / elapsed  # policy steps per second
        remaining = (self.total - step) / rate
        self.out(self.line(rate, elapsed / max(done_updates, 1), remaining, step))

    def line(self, rate: float, per_update: float, remaining: float, step: int) -> str:
        text = (f"Projected wall-clock: {duration(remaining)} for the remaining "
                f"{self.total - step:,} policy steps ({(self.total - step) * self.repeat:,} "
                f"frames), at {rate:.3g} policy steps/s and {per_update:.3g} s per update "
                f"(measured on {self.device}, threads {self.threads}; evaluation not included).")
        if remaining > DAY and self.device == "cpu":
            options = ["a GPU (`--device cuda`)",
                       f"a smaller budget (`--steps {int(rate * DAY)}` takes about a day here)"]
            if self.small_model:
                options.insert(0, "the smaller model (`--preset atari small`)")
            text += f"\nThat is more than a day on this CPU. Options: {'; '.join(options)}."
        return text

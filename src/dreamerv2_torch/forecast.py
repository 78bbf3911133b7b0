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
    """Call with (policy step, update count) at every training step; prints one line once.

    The time between two calls is one env step plus policy, plus the updates done in it (if any).
    Intervals without updates give the seconds per step, the others the seconds per update; the
    projection is remaining steps x s/step + remaining updates x s/update, with updates every
    `train_every` steps (`train_steps` each), so a window of one update in one step cannot pass
    for the whole run's rate.
    """

    def __init__(self, total_steps: int, action_repeat: int, device: str, threads: int,
                 small_model: bool = False, updates: int = 5, seconds: float = 60.0,
                 train_every: int = 1, train_steps: int = 1,
                 on_start: Callable[[], None] | None = None,
                 out: Callable[[str], None] | None = None):
        self.total, self.repeat = int(total_steps), int(action_repeat)
        self.device, self.threads, self.small_model = device, threads, small_model
        self.min_updates, self.min_seconds = updates, seconds
        self.updates_per_step = train_steps / max(train_every, 1)
        self.on_start = on_start
        self.out = out or (lambda text: print(text, flush=True))
        self.last: tuple[float, int] | None = None  # (time, updates) at the previous call
        self.start = 0.0
        self.plain = [0.0, 0]  # seconds and count of intervals without an update
        self.busy = [0.0, 0, 0]  # seconds, intervals and updates of those with updates
        self.done = False

    def __call__(self, step: int, updates: int) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self.last is None:
            self.last, self.start = (now, updates), now
            if self.on_start:
                self.on_start()
            return
        then, before = self.last
        self.last = (now, updates)
        if updates > before:
            self.busy = [self.busy[0] + now - then, self.busy[1] + 1,
                         self.busy[2] + updates - before]
        else:
            self.plain = [self.plain[0] + now - then, self.plain[1] + 1]
        if step >= self.total:
            self.done = True
            return
        enough = self.busy[2] >= self.min_updates or (
            self.busy[2] >= 2 and now - self.start >= self.min_seconds)
        if not enough or (self.updates_per_step < 1 and not self.plain[1]):
            return
        self.done = True
        per_step = self.plain[0] / self.plain[1] if self.plain[1] else 0.0
        per_update = max(self.busy[0] - self.busy[1] * per_step, 0.0) / self.busy[2]
        remaining_steps = self.total - step
        remaining = remaining_steps * (per_step + self.updates_per_step * per_update)
        rate = remaining_steps / remaining if remaining > 0 else float("inf")
        self.out(self.line(rate, per_update, remaining, step))

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

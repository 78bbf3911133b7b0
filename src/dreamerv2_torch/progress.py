"""Progress of a run on stderr: a tqdm bar on a terminal, one plain line per `log_every` otherwise.

Issue 8 (spec §7.1): frames, one smoothed rate, the ETA from it and a few key metrics. numpy-free
and torch-free; `logger.Progress` re-exports it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm


class Progress:
    """A tqdm bar over frames: position, rate, ETA and a few key metrics.

    The bar goes to stderr. With ``disable=None`` tqdm turns it off when stderr is not a terminal
    (nohup, a cluster job); then plain lines are printed instead, one per ``every`` frames (the
    run's ``log_every``; an ``update`` that brings metrics after that many frames prints it) and a
    last one at ``close``. Each line holds frames, one smoothed rate (an exponential average over
    the intervals between lines, so an evaluation phase does not print ``0 frames/s``), the ETA
    from that rate and the key metrics. ``restart_rate`` starts the rate afresh (after the random
    prefill, whose rate says nothing about training). ``disable=True`` prints nothing.
    """

    KEYS = ("train_return", "eval_return", "model_loss", "image_mse")
    SMOOTHING = 0.3  # weight of the newest interval in the rate average

    def __init__(
        self,
        total_frames: int,
        initial_frames: int = 0,
        *,
        keys: Sequence[str] = KEYS,
        disable: bool | None = None,
        desc: str = "train",
        every: int = 0,
    ):
        self.keys = tuple(keys)
        self._postfix: dict[str, str] = {}
        self._frames = int(initial_frames)  # a disabled tqdm does not count, so count here
        self._bar = tqdm(
            total=int(total_frames),
            initial=int(initial_frames),
            desc=desc,
            unit="frame",
            unit_scale=True,
            dynamic_ncols=True,
            smoothing=0.05,
            disable=disable,
        )
        # tqdm's own "not a terminal" decision; an explicit disable=True means silence.
        self._lines = disable is None and self._bar.disable
        self._total, self._desc, self._every = int(total_frames), desc, int(every)
        self._last_line = self._frames  # frames at the last printed line
        self._rate: float | None = None  # smoothed frames per second
        self._mark = (time.monotonic(), self._frames)
        self._training = False  # no ETA until `restart_rate` marks the end of the random prefill

    @property
    def frames(self) -> int:
        """The current position in frames."""
        return self._frames

    def restart_rate(self) -> None:
        """Measure the rate from now on: training started (after the random prefill, or a resume).
        Until then lines say `prefill` and give no ETA, whose random-policy rate would mislead."""
        self._mark = (time.monotonic(), self._frames)
        self._rate = None
        self._training = True

    def update(self, frames: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Move to the absolute position ``frames``; show the key metrics found in ``metrics``."""
        if frames > self._frames:
            self._bar.update(int(frames) - self._frames)
            self._frames = int(frames)
        shown = {k: float(v) for k, v in (metrics or {}).items() if k in self.keys}
        if shown:
            self._postfix.update({k: f"{v:.4g}" for k, v in shown.items()})
            self._postfix = {k: self._postfix[k] for k in self.keys if k in self._postfix}
            self._bar.set_postfix(self._postfix, refresh=False)
            if self._lines and self._frames >= self._last_line + max(self._every, 1):
                self._print_line()

    def _measure(self) -> float | None:
        now = time.monotonic()
        start, start_frames = self._mark
        if self._frames > start_frames and now > start:
            rate = (self._frames - start_frames) / (now - start)
            self._rate = rate if self._rate is None else (
                self.SMOOTHING * rate + (1 - self.SMOOTHING) * self._rate)
            self._mark = (now, self._frames)
        return self._rate

    def _print_line(self) -> None:
        rate = self._measure()
        self._last_line = self._frames
        speed = ""
        if not self._training:
            speed = f" prefill {rate:.0f} frames/s" if rate else " prefill"
        elif rate:
            remaining = max(self._total - self._frames, 0)
            speed = f" {rate:.0f} frames/s ETA {tqdm.format_interval(remaining / rate)}"
        percent = 100 * self._frames / max(self._total, 1)
        metrics = " ".join(f"{k}={v}" for k, v in self._postfix.items())
        print(
            f"{self._desc} {tqdm.format_sizeof(self._frames)}/{tqdm.format_sizeof(self._total)}"
            f" frames ({percent:.1f}%){speed} {metrics}".rstrip(),
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._lines and self._frames > self._last_line:
            self._print_line()  # where the run ended
        self._bar.close()

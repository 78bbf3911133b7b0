"""Updates skipped for non-finite gradients: warned about, and a stop when learning has stalled.

The optimisers skip a step whose gradients are not finite (`optim.py`, spec §1.8) and count it on
the device; `check_skipped`, called once per `log_every`, reads the counts (the only host reads of
them), warns about new skips and raises `SkippedUpdates` when more than `skip_limit` of the
updates since the last check were skipped.
"""

from __future__ import annotations

import warnings

from . import rundir


class SkippedUpdates(rundir.RunError):
    """More than `skip_limit` of recent updates were skipped for non-finite gradients."""


def _count(value) -> int:
    """An optimiser counter as an int, whether it is kept as an int or as a 0-d tensor."""
    return int(value.item()) if hasattr(value, "item") else int(value)


def check_skipped(loop) -> None:
    """Warn about updates skipped for non-finite gradients since the last check; stop the run
    with `SkippedUpdates` when more than `skip_limit` of them were (learning has stalled).
    `loop` needs `agent` (its three optimisers), `updates`, `frames`, `config.skip_limit` and
    `skipped_mark` (the counts at the last check, updated here)."""
    opts = {"world-model": loop.agent.model_opt, "actor": loop.agent.actor_opt,
            "critic": loop.agent.critic_opt}
    counts = {name: _count(opt.skipped) for name, opt in opts.items()}
    last_counts, last_updates = loop.skipped_mark
    loop.skipped_mark = (counts, loop.updates)
    done = loop.updates - last_updates
    for name, count in counts.items():
        skipped = count - last_counts.get(name, count)
        if skipped <= 0 or done <= 0:
            continue
        text = (f"{skipped} of the last {done} {name} updates (up to frame {loop.frames}) were "
                "skipped: non-finite gradients")
        if done >= 10 and skipped > loop.config.skip_limit * done:
            raise SkippedUpdates(f"{text}; learning has stalled, stopping (the replay or the "
                                 "weights hold non-finite values; the last checkpoint is "
                                 "unaffected)")
        warnings.warn(text, RuntimeWarning, stacklevel=2)

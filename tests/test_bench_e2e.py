"""benchmarks/bench_e2e.py times whole update rounds, so that both variants are timed over the
same work (issue 11's end-to-end figures)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_e2e import round_window  # noqa: E402


def marks(steps: int, every: int, offset: int) -> list[tuple[float, int, int]]:
    """(time, policy step, updates) per training step; a round ends at step offset + k * every."""
    out, updates = [], 0
    for step in range(1, steps + 1):
        updates += (step - offset) % every == 0
        out.append((float(step), step, updates))
    return out


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4])
def test_the_window_holds_whole_rounds_wherever_they_fall(offset):
    m = marks(50, 5, offset)
    first, last = round_window(m, 0.1)
    assert first >= 5 and m[first][2] > m[first - 1][2] and m[last][2] > m[last - 1][2]
    steps, updates = m[last][1] - m[first][1], m[last][2] - m[first][2]
    assert updates / steps == pytest.approx(1 / 5)  # the configured ratio, in every alignment
    assert updates == 8  # rounds after the warmup's 5 steps, less the one the window opens on


def test_too_short_a_run_says_so():
    with pytest.raises(SystemExit, match="raise --steps"):
        round_window(marks(6, 5, 0), 0.1)


def test_updates_due_count_the_whole_run_not_the_window():
    from bench_e2e import updates_due

    m = marks(50, 5, 0)  # training steps 1..50: rounds due at steps 1, 6, ..., 46
    assert updates_due(m, 5, 1, 0) == 1 + 10
    assert updates_due(m, 5, 2, 3) == 1 + 3 + 2 * 10
    assert updates_due(m[:-4], 5, 1, 0) == 1 + 10  # step 46 still starts a round
    assert updates_due(m[:-5], 5, 1, 0) == 1 + 9

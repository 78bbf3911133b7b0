"""A short kill -9 soak (issue 9; `benchmarks/soak_kill.py` runs the long one): three kills of a
`debug` run (one in prefill, two at random moments after a checkpoint), then the run is finished
and checked whole."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from soak_kill import soak  # noqa: E402


def test_three_kills_lose_nothing_and_repeat_nothing(tmp_path):
    figures = soak(tmp_path / "soak", kills=3, steps=400, seed=1, wait=(0.5, 4.0))
    assert figures["kills"] == 3 and figures["duplicates"] == 0
    # The first kill comes in prefill, normally before any checkpoint (then the next start is a
    # fresh one); on a loaded machine the run may get to its first checkpoint before the kill.
    assert figures["resumes"] in (2, 3)

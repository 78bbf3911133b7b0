"""benchmarks/bench_update.py --compare: the run order of the variants and the floor columns
(issue 11's per-CPU tables)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_update import _floor_cells, rotated  # noqa: E402


def test_each_variant_takes_each_place_once_over_as_many_rounds():
    order = rotated(["a", "b", "c"], 3)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    places = Counter((variant, i % 3) for i, variant in enumerate(order))
    assert set(places.values()) == {1} and len(places) == 9


def test_more_rounds_than_variants_keep_cycling():
    assert rotated(["a", "b"], 3) == ["a", "b", "b", "a", "a", "b"]


def test_floor_cells_are_medians_and_the_share_of_the_update():
    results = [{"floor_s": 1.0, "floor_peak_s": 0.5}, {"floor_s": 3.0, "floor_peak_s": 0.7},
               {"floor_s": 2.0, "floor_peak_s": 0.6}]
    assert _floor_cells(results, 4.0) == " 2.00 | 50 % | 0.60 |"

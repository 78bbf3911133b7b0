"""Learning-curve binning and the plot command (spec §7.4)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dreamerv2_torch.curves import load_inputs, load_official
from dreamerv2_torch.plot import OFFICIAL_LABEL, bin_curve, build_curves, plot_main

# Eval episodes (frames, return) of three seeds of atari_pong; 1e6-frame bins.
SEEDS = {
    0: [(5e5, -21.0), (1e6, -19.0), (1.5e6, -15.0), (2.5e6, -10.0)],  # bins -20, -15, -10
    1: [(0.0, -20.0), (2.4e6, -16.0)],  # -20, empty, -16 (a frame-0 return counts in bin 1)
    2: [(9e5, -21.0)],  # stopped early: -21, padded with -21, -21
}


def make_runs(root: Path) -> None:
    for seed, episodes in SEEDS.items():
        run = root / f"pong{seed}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"task: atari_pong\nseed: {seed}\naction_repeat: 4\n")
        lines = [
            json.dumps({"mode": "eval", "return": r, "length": 1, "frames": f}) for f, r in episodes
        ]
        (run / "scores.jsonl").write_text("\n".join(lines) + '\n{"mode": "ev')  # truncated


def test_bin_curve_edges():
    xs, ys = bin_curve(np.array([1e4, 2e4, 2.5e4, 3e4, 6e4]), np.array([1, 2, 3, 4, 5.0]), 1e4)
    np.testing.assert_array_equal(xs, [1e4, 2e4, 3e4, 4e4, 5e4, 6e4])
    xs, _ = bin_curve(np.array([1e4, 5.5e4]), np.array([1, 2.0]), 1e4)
    assert xs[-1] == 5.5e4  # the last point at the run's real frames
    np.testing.assert_array_equal(ys, [1, 2, 3.5, np.nan, np.nan, 5])


def test_plot_writes_png_and_hand_binned_json(tmp_path):
    make_runs(tmp_path / "runs")
    out = tmp_path / "out" / "curves.png"
    assert plot_main([str(tmp_path / "runs"), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    records = json.loads(out.with_suffix(".json").read_text())
    per_seed = {r["seed"]: r for r in records if r["method"] == "dreamerv2-torch"}
    # Right bin edges, except the last point of a run: drawn at its real frames (2.5e6, not 3e6).
    assert per_seed["0"]["xs"] == [1e6, 2e6, 2.5e6] and per_seed["0"]["ys"] == [-20, -15, -10]
    assert per_seed["1"]["ys"] == [-20, None, -16]
    assert per_seed["2"]["xs"] == [9e5] and per_seed["2"]["ys"] == [-21]
    mean = per_seed["mean"]
    # Padded seeds: [-20, -15, -10], [-20, nan, -16], [-21, -21, -21]; nan-mean and std over them.
    assert mean["xs"] == [1e6, 2e6, 2.5e6] and mean["seeds"] == 3
    assert mean["ys"] == pytest.approx([-61 / 3, -18, -47 / 3])
    third = [-10 + 47 / 3, -16 + 47 / 3, -21 + 47 / 3]
    std0 = math.sqrt(2 * (1 / 3) ** 2 + (2 / 3) ** 2) / math.sqrt(3)
    assert mean["std"] == pytest.approx([std0, 3, math.sqrt(sum(d * d for d in third) / 3)])
    # The official Pong curve: 8 seeds, clipped to 1.1 x our 2.5e6 frames; -18.3 at 1M (§8.2).
    (official,) = [r for r in records if r["method"] == OFFICIAL_LABEL]
    assert official["task"] == "atari_pong" and official["seeds"] == 8
    assert official["xs"] == [1e6, 2e6]
    assert official["ys"][0] == pytest.approx(-18.3, abs=0.05)
    # The per-seed records read back as runs and bin to themselves.
    back = load_official(out.with_suffix(".json"))
    assert sorted(r.seed for r in back) == ["0", "1", "2"]
    again = {r["seed"]: r for r in build_curves(back, official=False)}
    np.testing.assert_array_equal(again["1"]["ys"], [-20, np.nan, -16])
    np.testing.assert_allclose(again["mean"]["ys"], mean["ys"])


def test_official_range_and_switch(tmp_path):
    make_runs(tmp_path)
    runs = load_inputs([tmp_path])
    full = [r for r in build_curves(runs, official_range="full") if r["method"] == OFFICIAL_LABEL]
    assert len(full[0]["xs"]) == 200 and full[0]["xs"][-1] == 2e8
    assert all(r["method"] != OFFICIAL_LABEL for r in build_curves(runs, official=False))
    coarse = {r["seed"]: r for r in build_curves(runs, bins=2e6, official=False)}
    np.testing.assert_array_equal(coarse["0"]["ys"], [-55 / 3, -10])


def test_train_episodes_switch(tmp_path):
    """`--episodes train` draws the train episodes even where eval episodes exist."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task: atari_pong\nseed: 0\n")
    rows = [("train", -21.0, 5e5), ("train", -19.0, 6e5), ("eval", -5.0, 7e5)]
    lines = [json.dumps({"mode": m, "return": r, "length": 1, "frames": f}) for m, r, f in rows]
    (run / "scores.jsonl").write_text("\n".join(lines))
    (evals,) = load_inputs([run])
    (trains,) = load_inputs([run], episodes="train")
    assert evals.mode == "eval" and list(evals.ys) == [-5.0]
    assert trains.mode == "train" and list(trains.ys) == [-21.0, -19.0]
    out = tmp_path / "c.png"
    assert plot_main([str(run), "-o", str(out), "--episodes", "train", "--no-official"]) == 0
    (mean,) = [r for r in json.loads(out.with_suffix(".json").read_text()) if r["seed"] == "mean"]
    # A 600k-frame run gets 10k-frame bins (not one 1M-frame point): the episodes where they are.
    points = [(x, y) for x, y in zip(mean["xs"], mean["ys"], strict=True) if y is not None]
    assert points == [(5e5, -21.0), (6e5, -19.0)]

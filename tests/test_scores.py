"""Score arithmetic of the paper's Table 1 (spec §7.6) and reading run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dreamerv2_torch.curves import Run, load_official, load_package_json, load_run, official_runs
from dreamerv2_torch.scores import (
    GAMES,
    aggregate,
    load_baselines,
    normalise,
    run_score,
    scores_main,
    seed_mean_scores,
)

# Paper Table 1: gamer median, gamer mean, record mean, clipped record mean.
TABLE1 = {
    "iqn_sticky_2e8": (1.29, 8.85, 0.21, 0.21),
    "rainbow_sticky_2e8": (1.47, 9.12, 0.17, 0.17),
    "c51_sticky_2e8": (1.09, 7.70, 0.15, 0.15),
    "dqn_sticky_2e8": (0.65, 2.84, 0.12, 0.12),
}


def make_run_dir(root: Path, name: str, task: str, episodes: list[dict], seed: int = 0) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = f"task: {task}\nseed: {seed}\naction_repeat: 4\nkeys: !!python/tuple [a, b]\n"
    (run / "config.yaml").write_text(config)  # a tag that yaml.safe_load would refuse
    lines = [json.dumps(e) for e in episodes]
    (run / "scores.jsonl").write_text("\n".join(lines) + '\n{"mode": "eval", "ret')  # crashed
    return run


def run(task: str, xs: list[float], ys: list[float], seed: str = "0", method: str = "m") -> Run:
    return Run(task, method, seed, np.array(xs, float), np.array(ys, float))


def values(agg: dict[str, float]) -> tuple[float, ...]:
    return tuple(
        round(agg[k], 2)
        for k in ("gamer_median", "gamer_mean", "record_mean", "clipped_record_mean")
    )


@pytest.mark.parametrize("key", sorted(TABLE1))
def test_baselines_fed_as_runs_reproduce_table1(key):
    baselines = load_baselines()
    runs = [run(t, [2e8], [baselines[t][key]]) for t in GAMES]
    scores = {t: g.score for t, g in seed_mean_scores(runs, 2e8)["m"].items()}
    assert len(scores) == 55
    assert values(aggregate(scores, baselines)) == TABLE1[key]


def test_official_file_row_at_2e8():
    runs = official_runs(GAMES)
    assert {r.task for r in runs} == set(GAMES) and len(runs) == 440
    scores = {t: g.score for t, g in seed_mean_scores(runs, 2e8)["dreamerv2"].items()}
    agg = aggregate(scores, load_baselines())
    expected = {
        "gamer_median": 2.14,
        "gamer_mean": 11.0,
        "record_mean": 0.43,
        "clipped_record_mean": 0.27,
    }
    assert agg == pytest.approx(expected, abs=0.01)


def test_james_bond_fix_in_code_not_in_file():
    assert load_package_json("baselines.json")["atari_james_bond"]["human_gamer"] == 29.0
    fixed = load_baselines()
    assert fixed["atari_james_bond"]["human_gamer"] == 302.8
    raw = load_package_json("baselines.json")
    iqn = {t: fixed[t]["iqn_sticky_2e8"] for t in GAMES}
    # Without the fix IQN's gamer mean is inflated to 11.27 (spec §7.5).
    assert round(aggregate(iqn, raw)["gamer_mean"], 2) == 11.27
    assert round(aggregate(iqn, fixed)["gamer_mean"], 2) == 8.85


def test_two_games_seed_mean_before_normalising():
    baselines = {
        "atari_a": {"random": 10.0, "human_gamer": 110.0, "human_record": 1010.0},
        "atari_b": {"random": 0.0, "human_gamer": 50.0, "human_record": 100.0},
    }
    # Game a: 2 seeds, raw 60 and 260 (each the mean of its last bin); game b: 3 seeds.
    runs = [
        run("atari_a", [5e5, 9e5, 1.5e6], [0.0, 120.0, 60.0], "0"),  # bin (1e6, 2e6] -> 60
        run("atari_a", [1.2e6, 1.8e6], [200.0, 320.0], "1"),  # -> 260
        run("atari_b", [2e6], [20.0], "0"),
        run("atari_b", [2e6], [40.0], "1"),
        run("atari_b", [1.1e6, 2e6], [240.0, 240.0], "2"),
    ]
    games = seed_mean_scores(runs, 2e6)["m"]
    assert games["atari_a"].score == 160.0 and games["atari_a"].seeds == 2
    assert games["atari_b"].score == 100.0 and games["atari_b"].seeds == 3
    # By hand: a: gamer (160-10)/100 = 1.5, record 150/1000 = 0.15; b: gamer 100/50 = 2.0,
    # record 100/100 = 1.0 (clipped 1.0). Two games: median = mean = 1.75.
    agg = aggregate({t: g.score for t, g in games.items()}, baselines)
    assert agg == pytest.approx(
        {
            "gamer_median": 1.75,
            "gamer_mean": 1.75,
            "record_mean": 0.575,
            "clipped_record_mean": 0.575,
        }
    )
    # Normalising every run first and pooling them gives a different median: the runs' gamer
    # scores are a: 0.5, 2.5 and b: 0.4, 0.8, 4.8, whose median is 0.8, not 1.75; and clipping
    # per run would give game b (0.2 + 0.4 + 1) / 3 instead of 1.
    pooled = [0.5, 2.5, 0.4, 0.8, 4.8]
    assert np.median(pooled) == 0.8 != agg["gamer_median"]
    per_run = [normalise({r.task: run_score(r, 2e6).score}, baselines)[r.task] for r in runs]
    assert sorted(n["gamer"] for n in per_run) == pytest.approx(sorted(pooled))


def test_frame_budget_bin_selection():
    r = run("atari_pong", [5e5, 1.5e6, 1.7e6, 2.5e6], [1.0, 2.0, 4.0, 100.0])
    at_2m = run_score(r, 2e6)
    assert (at_2m.score, at_2m.end_frames, at_2m.is_short) == (3.0, 2e6, False)  # 2.5e6 ignored
    # A run that stopped at 1.7e6: at 5e6 its last bin of the grid anchored at 5e6 is (1e6, 2e6].
    early = run("atari_pong", [5e5, 1.5e6, 1.7e6], [1.0, 2.0, 4.0])
    short = run_score(early, 5e6)
    assert (short.score, short.end_frames, short.is_short) == (3.0, 2e6, True)
    # Bins are anchored at the budget: at 5.5e6 the last non-empty bin is (1.5e6, 2.5e6].
    assert run_score(early, 5.5e6).score == 4.0 and run_score(early, 5.5e6).end_frames == 2.5e6
    # One bin of slack: ending at 1.99e8 counts as having reached 2e8 (spec §7.5).
    assert not run_score(run("atari_pong", [1.98e8, 1.99e8], [1.0, 5.0]), 2e8).is_short
    assert run_score(run("atari_pong", [1.99e8], [5.0]), 2e8).score == 5.0
    assert run_score(early, 4e5) is None
    wide = run_score(early, 2e6, bin_frames=2e6)
    assert wide.score == pytest.approx(7 / 3)
    early_seed1 = run("atari_pong", [5e5, 1.5e6, 1.7e6], [1.0, 2.0, 4.0], seed="1")
    games = seed_mean_scores([r, early_seed1], 5e6)["m"]["atari_pong"]
    assert (games.seeds, games.short_seeds, games.min_end_frames) == (2, 2, 2e6)


def test_load_official_renames_and_skips_means(tmp_path):
    records = [
        {
            "task": "atari_jamesbond",
            "method": "dreamerv2",
            "seed": 3,
            "xs": [2e6, 1e6],
            "ys": [20.0, None],
        },
        {"task": "atari_pong", "method": "x", "seed": "mean", "xs": [1e6], "ys": [0.0]},
    ]
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(records))
    (loaded,) = load_official(path)
    assert (loaded.task, loaded.method, loaded.seed) == ("atari_james_bond", "dreamerv2", "3")
    np.testing.assert_array_equal(loaded.xs, [1e6, 2e6])  # sorted by frames
    np.testing.assert_array_equal(loaded.ys, [np.nan, 20.0])
    assert len(load_official(records)) == 1


def test_load_run_truncated_line_and_train_fallback(tmp_path):
    episodes = [
        {"mode": "train", "return": 1.0, "length": 10, "frames": 400},
        {"mode": "eval", "return": 5.0, "length": 10, "frames": 2000},
        {"mode": "eval", "return": 3.0, "length": 10, "frames": 1000},
    ]
    loaded = load_run(make_run_dir(tmp_path, "a", "atari_pong", episodes, seed=7), method="ours")
    assert (loaded.task, loaded.method, loaded.seed, loaded.mode) == (
        "atari_pong",
        "ours",
        "7",
        "eval",
    )
    np.testing.assert_array_equal(loaded.xs, [1000, 2000])
    np.testing.assert_array_equal(loaded.ys, [3.0, 5.0])
    train_only = load_run(make_run_dir(tmp_path, "b", "atari_pong", episodes[:1]))
    assert train_only.mode == "train" and list(train_only.ys) == [1.0]


def test_scores_main_partial_coverage(tmp_path, capsys):
    ep = lambda f, r: {"mode": "eval", "return": r, "length": 1, "frames": f}
    make_run_dir(tmp_path, "pong0", "atari_pong", [ep(1.5e6, -20.0), ep(2e6, -18.0)], seed=0)
    make_run_dir(tmp_path, "pong1", "atari_pong", [ep(1.9e6, -17.0)], seed=1)
    make_run_dir(tmp_path, "walker", "dmc_walker_walk", [ep(1e4, 3.0)])
    out = tmp_path / "table.json"
    assert (
        scores_main(
            [
                str(tmp_path),
                "--frames",
                "2e6",
                "--format",
                "json",
                "-o",
                str(out),
                "--baselines",
                "dqn_sticky_2e8",
            ]
        )
        == 0
    )
    assert "dmc_walker_walk" in capsys.readouterr().err  # skipped with a message
    report = json.loads(out.read_text())
    assert report["num_games"] == 1
    rows = {r["name"]: r for r in report["aggregates"]}
    assert set(rows) == {"dreamerv2-torch", "DreamerV2 (official file)", "DQN (dqn_sticky_2e8)"}
    assert all(r["games"] == 1 for r in rows.values())
    (pong,) = report["per_game"]
    assert pong["methods"]["dreamerv2-torch"]["score"] == pytest.approx(-18.0)  # (-19 + -17) / 2
    assert pong["official"]["score"] == pytest.approx(-8.6, abs=0.05)  # spec §8.2, Pong at 2M
    assert pong["official"]["seeds"] == 8
    assert scores_main([str(tmp_path), "--frames", "2e6", "--format", "markdown"]) == 0
    assert "over 1 of 55 games" in capsys.readouterr().out


def test_scores_main_without_atari_runs_fails(tmp_path, capsys):
    make_run_dir(
        tmp_path,
        "walker",
        "dmc_walker_walk",
        [{"mode": "eval", "return": 1.0, "length": 1, "frames": 10}],
    )
    assert scores_main([str(tmp_path)]) == 2
    assert "no Atari" in capsys.readouterr().err

"""Atari score normalisation and the paper's Table 1 aggregates; the `scores` command.

Spec §7.5, §7.6 and §8.1 (the official repository has no such script: its `common/plot.py`
aggregates per seed, which the paper did not). numpy and the standard library only, never torch.

The paper's order of operations, which reproduces Table 1 exactly for the model-free baselines:

1. score of a run at a frame budget F = mean of its eval returns in the last bin (F - w, F]
   (w = 1e6 frames); a run that stopped earlier contributes its last non-empty bin of that grid;
2. per game, average the raw scores over seeds;
3. per game, normalise: gamer = (s - random) / (human_gamer - random), record likewise with
   human_record, clipped record = min(record, 1);
4. over games: gamer median, gamer mean, record mean, clipped record mean.

Averaging over seeds before normalising matters: the median and the clipped mean are not linear.
All aggregation goes through plain `{task: score}` dicts, so baselines and runs share one path.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dreamerv2_torch.curves import (
    DEFAULT_METHOD,
    Run,
    format_frames,
    load_inputs,
    load_package_json,
    official_runs,
)

# The 55 games of the paper (spec §7.5), as task names.
_GAME_NAMES = """
    alien amidar assault asterix asteroids atlantis bank_heist battle_zone beam_rider berzerk
    bowling boxing breakout centipede chopper_command crazy_climber demon_attack double_dunk enduro
    fishing_derby freeway frostbite gopher gravitar hero ice_hockey james_bond kangaroo krull
    kung_fu_master montezuma_revenge ms_pacman name_this_game phoenix pitfall pong private_eye qbert
    riverraid road_runner robotank seaquest skiing solaris space_invaders star_gunner tennis
    time_pilot tutankham up_n_down venture video_pinball wizard_of_wor yars_revenge zaxxon
"""
GAMES = tuple(f"atari_{game}" for game in _GAME_NAMES.split())
AGGREGATES = ("gamer_median", "gamer_mean", "record_mean", "clipped_record_mean")
DEFAULT_BASELINES = ("iqn_sticky_2e8", "rainbow_sticky_2e8", "c51_sticky_2e8", "dqn_sticky_2e8")
_ACRONYMS = {"iqn": "IQN", "c51": "C51", "dqn": "DQN", "ddqn": "DDQN"}
# Paper Table 1, DreamerV2 row (spec §8.1); shown beside the official file when comparable.
PAPER_DREAMERV2 = dict(zip(AGGREGATES, (2.15, 11.33, 0.44, 0.28), strict=True))
Baselines = dict[str, dict[str, float]]  # {task: {"random": .., "human_gamer": .., key: score}}


def load_baselines() -> Baselines:
    """Random, human and model-free baseline scores per Atari task, with the James Bond fix."""
    baselines = load_package_json("baselines.json")
    # The shipped file says 29.0 for James Bond's human gamer score; the paper (Table K.1) and the
    # DQN Nature paper use 302.8. Corrected here so the file itself stays a verbatim copy.
    baselines["atari_james_bond"]["human_gamer"] = 302.8
    return baselines


def normalise(scores: dict[str, float], baselines: Baselines) -> dict[str, dict[str, float]]:
    """Per task: gamer-, record- and clipped-record-normalised score of a raw score."""
    result = {}
    for task, score in scores.items():
        ref = baselines[task]
        low = ref["random"]
        record = (score - low) / (ref["human_record"] - low)
        gamer = (score - low) / (ref["human_gamer"] - low)
        result[task] = dict(gamer=gamer, record=record, clipped_record=min(record, 1.0))
    return result


def aggregate(scores: dict[str, float], baselines: Baselines) -> dict[str, float]:
    """The four Table 1 aggregates over the tasks of `scores` (already seed-averaged)."""
    norm = list(normalise(scores, baselines).values())
    assert norm, "aggregate needs at least one game"
    gamer, record, clipped = (
        np.array([n[k] for n in norm]) for k in ("gamer", "record", "clipped_record")
    )
    values = (np.median(gamer), np.mean(gamer), np.mean(record), np.mean(clipped))
    return {name: float(v) for name, v in zip(AGGREGATES, values, strict=True)}


@dataclass
class RunScore:
    """A run's score at a frame budget and the right edge of the bin it came from."""

    score: float
    end_frames: float
    is_short: bool  # stopped more than one bin before the budget


def run_score(run: Run, frames: float, bin_frames: float = 1e6) -> RunScore | None:
    """Mean return in the last non-empty bin of the grid (F - k w - w, F - k w]; None if no data.

    One bin of slack before `is_short`: a loop that evaluates at the start of every 1e6-frame
    phase never fills the final bin (198 official runs end at 1.99e8 frames, spec §7.5).
    """
    mask = (run.xs <= frames) & np.isfinite(run.ys)
    if not mask.any():
        return None
    # Index of the bin counted back from the budget; the epsilon keeps bin edges in their bin.
    index = np.floor((frames - run.xs[mask]) / bin_frames + 1e-9).astype(int)
    last = index.min()
    score = float(np.mean(run.ys[mask][index == last]))
    return RunScore(score, frames - last * bin_frames, bool(last > 1))


@dataclass
class GameScore:
    """A game's score for one method: the seed mean of `run_score`."""

    score: float
    seeds: int
    short_seeds: int
    min_end_frames: float


def seed_mean_scores(
    runs: Iterable[Run], frames: float, bin_frames: float = 1e6
) -> dict[str, dict[str, GameScore]]:
    """`{method: {task: GameScore}}`, averaging raw scores over seeds (step 2 of the recipe)."""
    # Seeds are counted from the runs' configs: two folders of the same seed are one seed (their
    # scores are averaged first), not two.
    grouped: dict[str, dict[str, dict[str, list[RunScore]]]] = {}
    for run in runs:
        if (scored := run_score(run, frames, bin_frames)) is not None:
            seeds = grouped.setdefault(run.method, {}).setdefault(run.task, {})
            seeds.setdefault(run.seed, []).append(scored)
    result: dict[str, dict[str, GameScore]] = {}
    for method, tasks in grouped.items():
        result[method] = {}
        for task, by_seed in sorted(tasks.items()):
            per_seed = [float(np.mean([r.score for r in rs])) for rs in by_seed.values()]
            flat = [r for rs in by_seed.values() for r in rs]
            short = sum(any(r.is_short for r in rs) for rs in by_seed.values())
            result[method][task] = GameScore(float(np.mean(per_seed)), len(by_seed), short,
                                             min(r.end_frames for r in flat))
    return result


def _agent_name(key: str) -> str:
    agent = key.split("_")[0]
    return f"{_ACRONYMS.get(agent, agent.title())} ({key})"


def _seed_range(game_scores: Iterable[GameScore]) -> str:
    seeds = [g.seeds for g in game_scores]
    return str(min(seeds)) if min(seeds) == max(seeds) else f"{min(seeds)}-{max(seeds)}"


def build_report(
    runs: list[Run],
    frames: float,
    bin_frames: float,
    baseline_keys: Iterable[str],
    baselines: Baselines,
    official: list[Run],
) -> dict:
    """The per-game table and the aggregate rows as one JSON-ready dict."""
    ours = seed_mean_scores(runs, frames, bin_frames)
    games = sorted({task for tasks in ours.values() for task in tasks}, key=GAMES.index)
    official_scores = seed_mean_scores(official, frames, bin_frames).get("dreamerv2", {})
    rows = []

    def add_row(name: str, kind: str, scores: dict[str, float], seeds: str) -> None:
        values = aggregate(scores, baselines)
        rows.append(dict(name=name, kind=kind, games=len(scores), seeds=seeds, **values))

    for method, tasks in ours.items():
        scores = {t: g.score for t, g in tasks.items()}
        add_row(method, "input", scores, _seed_range(tasks.values()))
    covered = {t: official_scores[t] for t in games if t in official_scores}
    if covered:
        scores = {t: g.score for t, g in covered.items()}
        add_row("DreamerV2 (official file)", "official", scores, _seed_range(covered.values()))
    if frames == 2e8 and len(games) == len(GAMES):
        name = "DreamerV2 (paper Table 1)"
        rows.append(dict(name=name, kind="paper", games=len(GAMES), seeds="", **PAPER_DREAMERV2))
    for key in baseline_keys:
        add_row(_agent_name(key), "baseline", {t: baselines[t][key] for t in games}, "")

    def entry(g: GameScore | None, task: str) -> dict | None:
        return None if g is None else {**asdict(g), **normalise({task: g.score}, baselines)[task]}

    per_game = [
        {
            "game": t.removeprefix("atari_"),
            "task": t,
            **{k: baselines[t][k] for k in ("random", "human_gamer", "human_record")},
            "official": entry(official_scores.get(t), t),
            "methods": {m: entry(tasks.get(t), t) for m, tasks in ours.items()},
        }
        for t in games
    ]
    sizes = dict(num_games=len(games), total_games=len(GAMES))
    return dict(frames=frames, bin_frames=bin_frames, **sizes, aggregates=rows, per_game=per_game)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], fmt: str) -> str:
    if fmt == "markdown":
        lines = [headers, [":--"] + ["--:"] * (len(headers) - 1), *rows]
        escape = lambda c: c.replace("*", "\\*")  # our short-run mark, not emphasis
        return "\n".join("| " + " | ".join(map(escape, cells)) + " |" for cells in lines)
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    align = lambda cells: "  ".join(  # names left, numbers right
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return "\n".join([align(headers), "  ".join("-" * w for w in widths), *map(align, rows)])


def render(report: dict, fmt: str = "text") -> str:
    """Render `build_report`'s dict as aligned text, Markdown or JSON."""
    if fmt == "json":
        return json.dumps(report, indent=1)
    n, total = report["num_games"], report["total_games"]
    scope = f"all {total} games" if n == total else f"{n} of {total} games"
    frames, width = format_frames(report["frames"]), format_frames(report["bin_frames"])
    title = (
        f"Atari at {frames} frames, over {scope} (score: mean eval return in the last "
        f"{width}-frame bin, seed mean per game, then normalised; baselines are final scores "
        "at 200M frames)"
    )
    agg_rows = [
        [r["name"], str(r["games"]), r["seeds"], *(_fmt(r[k], 2) for k in AGGREGATES)]
        for r in report["aggregates"]
    ]
    agg_headers = ["agent", "games", "seeds", *(k.replace("_", " ") for k in AGGREGATES)]
    agg = _table(agg_headers, agg_rows, fmt)
    methods = list(report["per_game"][0]["methods"]) if report["per_game"] else []
    headers = ["game", "random", "human gamer", "human record", "DreamerV2 official", "gamer-norm"]
    for method in methods:
        headers += [method, "seeds", "gamer-norm", "record-norm"]
    rows = []
    for g in report["per_game"]:
        off = g["official"] or {}
        row = [g["game"], *(_fmt(g[k], 1) for k in ("random", "human_gamer", "human_record"))]
        row += [_fmt(off.get("score"), 1), _fmt(off.get("gamer"), 2)]
        for method in methods:
            m = g["methods"][method] or {}
            mark = "*" if m.get("short_seeds") else ""
            row += [_fmt(m.get("score"), 1) + mark, str(m.get("seeds", 0))]
            row += [_fmt(m.get("gamer"), 2), _fmt(m.get("record"), 2)]
        rows.append(row)
    note = "* some seeds stopped more than one bin before the budget; their last bin is used"
    heading = "## " if fmt == "markdown" else ""
    parts = [heading + title, agg, heading + "Per game", _table(headers, rows, fmt), note]
    return "\n\n".join(parts) + "\n"


def _protocol(runs: list[Run], allow: bool) -> tuple[list[Run], bool]:
    """Drop (or, with `allow`, rename loudly) runs whose config departs from the paper's."""
    bad = [r for r in runs if r.deviations]
    for run in bad:
        verb = "MARKED" if allow else "skipped"
        print(f"{verb}: {run.source or run.task} does not follow the paper's Atari protocol: "
              f"{'; '.join(run.deviations)}", file=sys.stderr)
    if not bad:
        return runs, False
    if not allow:
        print("(pass --allow-nonstandard to score such runs, in rows of their own)",
              file=sys.stderr)
        return [r for r in runs if not r.deviations], True
    marked = [dataclasses.replace(r, method=f"{r.method} [NOT the paper's protocol]")
              if r.deviations else r for r in runs]
    return marked, False


def scores_main(argv: list[str] | None = None) -> int:
    """`dreamerv2-torch scores RUN_DIRS...`: Table 1 for our runs beside the paper's agents."""
    prog, defaults = "dreamerv2-torch scores", argparse.ArgumentDefaultsHelpFormatter
    about = "Atari Table 1 of the paper for our runs, beside official DreamerV2 and baselines."
    parser = argparse.ArgumentParser(prog, description=about, formatter_class=defaults,
                                     allow_abbrev=False)
    inputs_help = "run directories, their parents, official-format JSON files"
    parser.add_argument("inputs", nargs="+", metavar="RUN_DIRS", help=inputs_help)
    parser.add_argument("--frames", type=float, default="2e8", help="frame budget F")
    parser.add_argument("--bin-frames", type=float, default="1e6", help="score bin width w")
    parser.add_argument("--method", default=DEFAULT_METHOD, help="method name of our runs")
    keys_help = "comma-separated baselines.json keys, or none"
    parser.add_argument("--baselines", default=",".join(DEFAULT_BASELINES), help=keys_help)
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--allow-nonstandard", action="store_true",
                        help="include runs that depart from the paper's Atari protocol (marked)")
    parser.add_argument("--allow-short", action="store_true",
                        help="score runs that end before the budget at their last bin (marked)")
    args = parser.parse_args(argv)
    baselines = load_baselines()
    keys = [] if args.baselines == "none" else args.baselines.split(",")
    known = set(baselines["atari_pong"]) - {"random", "human_gamer", "human_record"}
    if unknown := [k for k in keys if k not in known]:
        parser.error(f"unknown baselines {unknown}; choose from {sorted(known)}")
    try:
        runs = load_inputs(args.inputs, args.method)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if skipped := sorted({r.task for r in runs if r.task not in GAMES}):
        print(f"skipping tasks outside the paper's 55 Atari games: {skipped}", file=sys.stderr)
    runs = [r for r in runs if r.task in GAMES]
    runs, refused = _protocol(runs, args.allow_nonstandard)
    ours = seed_mean_scores(runs, args.frames, args.bin_frames)
    if not ours:
        budget = format_frames(args.frames)
        why = " that follow the paper's protocol" if refused else ""
        print(f"error: no Atari returns{why} at or before {budget} frames", file=sys.stderr)
        return 2
    # Comparing a short run's last bin with 200M-frame numbers is rarely what was meant.
    end = min(g.min_end_frames for tasks in ours.values() for g in tasks.values())
    if end < args.frames - args.bin_frames:
        last = max(float(r.xs.max()) for r in runs if len(r.xs))
        advice = (f"some runs end at {format_frames(end)} frames (the longest at "
                  f"{format_frames(last)}), short of the {format_frames(args.frames)}-frame "
                  f"budget: score them at their own budget (--frames {last:g})")
        if not args.allow_short:
            print(f"error: {advice}, or pass --allow-short to use their last bin", file=sys.stderr)
            return 2
        print(f"WARNING: {advice}; their last bin is used (marked *)", file=sys.stderr)
    official = official_runs({r.task for r in runs})
    report = build_report(runs, args.frames, args.bin_frames, keys, baselines, official)
    text = render(report, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

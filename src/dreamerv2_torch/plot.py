"""Learning curves of our runs beside the official DreamerV2 curves; the `plot` command.

Spec §7.4 (official `dreamerv2/common/plot.py`, re-implemented, not copied). numpy and
matplotlib only, never torch; matplotlib is driven through `Figure` and its Agg canvas, so no
global backend is switched and nothing is ever shown.

* Binning: bins (start, stop] of width w from 0, x = right edge, value = nan-mean of the returns
  inside, empty bins NaN (drawn as gaps bridged by the line). w = 1e6 frames for `atari_*`, 1e4 for
  `dmc_*`/`crafter_*`, 1e5 otherwise, unless `--bins N`. A return logged at frame 0 counts into the
  first bin rather than being dropped. Points that sit on right edges (official files, our own
  `curves.json`) land in their own bin, so binned curves can be fed back in unchanged.
* Per task and method: seeds padded with their last value to the longest seed, then mean and
  std (ddof 0) over seeds, as the official script's `std1` band.
* Reference: the official `dreamerv2` curves of the same task from the package data (Atari file
  or DMC vision file), drawn at their own resolution. With `--official-range ours` (default) they
  are clipped to 1.1x our largest frame count, so a short run is not squashed against 2e8 frames;
  `full` draws them whole. Not drawn where an input already carries method `dreamerv2` for the task.
* Atari panels get the random and human-gamer scores (baselines.json) as horizontal lines.
* Outputs: the PNG and `<name>.json` beside it: per-seed binned curves as official-format
  `{task, method, seed, xs, ys}` records (NaN as null) plus `seed: "mean"` records with `std` and
  `seeds` (skipped by the reader), including the clipped reference curves.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dreamerv2_torch.curves import DEFAULT_METHOD, Run, format_frames, load_inputs, official_runs
from dreamerv2_torch.scores import load_baselines

OFFICIAL_LABEL = "dreamerv2 (official)"
OFFICIAL_MARGIN = 1.1  # how far past our largest frame count the reference curve is drawn


def default_bin_frames(task: str) -> float:
    """Bin width in frames by suite, as the official plot script chooses it."""
    suite = task.split("_", 1)[0]
    return {"atari": 1e6, "dmc": 1e4, "crafter": 1e4}.get(suite, 1e5)


def bin_curve(xs: np.ndarray, ys: np.ndarray, bin_frames: float) -> tuple[np.ndarray, np.ndarray]:
    """Nan-mean of `ys` in bins ((k-1) w, k w] for k = 1..ceil(max x / w); right edges, means."""
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if not len(xs):
        return np.zeros(0), np.zeros(0)
    # The epsilon keeps a point on a right edge in its own bin despite float division.
    index = np.maximum(np.ceil(xs / bin_frames - 1e-9).astype(int), 1)
    sums = np.bincount(index, ys)[1:]
    counts = np.bincount(index)[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    edges = np.arange(1, len(means) + 1) * bin_frames
    # The last bin is drawn where the run really is, not at its right edge (issue 8: a 2k-frame
    # run was drawn at 100k). Binned input sits on the edges, so it is unchanged.
    edges[-1] = min(edges[-1], float(xs.max()))
    return edges, means


def auto_bin_frames(task: str, max_frames: float) -> float:
    """The suite's bin width; for a run shorter than two such bins, a power of ten that gives it
    at least ~10 bins (a 2k-frame run gets 100-frame bins, not one point at 100k)."""
    width = default_bin_frames(task)
    if 0 < max_frames <= 2 * width:
        width = min(width, 10.0 ** math.floor(math.log10(max(max_frames / 10, 1.0))))
    return width


def pad_last(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Stack curves into (seeds, longest), padding each with its last finite value."""
    length = max(len(c) for c in curves)
    padded = np.full((len(curves), length), np.nan)
    for i, curve in enumerate(curves):
        padded[i, : len(curve)] = curve
        finite = curve[np.isfinite(curve)]
        if len(finite):
            padded[i, len(curve) :] = finite[-1]
    return padded


def _mean_record(task: str, method: str, xs: np.ndarray, curves: list[np.ndarray],
                 seeds: int | None = None) -> dict:
    stacked = pad_last(curves)  # (seeds, bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are expected gaps
        mean, std = np.nanmean(stacked, 0), np.nanstd(stacked, 0)
    return {
        "task": task,
        "method": method,
        "seed": "mean",
        "xs": xs[: stacked.shape[1]],
        "ys": mean,
        "std": std,
        "seeds": len(curves) if seeds is None else seeds,  # distinct config seeds
    }


def build_curves(
    runs: list[Run], bins: float | None = None, official: bool = True, official_range: str = "ours"
) -> list[dict]:
    """Binned per-seed records, per-method mean records and clipped reference mean records."""
    records: list[dict] = []
    tasks = sorted({r.task for r in runs})
    references = official_runs(tasks) if official else []  # one read of each package file
    for task in tasks:
        task_runs = [r for r in runs if r.task == task]
        ours_max = max((float(r.xs.max()) for r in task_runs if len(r.xs)), default=0.0)
        width = bins or auto_bin_frames(task, ours_max)
        for method in sorted({r.method for r in task_runs}):
            curves, longest, seeds = [], np.zeros(0), set()
            for run in (r for r in task_runs if r.method == method):
                xs, ys = bin_curve(run.xs, run.ys, width)
                if len(xs):
                    records.append(
                        {"task": task, "method": method, "seed": run.seed, "xs": xs, "ys": ys}
                    )
                    curves.append(ys)
                    seeds.add(run.seed)
                    longest = xs if len(xs) > len(longest) else longest
            if curves:
                records.append(_mean_record(task, method, longest, curves, len(seeds)))
        reference = [r for r in references if r.task == task]
        if reference and all(r.method != "dreamerv2" for r in task_runs):
            limit = math.inf
            if official_range == "ours":
                ours = max((float(r.xs.max()) for r in task_runs if len(r.xs)), default=0.0)
                limit = OFFICIAL_MARGIN * ours
            xs = max((r.xs for r in reference), key=len)
            keep = max(int((xs <= limit).sum()), 1)  # at least the first point
            records.append(
                _mean_record(task, OFFICIAL_LABEL, xs[:keep], [r.ys[:keep] for r in reference])
            )
    return records


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return [None if not math.isfinite(v) else float(v) for v in value]
    return value


def legend_label(method: str, seeds: int) -> str:
    return f"{method} ({seeds} seed{'' if seeds == 1 else 's'})"


def draw(
    records: list[dict],
    path: Path,
    baselines: dict[str, dict[str, float]],
    ylabel: str = "eval return",
):
    """One panel per task: mean curves with std bands, reference curve, Atari baselines."""
    # Imported here: the scores command and the binning never need matplotlib.
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    means = [r for r in records if r["seed"] == "mean"]
    tasks = sorted({r["task"] for r in means})
    methods = sorted({r["method"] for r in means} - {OFFICIAL_LABEL})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)} | {OFFICIAL_LABEL: "0.3"}
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig = Figure(figsize=(6.5 * cols, 3 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, task in zip(axes, tasks, strict=False):
        for rec in (r for r in means if r["task"] == task):
            xs, ys, std = rec["xs"], rec["ys"], rec["std"]
            ok = np.isfinite(ys)  # bridge empty bins instead of breaking the line
            label = legend_label(rec["method"], rec["seeds"])
            ax.plot(
                xs[ok],
                ys[ok],
                color=colors[rec["method"]],
                label=label,
                marker="." if ok.sum() < 3 else None,
            )
            ax.fill_between(
                xs[ok],
                (ys - std)[ok],
                (ys + std)[ok],
                color=colors[rec["method"]],
                alpha=0.2,
                linewidth=0,
            )
        if task in baselines:
            for key, style in (("random", ":"), ("human_gamer", "--")):
                ax.axhline(
                    baselines[task][key],
                    color="0.5",
                    linestyle=style,
                    label=key.replace("_", " "),
                    linewidth=1,
                )
        ax.set_title(task)
        ax.set_xlabel("frames")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: format_frames(x)))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        # Beside the panel, never over the curves or the baseline lines.
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    fig.savefig(path, dpi=100)
    return fig


def plot_main(argv: list[str] | None = None) -> int:
    """`dreamerv2-torch plot RUN_DIRS... -o curves.png`: learning curves and their binned JSON."""
    prog, defaults = "dreamerv2-torch plot", argparse.ArgumentDefaultsHelpFormatter
    about = "Learning curves of runs against frames, beside the official DreamerV2 curves."
    parser = argparse.ArgumentParser(prog, description=about, formatter_class=defaults,
                                     allow_abbrev=False)
    inputs_help = "run directories, their parents, official-format JSON files"
    parser.add_argument("inputs", nargs="+", metavar="RUN_DIRS", help=inputs_help)
    parser.add_argument("-o", "--output", type=Path, default=Path("curves.png"), help="PNG path")
    parser.add_argument("--bins", default="auto", help="bin width in frames, or auto (by suite)")
    xaxis_help = "x axis: frames = policy steps x action repeat, as in the paper"
    parser.add_argument("--xaxis", choices=("frames",), default="frames", help=xaxis_help)
    parser.add_argument("--method", default=DEFAULT_METHOD, help="method name of our runs")
    episodes_help = "which episodes make our curves: eval (falls back to train) or train"
    parser.add_argument("--episodes", choices=("eval", "train"), default="eval", help=episodes_help)
    parser.add_argument("--no-official", action="store_true", help="omit the official curves")
    range_help = "clip official curves to 1.1x our frames, or draw them whole"
    choices = ("ours", "full")
    parser.add_argument("--official-range", choices=choices, default="ours", help=range_help)
    args = parser.parse_args(argv)
    try:
        bins = None if args.bins == "auto" else float(args.bins)
    except ValueError:
        parser.error(f"--bins must be 'auto' or a number of frames, got {args.bins!r}")
    if bins is not None and bins <= 0:
        parser.error("--bins must be positive")
    try:
        runs = [r for r in load_inputs(args.inputs, args.method, args.episodes) if len(r.xs)]
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no returns found in {args.inputs}", file=sys.stderr)
        return 2
    records = build_curves(runs, bins, not args.no_official, args.official_range)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    ylabel = "eval return" if args.episodes == "eval" else "train return (official: eval)"
    draw(records, args.output, load_baselines(), ylabel)
    json_path = args.output.with_suffix(".json")
    records = [{k: _jsonable(v) for k, v in r.items()} for r in records]
    json_path.write_text(json.dumps(records), encoding="utf-8")
    print(f"wrote {args.output} and {json_path}", file=sys.stderr)
    return 0

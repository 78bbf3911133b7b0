"""Reading learning curves: our run directories, official-format score files, the package data.

Owns the `Run` record that `scores.py` and `plot.py` consume (spec §7.2, §7.4, §7.5). numpy,
PyYAML and the standard library only, never torch.

A run directory (written by the training loop) holds `config.yaml` (`task`, `seed`,
`action_repeat`, ...), `metrics.jsonl` (`"step"` = frames) and `scores.jsonl` (one line per
finished episode: `mode`, `return`, `length`, `frames`). Curves come from the eval episodes of
`scores.jsonl`; a run without any falls back to its train episodes (recorded in `Run.mode`), and a
run without `scores.jsonl` to the `eval_return` / `train_return` lines of `metrics.jsonl`.

The official format (the `scores/*.json` files of danijar/dreamerv2, and the per-seed records of
our own `curves.json`) is a list of `{task, method, seed, xs, ys}` with `xs` in frames. Records
whose seed is `"mean"` are aggregates written by `plot.py` and are skipped when reading.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

DEFAULT_METHOD = "dreamerv2-torch"
OFFICIAL_ATARI = "atari-dreamerv2.json"
OFFICIAL_DMC = "dmc-vision-dreamerv2.json"
# Old official files and plot.py spell this game without the underscore (spec §7.4).
_TASK_RENAMES = {"atari_jamesbond": "atari_james_bond"}


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML loading that reads unknown tags (`!!python/tuple` from `yaml.dump`) as plain data.

    We only need a few keys of config.yaml; how the training loop serialised the rest must not
    stop the analysis.
    """


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)


_ConfigLoader.add_multi_constructor("", _plain)


@dataclass
class Run:
    """One learning curve: returns `ys` against environment frames `xs` (sorted by frames)."""

    task: str
    method: str
    seed: str
    xs: np.ndarray
    ys: np.ndarray
    mode: str = "eval"  # which episodes the curve comes from: "eval" or "train"
    source: str = field(default="", compare=False)
    # issue 8: how an Atari run's config departs from the paper's protocol (empty: it follows it).
    deviations: tuple[str, ...] = field(default=(), compare=False)


# The paper's Atari protocol (spec §5.1, §6, §10) as config values; `paper_deviations` names every
# one a run's config.yaml sets otherwise (keys it lacks are not judged). Sticky actions (p = 0.25)
# are not a config field: `atari_*` envs always use them.
PAPER_ATARI = {
    "time_limit": 27000, "action_repeat": 4, "atari_all_actions": True,
    "atari_grayscale": True, "render_size": [64, 64], "rssm.deter": 600, "rssm.hidden": 600,
    "rssm.stoch": 32, "rssm.discrete": 32, "encoder.cnn_depth": 48, "dataset.batch": 50,
}
_PROTOCOL_NAMES = {"time_limit": "time limit", "atari_all_actions": "all 18 actions",
                   "action_repeat": "action repeat", "dataset.batch": "batch size"}


def paper_deviations(config: dict[str, Any]) -> tuple[str, ...]:
    """`key value (paper: value)` for each protocol field of an Atari config that differs."""
    out = []
    for key, paper in PAPER_ATARI.items():
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        value = list(node) if isinstance(node, (list, tuple)) else node
        if value != paper:
            out.append(f"{_PROTOCOL_NAMES.get(key, key)} {value} (paper {paper})")
    return tuple(out)


def observation_kind(config: dict[str, Any]) -> str:
    """'pixels', 'proprio' or '' (both / unknown), from the encoder's key regexes."""
    encoder = config.get("encoder") or {}
    cnn, mlp = encoder.get("cnn_keys"), encoder.get("mlp_keys")
    if cnn == "$^" and mlp not in (None, "$^"):
        return "proprio"
    if mlp == "$^" and cnn not in (None, "$^"):
        return "pixels"
    return ""


def canonical_task(task: str) -> str:
    """Task name as the official score files spell it (`atari_jamesbond` -> `atari_james_bond`)."""
    return _TASK_RENAMES.get(task, task)


def _make_run(task: str, method: str, seed: Any, xs: Iterable, ys: Iterable, **kw: Any) -> Run:
    # JSON null (our writer's NaN) becomes nan; sorting keeps binning and fill-last well defined.
    xs = np.array([np.nan if x is None else x for x in xs], dtype=np.float64)
    ys = np.array([np.nan if y is None else y for y in ys], dtype=np.float64)
    assert xs.shape == ys.shape, f"xs {xs.shape} and ys {ys.shape} differ for {task}/{seed}"
    order = np.argsort(xs, kind="stable")
    return Run(canonical_task(task), method, str(seed), xs[order], ys[order], **kw)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a jsonl file, skipping lines that do not parse.

    A crash while writing leaves a truncated last line; it is dropped rather than failing the read.
    """
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def _curve_from_scores(path: Path, mode: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rec in read_jsonl(path):
        if rec.get("mode") == mode and "frames" in rec and "return" in rec:
            xs.append(float(rec["frames"]))
            ys.append(float(rec["return"]))
    return xs, ys


def _curve_from_metrics(path: Path, mode: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rec in read_jsonl(path):
        if f"{mode}_return" in rec and "step" in rec:
            xs.append(float(rec["step"]))
            ys.append(float(rec[f"{mode}_return"]))
    return xs, ys


def is_run_dir(path: Path) -> bool:
    """Whether `path` looks like a training run directory."""
    has_curve = (path / "scores.jsonl").exists() or (path / "metrics.jsonl").exists()
    return path.is_dir() and has_curve and (path / "config.yaml").exists()


def load_run(path: str | Path, method: str = DEFAULT_METHOD, episodes: str = "eval") -> Run:
    """Read one run directory into a `Run` of returns against frames.

    `episodes="eval"` uses the eval episodes and falls back to the train episodes of a run that has
    none; `episodes="train"` always uses the train episodes (the curve to watch mid-run).
    """
    if episodes not in ("eval", "train"):
        raise ValueError(f"episodes must be 'eval' or 'train', not {episodes!r}")
    path = Path(path)
    config_path = path / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(f"{path} is not a run directory: no config.yaml")
    config = yaml.load(config_path.read_text(encoding="utf-8"), _ConfigLoader) or {}
    if "task" not in config:
        raise ValueError(f"{config_path} has no 'task' key")
    seed = config.get("seed", path.name)
    reader, file = _curve_from_scores, path / "scores.jsonl"
    if not file.exists():
        reader, file = _curve_from_metrics, path / "metrics.jsonl"
    if not file.exists():
        raise FileNotFoundError(f"{path} has neither scores.jsonl nor metrics.jsonl")
    mode, (xs, ys) = episodes, reader(file, episodes)
    if not xs and episodes == "eval":
        mode, (xs, ys) = "train", reader(file, "train")
    task = str(config["task"])
    deviations = paper_deviations(config) if task.startswith("atari_") else ()
    if task.startswith("dmc_") and (kind := observation_kind(config)):
        method = f"{method} ({kind})"  # pixel and proprio runs are different methods
    return _make_run(task, method, seed, xs, ys, mode=mode, source=str(path),
                     deviations=deviations)


def format_frames(frames: float) -> str:
    """Frame counts as people write them: 200M, 50k."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(frames) >= scale:
            return f"{frames / scale:g}{suffix}"
    return f"{frames:g}"


def load_official(path_or_records: str | Path | list[dict[str, Any]]) -> list[Run]:
    """Read official-format records `{task, method, seed, xs, ys}` (a file or a loaded list)."""
    records = path_or_records
    source = "records"
    if isinstance(path_or_records, (str, Path)):
        source = str(path_or_records)
        with open(path_or_records, encoding="utf-8") as f:
            try:
                records = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{source} is not valid JSON ({error}); expected a list of "
                                 "{task, method, seed, xs, ys} records") from None
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a list of {{task, method, seed, xs, ys}} records")
    runs = []
    for number, r in enumerate(records):
        where = f"{source}: record {number}"
        if not isinstance(r, dict):
            raise ValueError(f"{where} is not an object with task, method, seed, xs, ys")
        if str(r.get("seed")) == "mean":
            continue
        if missing := [k for k in ("task", "method", "seed", "xs", "ys") if k not in r]:
            raise ValueError(f"{where} lacks {', '.join(missing)} (official format: task, "
                             "method, seed, xs, ys)")
        if not (isinstance(r["xs"], list) and isinstance(r["ys"], list)
                and len(r["xs"]) == len(r["ys"])):
            raise ValueError(f"{where}: xs and ys must be lists of the same length")
        try:
            runs.append(_make_run(r["task"], r["method"], r["seed"], r["xs"], r["ys"],
                                  source=source))
        except (TypeError, ValueError):
            raise ValueError(f"{where}: xs and ys must hold numbers") from None
    return runs


def load_package_json(name: str) -> Any:
    """Load one of the JSON files shipped in `dreamerv2_torch/data` (see data/README.md)."""
    text = resources.files("dreamerv2_torch").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


def official_runs(tasks: Iterable[str], method: str = "dreamerv2") -> list[Run]:
    """The official DreamerV2 curves of `tasks` from the package data (Atari and DMC vision)."""
    tasks = {canonical_task(t) for t in tasks}
    files = {"atari": OFFICIAL_ATARI, "dmc": OFFICIAL_DMC}
    runs = []
    for suite in sorted({t.split("_")[0] for t in tasks} & set(files)):
        runs += [
            r
            for r in load_official(load_package_json(files[suite]))
            if r.task in tasks and r.method == method
        ]
    return runs


def load_inputs(
    paths: Iterable[str | Path], method: str = DEFAULT_METHOD, episodes: str = "eval"
) -> list[Run]:
    """Runs from a mix of run directories, parents of run directories and official JSON files.

    `method` names our run directories; official-format files keep their own method names.
    """
    runs: list[Run] = []
    for path in map(Path, paths):
        if path.is_file():
            runs.extend(load_official(path))
        elif is_run_dir(path):
            runs.append(load_run(path, method, episodes))
        elif path.is_dir():
            found = sorted(p.parent for p in path.rglob("config.yaml") if is_run_dir(p.parent))
            if not found:
                print(f"warning: no run directories under {path}", file=sys.stderr)
            runs.extend(load_run(p, method, episodes) for p in found)
        else:
            raise FileNotFoundError(f"no such run directory or score file: {path}")
    for run in runs:
        if not len(run.xs):
            print(f"note: {run.source} has no finished episodes yet", file=sys.stderr)
        elif run.mode != episodes:
            print(
                f"note: {run.source} has no eval episodes; using its train episodes",
                file=sys.stderr,
            )
    return runs

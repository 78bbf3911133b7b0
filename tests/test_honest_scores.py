"""Issue 8: `scores` and `plot` that cannot mislead, through the real `dreamerv2-torch` entry
point: runs off the paper's Atari protocol or short of the budget are refused (or loudly marked),
seeds come from the configs, pixel and proprio DMC runs stay apart, short runs are drawn at their
real frames, and malformed score files are one-line errors naming the file."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from dreamerv2_torch import presets
from dreamerv2_torch.config import to_dict
from dreamerv2_torch.curves import load_inputs
from dreamerv2_torch.plot import build_curves, draw, legend_label

EXE = shutil.which("dreamerv2-torch")
ENTRY = [EXE] if EXE else [sys.executable, "-m", "dreamerv2_torch"]


def cli(*args):
    return subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=120)


def run_dir(root: Path, name: str, preset_names, episodes, **overrides) -> Path:
    path = root / name
    path.mkdir(parents=True)
    config = presets.resolve(preset_names, overrides)
    (path / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    lines = [json.dumps({"mode": "eval", "return": r, "length": 100, "frames": f})
             for f, r in episodes]
    (path / "scores.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_debug_atari_runs_are_not_a_table_1(tmp_path):
    for seed in (0, 1):  # the two 100-step-episode debug runs
        run_dir(tmp_path, f"pong{seed}", ["atari", "debug"], [(1000, -21.0), (2000, -20.0)],
                seed=seed)
    out = cli("scores", str(tmp_path))
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert "does not follow the paper's Atari protocol" in out.stderr
    assert "time limit 100 (paper 27000)" in out.stderr
    assert "rssm.deter 32 (paper 600)" in out.stderr
    out = cli("scores", str(tmp_path), "--allow-nonstandard")
    assert out.returncode == 2 and "short of the 200M-frame budget" in out.stderr
    assert "--frames 2000" in out.stderr
    out = cli("scores", str(tmp_path), "--allow-nonstandard", "--frames", "2000")
    assert out.returncode == 0 and "[NOT the paper's protocol]" in out.stdout


def test_short_runs_are_refused_unless_allowed_and_seeds_come_from_configs(tmp_path):
    for name in ("a", "a_copy"):  # two folders of the same seed are one seed
        run_dir(tmp_path, name, ["atari"], [(1e6, -20.0), (2e6, -18.0)], seed=3)
    out = cli("scores", str(tmp_path))
    assert out.returncode == 2 and "--allow-short" in out.stderr
    out = cli("scores", str(tmp_path), "--allow-short", "--format", "json")
    assert out.returncode == 0 and "WARNING" in out.stderr
    report = json.loads(out.stdout)
    assert report["per_game"][0]["methods"]["dreamerv2-torch"]["seeds"] == 1
    assert report["aggregates"][0]["seeds"] == "1"


def test_pixel_and_proprio_dmc_runs_stay_apart_and_short_runs_at_real_frames(tmp_path):
    run_dir(tmp_path, "pixels", ["dmc_vision"], [(1000, 10.0), (2000, 30.0)])
    run_dir(tmp_path, "proprio", ["dmc_proprio"], [(1000, 50.0), (2000, 90.0)])
    runs = load_inputs([tmp_path])
    assert sorted(r.method for r in runs) == ["dreamerv2-torch (pixels)",
                                              "dreamerv2-torch (proprio)"]
    records = build_curves(runs)
    means = {r["method"]: r for r in records if r["seed"] == "mean"}
    assert len(means["dreamerv2-torch (proprio)"]["xs"]) > 1  # not one point at 10k
    assert max(means["dreamerv2-torch (proprio)"]["xs"]) == 2000
    assert legend_label("x", 1) == "x (1 seed)" and legend_label("x", 3) == "x (3 seeds)"
    fig = draw(records, tmp_path / "c.png", {})
    for ax in fig.axes:
        if ax.get_visible():  # the legend sits right of the panel, off the curves and lines
            legend = ax.get_legend()
            assert legend is not None and legend.get_bbox_to_anchor().x0 >= ax.bbox.x1 - 1


def test_malformed_score_files_are_one_line_errors_naming_the_file(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[{")
    no_xs = tmp_path / "no_xs.json"
    no_xs.write_text(json.dumps([{"task": "atari_pong", "method": "m", "seed": 0, "ys": [1]}]))
    uneven = tmp_path / "uneven.json"
    uneven.write_text(json.dumps([{"task": "atari_pong", "method": "m", "seed": 0,
                                   "xs": [1, 2], "ys": [1]}]))
    for command in ("scores", "plot"):
        for path, words in ((bad_json, "not valid JSON"), (no_xs, "lacks xs"),
                            (uneven, "same length")):
            out = cli(command, str(path), *(["-o", str(tmp_path / "c.png")]
                                            if command == "plot" else []))
            assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
            (line,) = out.stderr.strip().splitlines()
            assert str(path) in line and words in line, line
    assert not np.any([p.suffix == ".png" for p in tmp_path.iterdir()])

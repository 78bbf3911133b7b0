"""`dreamerv2-torch eval` on a checkpoint of a tiny `debug` run: statistics, scores.jsonl lines,
best/worst videos, an untouched checkpoint, seeding, and clear errors for bad input."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dreamerv2_torch.curves import load_run
from dreamerv2_torch.evaluation import eval_main, evaluate
from dreamerv2_torch.logger import read_jsonl


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("eval") / "debug"
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                          "--task", "dummy_discrete", "--steps", "300", "--threads", "1",
                          "--logdir", str(logdir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return logdir


@pytest.fixture
def run(trained, tmp_path):
    """A private copy, so each test sees the run as training left it."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_eval_through_the_cli(run):
    before = {name: digest(run / name) for name in ("checkpoint.pt", "config.yaml")}
    lines = len(read_jsonl(run / "scores.jsonl"))
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "eval", "--logdir", str(run),
                          "--episodes", "3"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "return: mean" in out.stdout and "min" in out.stdout and "max" in out.stdout
    assert "length: mean" in out.stdout
    scores = read_jsonl(run / "scores.jsonl")
    new = scores[lines:]
    assert len(new) == 3
    assert all(s["mode"] == "eval" and s["source"] == "eval_cmd" and s["frames"] == 300
               and s["checkpoint"] == "checkpoint.pt" and s["seed"] == 20_000 for s in new)
    for name in ("eval_cmd_best", "eval_cmd_worst"):
        assert (run / "videos" / name / "300.mp4").stat().st_size > 0
    assert {name: digest(run / name) for name in before} == before
    # The curve readers count these episodes at the checkpoint's frames.
    curve = load_run(run)
    assert curve.mode == "eval" and (curve.xs == 300).sum() >= 3


def test_seeded_and_without_video(run):
    first = evaluate(run, 2, seed=5, video=False)
    second = evaluate(run, 2, seed=5, video=False)
    assert first["returns"] == second["returns"] and first["seed"] == 5
    assert first["episodes"] == 2 and first["min"] <= first["mean"] <= first["max"]
    assert first["videos"] == [] and not (run / "videos" / "eval_cmd_best").exists()
    prev = evaluate(run, 1, checkpoint=run / "checkpoint.prev.pt", video=False)
    assert Path(prev["checkpoint"]).name == "checkpoint.prev.pt"
    assert read_jsonl(run / "scores.jsonl")[-1]["checkpoint"] == "checkpoint.prev.pt"


def test_missing_run_is_exit_2(tmp_path, capsys):
    assert eval_main(["--logdir", str(tmp_path / "nothing")]) == 2
    assert "holds no dreamerv2-torch run" in capsys.readouterr().err


def test_corrupt_or_missing_checkpoint_is_exit_2(tmp_path, trained, capsys):
    logdir = tmp_path / "copy"
    logdir.mkdir()
    shutil.copy(trained / "config.yaml", logdir)
    assert eval_main(["--logdir", str(logdir)]) == 2
    assert "no checkpoint in" in capsys.readouterr().err
    (logdir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert eval_main(["--logdir", str(logdir)]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert (logdir / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    assert not (logdir / "scores.jsonl").exists()
    assert eval_main(["--logdir", str(trained), "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err


def test_checkpoint_of_another_config_is_exit_2(run, capsys):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("deter: 32", "deter: 64"))
    assert eval_main(["--logdir", str(run), "--episodes", "1"]) == 2
    assert "rssm.deter: saved 32, given 64" in capsys.readouterr().err

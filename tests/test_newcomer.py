"""Issue 8, a newcomer's first hour, through the real `dreamerv2-torch` entry point: a `debug` run
that ends on its own, the projected wall-clock line, plain progress lines, the rate after a
resume."""

import shutil
import subprocess
import sys

import pytest

from dreamerv2_torch import presets
from dreamerv2_torch.logger import read_jsonl

EXE = shutil.which("dreamerv2-torch")
ENTRY = [EXE] if EXE else [sys.executable, "-m", "dreamerv2_torch"]


def cli(*args, check=True, timeout=300, input=None):
    out = subprocess.run([*ENTRY, *args], capture_output=True, text=True, timeout=timeout,
                         input=input)
    if check and out.returncode:
        raise AssertionError(f"exit {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("newcomer") / "debug"
    out = cli("train", "--preset", "debug", "--task", "dummy_discrete", "--threads", "1",
              "--logdir", str(logdir))
    return logdir, out


def test_debug_preset_has_a_short_budget():
    assert presets.resolve(["debug"]).steps <= 1000


def test_debug_run_finishes_and_says_how_long_the_whole_run_takes(debug_run):
    logdir, out = debug_run
    steps = presets.resolve(["debug"]).steps
    assert f"Training finished at {steps} policy steps" in out.stdout
    assert "threads 1 (OpenMP wait policy " in out.stdout.splitlines()[0]
    (projection,) = [line for line in out.stdout.splitlines() if "Projected wall-clock" in line]
    assert "s per update" in projection and "policy steps/s" in projection


def test_plain_progress_lines_once_per_log_every(debug_run):
    logdir, out = debug_run
    lines = [line for line in out.stderr.splitlines() if line.startswith("train ")]
    config = presets.resolve(["debug"])
    # One per log_every frames plus the last one; never a rate of 0, an unknown ETA, or two speeds.
    assert len(lines) <= config.steps // config.log_every + 1, lines
    for line in lines:
        assert " 0 frames/s" not in line and "ETA ?" not in line and "fps=" not in line, line
        assert line.count("frames/s") <= 1
    assert "image_mse=" in lines[-1]


def test_rate_right_after_a_resume_is_the_real_one(debug_run):
    logdir, _ = debug_run
    before = [m["fps"] for m in read_jsonl(logdir / "metrics.jsonl") if "fps" in m]
    cli("train", "--preset", "debug", "--task", "dummy_discrete", "--threads", "1",
        "--logdir", str(logdir), "--steps", "800")
    after = [m["fps"] for m in read_jsonl(logdir / "metrics.jsonl") if "fps" in m][len(before):]
    assert after and max(after) < 5 * max(before), (before, after)


def test_train_with_only_the_logdir_resumes_with_the_saved_config(debug_run):
    logdir, _ = debug_run
    out = cli("train", "--logdir", str(logdir), "--steps", "900")
    assert "Resumed from step" in out.stdout and "Training finished at 900" in out.stdout


def test_config_file_is_applied_and_named_in_errors(debug_run, tmp_path):
    logdir, _ = debug_run
    good = tmp_path / "bigger.yaml"
    good.write_text("rssm:\n  deter: 64\n")
    out = cli("train", "--preset", "debug", "--task", "dummy_discrete", "--config", str(good),
              "--logdir", str(logdir), check=False)
    # The file was read: its value reaches the resume check, which refuses the changed model.
    assert out.returncode == 2 and "rssm.deter: saved 32, given 64" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("rssm:\n  detr: 64\n")
    out = cli("train", "--config", str(bad), "--logdir", str(tmp_path / "new"), check=False)
    assert out.returncode == 2 and f"--config {bad}" in out.stderr and "rssm.deter" in out.stderr
    assert not (tmp_path / "new").exists()


def test_no_prefix_matching(tmp_path):
    out = cli("train", "--configs", "my.yaml", "--logdir", str(tmp_path / "a"), check=False)
    assert out.returncode != 0 and "unknown preset" not in out.stderr
    out = cli("train", "--preset", "debug", "--ste", "5", "--logdir", str(tmp_path / "b"),
              check=False)
    assert out.returncode != 0 and not (tmp_path / "b").exists()
    assert cli("eval", "--log", str(tmp_path), check=False).returncode == 2


def test_help_version_and_presets_listing():
    help_text = cli("train", "--help").stdout
    assert "--preset NAME" in help_text and "--config FILE.yaml" in help_text
    assert "advanced (speed switches" in help_text
    assert cli("--version").stdout.startswith("dreamerv2-torch ")
    listing = cli("presets").stdout
    for name in presets.PRESETS:
        assert f"{name}: {presets.PURPOSES[name]}" in listing
    assert "steps: 50000000" in listing and "prefill: 50000" in listing and "e+0" not in listing
    piped = subprocess.run(" ".join(ENTRY) + " presets | head -n 2", shell=True,
                           capture_output=True, text=True, timeout=60)
    assert piped.stdout.count("\n") == 2 and "Traceback" not in piped.stderr, piped.stderr


def test_missing_headless_opengl_is_one_line_with_the_install_hint(tmp_path):
    import ctypes.util
    import os

    pytest.importorskip("dm_control")
    if ctypes.util.find_library("OSMesa"):
        pytest.skip("OSMesa is installed here: its absence cannot be shown")
    logdir = tmp_path / "pixels"
    out = subprocess.run([*ENTRY, "train", "--preset", "dmc_vision", "debug", "--logdir",
                          str(logdir)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MUJOCO_GL": "osmesa"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert "apt-get install -y libegl1" in line and "MUJOCO_GL=osmesa" in line
    assert not logdir.exists()  # the env is built before anything is written


def test_openmp_threads_sleep_while_waiting_unless_the_user_chose():
    import os

    code = "import os, dreamerv2_torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OMP_WAIT_POLICY": "ACTIVE"})
    assert out.stdout.strip() == "ACTIVE"

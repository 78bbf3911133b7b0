"""benchmarks/gpu_check.sh runs green on a CPU at tiny sizes, so that the first (scarce) GPU run
does not die on a typo; and its offline install step fails clearly without wheels (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("ale_py")  # the end-to-end section trains on atari_boxing


def test_gpu_check_runs_green_on_cpu_tiny(tmp_path):
    env = {**os.environ, "NO_INSTALL": "1", "PYTHON": sys.executable, "OUT": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    cmd = [str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny",
           "--batches", "4", "--variants", "fp32", "--iters", "1", "--warmup", "1",
           "--act-envs", "2", "--e2e-s", "15", "--resume-s", "10", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"correctness", "tests", "speed", "e2e"}
    assert all(s["ok"] for s in sections.values())
    assert sections["correctness"]["sync_free"] is True
    assert max(sections["correctness"]["fp32"].values()) == 0.0  # CPU against itself
    assert sections["speed"]["rows"][0]["update"] > 0
    e2e = sections["e2e"]
    assert e2e["resume"]["resumed"] and e2e["policy_steps_per_s"] > 0
    assert e2e["official_boxing_1m"] == pytest.approx(37.7, abs=0.05)
    summary = (tmp_path / "gpu_check.md").read_text()
    assert "## correctness: ok" in summary and "## e2e: ok" in summary
    assert summary.strip() in proc.stdout  # printed as well as written
    assert report["env"]["cpu_model"] and report["env"]["isa"]


def test_offline_install_refuses_an_empty_wheel_folder(tmp_path):
    proc = subprocess.run([str(ROOT / "tools" / "gpu" / "install_offline.sh"), sys.executable,
                           str(tmp_path / "none"), str(tmp_path / "venv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "prepare_wheels.sh" in proc.stderr
    assert not (tmp_path / "venv").exists()  # nothing written before the error


def test_e2e_leaves_a_finished_run_to_exit_on_its_own(tmp_path, monkeypatch):
    """A run that printed "Training finished at" before its time was up is not interrupted in its
    teardown (under load a SIGINT there ended the resume with -2 and failed the check)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_e2e

    fake = tmp_path / "python"  # stands in for `python -m dreamerv2_torch train ...`
    fake.write_text("#!/bin/sh\necho 'Task atari_boxing, device cpu'\n"
                    "echo 'Training finished at 500 policy steps'\nsleep 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(gpu_e2e.sys, "executable", str(fake))
    args = SimpleNamespace(device="cpu", tiny=True, threads=0)
    out = gpu_e2e._train(args, ["debug"], tmp_path / "run", 0.5, tmp_path / "log")
    assert out["rc"] == 0 and out["wall_s"] >= 2.5


def test_the_tests_section_needs_nothing_the_gpu_machine_lacks(tmp_path, monkeypatch):
    """The GPU machine has torch, numpy, tensorboard, imageio, opencv and pytest, plus the wheels
    of tools/gpu/requirements.txt; not the dev extras. A rehearsal in such a venv found `pytest -m
    gpu` collecting every test file and failing on `import hypothesis`."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    blocked = tmp_path / "blocked"
    for name in ("hypothesis", "dm_control", "crafter", "minatar", "imageio_ffmpeg", "ray"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not on the GPU machine')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(blocked),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest")  # its plugin is absent there
    result = gpu_check.section_tests(SimpleNamespace(device="cpu"))
    assert result["ok"], result

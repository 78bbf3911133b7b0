"""Bad values, bad data, kills and stops (issue 9): each refused before anything is written, or
caught where it arises with one clear message."""

import subprocess
import sys

import pytest

from dreamerv2_torch import presets


def test_eval_every_zero_is_refused_before_the_logdir_exists(tmp_path):
    # It used to loop forever at one step, writing eval episodes.
    with pytest.raises(presets.ConfigError, match="eval_every"):
        presets.resolve(["debug"], {"eval_every": 0})
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
                          "--task", "dummy_discrete", "--eval_every", "0",
                          "--logdir", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "eval_every" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()

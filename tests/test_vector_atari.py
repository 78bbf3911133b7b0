"""ale-py's vector env (`atari_vector`) gives the transitions of `envs/atari.py`: with sticky
actions and NOOPs off (their random streams differ by design) the same frames, rewards and flags
for every env through the driver, across episode ends by the time limit (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py.vector_env")
pytest.importorskip("cv2")

from dreamerv2_torch.driver import Driver, SerialEnvs  # noqa: E402
from dreamerv2_torch.envs.atari import Atari  # noqa: E402
from dreamerv2_torch.envs.base import TimeLimit  # noqa: E402
from dreamerv2_torch.vector_atari import VectorAtari  # noqa: E402

N, LIMIT, STEPS = 2, 40, 100  # the time limit ends each episode twice within the run


def collect(envs) -> list[list[dict]]:
    """Every transition of each env, with actions from one seeded random policy."""
    rng = np.random.default_rng(0)
    out = [[] for _ in range(N)]
    driver = Driver(envs)
    driver.on_steps.append(lambda t, i: out[i].append(t))
    driver.on_resets.append(lambda t, i: out[i].append(t))
    act = envs.act_space["action"]

    def policy(obs, state):
        return {"action": np.stack([act.sample(rng) for _ in range(N)])}, state

    driver(policy, steps=STEPS * N)
    envs.close()
    return out


def test_same_transitions_as_the_per_env_atari():
    common = dict(sticky_prob=0.0, noop_max=0, all_actions=True)
    vector = VectorAtari("boxing", N, seed=0, time_limit=LIMIT, **common)
    serial = SerialEnvs([TimeLimit(Atari("boxing", seed=i, **common), LIMIT) for i in range(N)])
    assert vector.obs_space["image"].shape == serial.obs_space["image"].shape
    got, want = collect(vector), collect(serial)
    for i in range(N):
        assert len(got[i]) == len(want[i]) >= STEPS
        assert sum(t["is_first"] for t in got[i]) == sum(t["is_first"] for t in want[i]) >= 3
        for a, b in zip(got[i], want[i]):
            for key in ("image", "reward", "is_first", "is_last", "is_terminal", "action"):
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_sticky_actions_and_noops_on_still_run_and_reset():
    vector = VectorAtari("boxing", N, seed=0, time_limit=LIMIT)
    got = collect(vector)
    assert all(sum(t["is_last"] for t in g) >= 2 for g in got)


def test_training_with_atari_vector_through_the_cli(tmp_path):
    import subprocess
    import sys

    from dreamerv2_torch.logger import read_jsonl

    base = [sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug", "--threads",
            "1", "--log_keys_video", "--atari_vector", "True", "--envs", "2"]
    subprocess.run(base + ["--task", "atari_boxing", "--steps", "250",
                           "--logdir", str(tmp_path / "run")],
                   check=True, capture_output=True, timeout=300)
    scores = read_jsonl(tmp_path / "run" / "scores.jsonl")
    assert sum(s["mode"] == "train" for s in scores) >= 2  # both games end at the 100-step limit
    bad = subprocess.run(base + ["--task", "dummy_discrete", "--logdir", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode and "atari_vector needs an atari_<game> task" in bad.stderr + bad.stdout
    assert not (tmp_path / "bad").exists()

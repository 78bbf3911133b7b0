"""The full agent learns: a small pixel task where the correct action is drawn in the image
(`dummy_reveal`: one bright quadrant, reward 1 for choosing it; random play scores ~25 of 100).
Marked slow (a few minutes on 2 CPU cores); run with `pytest -m slow`. The same run is
`benchmarks/learn_reveal.sh`."""

import subprocess
import sys

import pytest

from dreamerv2_torch.logger import read_jsonl

# A reduced model (16x16 latents, RSSM 128, 16-channel convs) and a faster world-model learning
# rate so the reward model is learned before the policy commits; everything else is the agent.
REVEAL = [
    "--preset", "debug", "--task", "dummy_reveal", "--time_limit", "0",
    "--dataset.batch", "16", "--dataset.length", "50", "--replay.minlen", "50",
    "--replay.maxlen", "50", "--rssm.stoch", "16", "--rssm.discrete", "16",
    "--rssm.deter", "128", "--rssm.hidden", "128", "--encoder.cnn_depth", "16",
    "--decoder.cnn_depth", "16", "--reward_head.units", "128", "--discount_head.units", "128",
    "--actor.units", "128", "--critic.units", "128", "--imag_horizon", "15",
    "--train_every", "2", "--prefill", "1000", "--model_opt.lr", "1e-3",
    "--actor_opt.lr", "1e-4", "--critic_opt.lr", "1e-4", "--actor_ent", "1e-2",
    "--eval_every", "500", "--eval_eps", "2", "--log_every", "500",
]


@pytest.mark.slow
def test_agent_solves_the_reveal_task(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dreamerv2_torch", "train", *REVEAL,
                          "--logdir", str(tmp_path / "reveal"), "--steps", "3000"],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr
    evals = [e["return"] for e in read_jsonl(tmp_path / "reveal" / "scores.jsonl")
             if e["mode"] == "eval"]
    assert evals[0] < 50  # the random-ish start
    assert sum(evals[-2:]) / 2 >= 90, evals  # near the optimum of 100

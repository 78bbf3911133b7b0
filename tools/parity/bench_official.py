"""Seconds per update of the official DreamerV2 (TF 2.15 CPU, graph mode) on this machine.

The "official TF2" column of docs/performance.md's per-CPU table: the official `Agent.train`
(world model, imagination, actor-critic, three optimisers, as `train.py` calls it) on a synthetic
Atari-shaped batch (64×64×1 uint8, 18 one-hot actions), the `atari` preset at `--batch`×50.
Run in the parity virtualenv only (tools/parity/setup_venv.sh), interleaved with ours:

  for r in 1 2; do
    /work/parity-venv/bin/python tools/parity/bench_official.py --batch 16
    .venv/bin/python benchmarks/bench_update.py --batch 16 --precision 32
  done
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from official import common, make_config, official_agent, tf  # applies the shims on import

ACTIONS = 18


def spaces():
    import gym

    obs = {"image": gym.spaces.Box(0, 255, (64, 64, 1), np.uint8),
           "reward": gym.spaces.Box(-np.inf, np.inf, (), np.float32),
           "is_first": gym.spaces.Box(0, 1, (), bool), "is_last": gym.spaces.Box(0, 1, (), bool),
           "is_terminal": gym.spaces.Box(0, 1, (), bool)}
    act = gym.spaces.Box(0, 1, (ACTIONS,), np.float32)
    act.n = ACTIONS  # the official OneHotAction space carries `n`
    return obs, {"action": act}


def batch(size: int, length: int) -> dict:
    rng = np.random.default_rng(0)
    shape = (size, length)
    is_first = np.zeros(shape, bool)
    is_first[:, 0] = True
    return {"image": rng.integers(0, 256, shape + (64, 64, 1), dtype=np.uint8),
            "action": np.eye(ACTIONS, dtype=np.float32)[rng.integers(0, ACTIONS, shape)],
            "reward": rng.normal(size=shape).astype(np.float32), "is_first": is_first,
            "is_last": rng.random(shape) < 0.01, "is_terminal": rng.random(shape) < 0.01}


def cpu_model() -> str:
    # hardware.cpu_model's rule; this runs in the parity venv, where our package is not installed
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f
                     if line.startswith("model name")), "unknown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    tf.config.run_functions_eagerly(False)  # official.py turns graphs off for the goldens
    config = make_config("atari", {"precision": 32, "dataset.batch": args.batch,
                                   "dataset.length": args.length})
    obs_space, act_space = spaces()
    agent = official_agent.Agent(config, obs_space, act_space, common.Counter(0))
    data = {k: tf.convert_to_tensor(v) for k, v in batch(args.batch, args.length).items()}
    times = []
    for _ in range(args.warmup + args.iters):
        start = time.perf_counter()
        _, metrics = agent.train(data)
        float(metrics["model_loss"])  # wait for the whole step
        times.append(time.perf_counter() - start)
    timed = times[args.warmup:]
    print(f"# {cpu_model()}, {os.cpu_count()} cores, official dreamerv2 (TF {tf.__version__}), "
          f"load {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"official fp32 atari {args.batch}x{args.length}: s/update median "
          f"{statistics.median(timed):.3f}, min {min(timed):.3f}, first {times[0]:.1f}, "
          f"all {[round(t, 3) for t in timed]}")


if __name__ == "__main__":
    main()

"""Seconds per DreamerV2 update and its parts, acting speed, replay sampling, memory, FLOPs, floor.

One update = world model (forward, backward, Adam) + imagination (rollout with the actor, reward
and discount heads) + actor-critic (losses, backward, two Adam steps, slow critic), exactly
`Agent.train` on a synthetic replay batch of the task's shapes. Times are medians of `--iters`
updates after `--warmup` ones (the first update builds oneDNN kernels).

  python benchmarks/bench_update.py --preset atari --batch 16 --precision 16
  python benchmarks/bench_update.py --preset atari --batch 16 --floor --acting --replay
  python benchmarks/bench_update.py --preset atari --batch 16 --compare plain32 fp32 plain16 bf16

`--compare` runs each variant (a name below or `name:key=value,key=value`) in its own process, in
interleaved rounds, so that load from other users of a shared machine hits all variants alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import floor as floor_lib
import numpy as np
import torch

from dreamerv2_torch import agent as agent_module
from dreamerv2_torch import hardware, presets
from dreamerv2_torch.agent import Agent
from dreamerv2_torch.envs.base import FLAG_SPACES, Space
from dreamerv2_torch.replay import Replay, time_sample
from dreamerv2_torch.training import default_env_factory

_PLAIN = "malloc_reuse=off,conv_matmul=off,batched_grads=off"
VARIANTS = {  # name -> config overrides
    "plain32": f"precision=32,{_PLAIN}", "fp32": "precision=32",
    "plain16": f"precision=16,{_PLAIN}", "bf16": "precision=16",
    "fp32+jit": "precision=32,jit=true", "bf16+jit": "precision=16,jit=true",
    "bf16-1thread": "precision=16,threads=1", "fp32-1thread": "precision=32,threads=1",
}


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="atari", help="comma-separated presets")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", type=int, default=16, choices=(16, 32))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--set", default="", help="more overrides: key=value,key=value")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--floor", action="store_true", help="FLOPs and the matmul floor")
    p.add_argument("--acting", action="store_true", help="policy and env step times")
    p.add_argument("--act-envs", type=int, default=0,
                   help="with --acting: also the policy latency at this many envs")
    p.add_argument("--act-steps", type=int, default=200, help="policy calls timed by --acting")
    p.add_argument("--replay", action="store_true", help="replay sampling time")
    p.add_argument("--replay-fill", type=int, default=0, help="steps to fill for replay RSS")
    p.add_argument("--compare", nargs="*", help="variants: names or name:key=value,...")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds for --compare")
    p.add_argument("--json", action="store_true", help="print one JSON line (for --compare)")
    return p.parse_args(argv)


def _overrides(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


# Not a config key: `force_bf16=on` runs bf16 autocast even on a CPU without native bf16
# (AVX2-only), to measure what `agent.bf16_supported` saves there. Benchmark only.
FORCE_BF16 = "force_bf16"


def make_config(args: argparse.Namespace):
    sets = _overrides(args.set)
    sets.pop(FORCE_BF16, None)
    overrides = {"device": args.device, "precision": args.precision, "threads": args.threads,
                 "dataset.batch": args.batch, "dataset.length": args.length, **sets}
    return presets.resolve(args.preset.split(","), overrides)


def make_env(config):
    """The task's env (for its spaces and step time), or None if its suite is not installed."""
    try:
        return default_env_factory(config, Path(tempfile.mkdtemp()))(config.seed, "train")
    except Exception as error:  # noqa: BLE001 - any missing suite: fall back to Atari shapes
        print(f"# no env for {config.task} ({error!r}); Atari-shaped synthetic data",
              file=sys.stderr)
        return None


def spaces(env, config):
    if env is not None:
        return env.obs_space, env.act_space
    channels = 1 if config.atari_grayscale else 3
    obs = {"image": Space((*config.render_size, channels), np.uint8), **FLAG_SPACES}
    return obs, {"action": Space((18,), np.float32, 0.0, 1.0, discrete=True)}


def synthetic_batch(obs_space, act_space, batch: int, length: int, seed: int = 0) -> dict:
    """A replay-shaped batch: random pixels and vectors, one-hot actions, is_first at t = 0."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, space in obs_space.items():
        shape = (batch, length, *space.shape)
        if np.dtype(space.dtype) == np.uint8:
            out[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif np.dtype(space.dtype) == bool:
            out[key] = rng.random(shape) < 0.01
        else:
            out[key] = rng.normal(size=shape).astype(space.dtype)
    out["is_first"] = np.zeros((batch, length), bool)
    out["is_first"][:, 0] = True
    act = act_space["action"]
    out["action"] = np.stack([[act.sample(rng) for _ in range(length)] for _ in range(batch)])
    return out


PARTS = ("world_model", "imagination", "actor_critic")


def update_parts(agent: Agent, batch: dict, wrap=None) -> dict[str, float]:
    """One `Agent.train`, timed in its three parts (the same calls in the same order).

    `wrap(part)` may return a context manager entered around each part (e.g. a FLOP recorder).
    """
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    wrap = wrap or (lambda part: contextlib.nullcontext())
    times, out = {}, {}
    start = time.perf_counter()
    data = agent.wm.preprocess(agent._tensors(batch))
    calls = {
        "world_model": lambda: agent.train_world_model(data)[1],
        "imagination": lambda: agent.imagine(out["world_model"], data["is_terminal"]),
        "actor_critic": lambda: agent.train_behavior(out["world_model"], data["is_terminal"],
                                                     out["imagination"]),
    }
    for part in PARTS:
        mark = time.perf_counter()
        with wrap(part):
            out[part] = calls[part]()
            sync()
        times[part] = time.perf_counter() - (start if part == "world_model" else mark)
    times["update"] = time.perf_counter() - start
    return times


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kB


def acting(agent: Agent, env, obs_space, act_space, steps: int = 200) -> dict[str, float]:
    """ms per `agent.policy` call on one observation, and per env step with random actions."""
    rng = np.random.default_rng(0)
    batch = synthetic_batch(obs_space, act_space, 1, 1)
    obs = env.reset() if env is not None else {k: v[:, 0][0] for k, v in batch.items()}
    state, times, env_times = None, [], []
    for i in range(steps + 10):
        start = time.perf_counter()
        _, state = agent.policy({k: np.asarray(v)[None] for k, v in obs.items()}, state)
        if i >= 10:
            times.append(time.perf_counter() - start)
        if env is not None:
            start = time.perf_counter()
            obs = env.step({"action": act_space["action"].sample(rng)})
            env_times.append(time.perf_counter() - start)
            if obs["is_last"]:
                obs = env.reset()
    out = {"policy_ms": 1e3 * statistics.median(times)}
    if env_times:
        out["env_step_ms"] = 1e3 * statistics.median(env_times)
    return out


def policy_latency(agent: Agent, obs_space, act_space, envs: int, steps: int) -> float:
    """ms per `agent.policy` call on a batch of `envs` observations (synthetic, device synced)."""
    batch = synthetic_batch(obs_space, act_space, envs, 1)
    obs = {k: v[:, 0] for k, v in batch.items() if k != "action"}
    state, times = None, []
    for i in range(steps + 10):
        start = time.perf_counter()
        _, state = agent.policy(obs, state)  # returns numpy: the device is synchronised
        if i >= 10:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def replay_stats(obs_space, act_space, args, fill: int) -> dict[str, float]:
    """Sampling time of (batch, length) chunks, and RSS per stored step after `fill` steps."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        replay = Replay(Path(tmp), capacity=max(fill, 100_000), minlen=args.length,
                        maxlen=args.length)
        eplen, before, added = 1000, rss_gib(), 0
        while added < max(fill, 20 * eplen):
            episode = synthetic_batch(obs_space, act_space, 1, eplen + 1, seed=added)
            episode = {k: v[0] for k, v in episode.items()}
            for key, space in obs_space.items():  # compressible frames: fast npz writes
                if np.dtype(space.dtype) == np.uint8:
                    episode[key] = np.zeros_like(episode[key]) + np.arange(eplen + 1)[
                        (...,) + (None,) * len(space.shape)].astype(np.uint8)
            replay.add_episode(episode)
            added += eplen
        if fill:
            out["replay_bytes_per_step"] = (rss_gib() - before) * 2**30 / added
            out["replay_gib_2m_steps"] = out["replay_bytes_per_step"] * 2e6 * 51 / 50 / 2**30
        out["replay_sample_ms"] = 1e3 * time_sample(replay, args.batch, args.length)
    return out


def run(args: argparse.Namespace) -> dict:
    config = make_config(args)
    env = make_env(config)
    obs_space, act_space = spaces(env, config)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    if _overrides(args.set).get(FORCE_BF16) == "on":
        agent_module.bf16_supported = lambda device: True
    agent = Agent(obs_space, act_space, config)
    batch = synthetic_batch(obs_space, act_space, args.batch, args.length)
    base_rss = rss_gib()
    compile_start = time.perf_counter()
    warm = [update_parts(agent, batch) for _ in range(args.warmup)]
    result = {"first_update_s": warm[0]["update"] if warm else None,
              "warmup_s": time.perf_counter() - compile_start}
    timed = [update_parts(agent, batch) for _ in range(args.iters)]
    for key in timed[0]:
        result[key] = statistics.median(t[key] for t in timed)
    result["update_min"] = min(t["update"] for t in timed)
    result["updates"] = [round(t["update"], 3) for t in timed]
    result["rss_before_gib"], result["peak_rss_gib"] = base_rss, peak_rss_gib()
    if agent.device.type == "cuda":
        result["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    result["bf16"], result["threads"] = agent.bf16, torch.get_num_threads()
    result.update(hardware.describe())
    if args.acting:
        result.update(acting(agent, env, obs_space, act_space, args.act_steps))
        if args.act_envs:
            result["policy_ms_n"] = policy_latency(agent, obs_space, act_space, args.act_envs,
                                                   args.act_steps)
            result["act_envs"] = args.act_envs
        per_step = result["policy_ms"] + result.get("env_step_ms", 0.0)
        result["policy_steps_per_s"] = 1e3 / (per_step + 1e3 * result["update"]
                                              / config.train_every)
        result["train_every"] = config.train_every
    if args.floor:
        gemms = {}
        update_parts(agent, batch, lambda part: floor_lib.Recorder(gemms.setdefault(part, {})))
        for part in PARTS:
            for key, value in floor_lib.floor(gemms[part], args.device).items():
                result[f"{part}_{key}"] = value
        total = sum((Counter(g) for g in gemms.values()), Counter())
        result.update(floor_lib.floor(total, args.device))
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            result[f"peak_{name}_gflops"] = floor_lib.peak_rate(dtype, args.device) / 1e9
        peak = result["peak_bf16_gflops" if agent.bf16 else "peak_fp32_gflops"]
        result["floor_peak_s"] = result["gflop"] / peak
    if args.replay or args.replay_fill:
        result.update(replay_stats(obs_space, act_space, args, args.replay_fill))
    return result


def compare(args: argparse.Namespace) -> None:
    """Each variant in its own process, interleaved over `--rounds`; one row per variant.

    Round r starts at variant r (mod their number), so that with as many rounds as variants each
    takes each place once: whatever favours a place in the order (the process after a long one,
    a host whose speed drifts) then hits every variant alike."""
    base = [a for a in sys.argv[1:] if a not in args.compare and a != "--compare"]
    print(header())
    rows: dict[str, list[dict]] = {v.partition(":")[0]: [] for v in args.compare}
    for variant in rotated(args.compare, args.rounds):
        name, _, sets = variant.partition(":")
        sets = sets or VARIANTS[name]
        extra = ",".join(filter(None, [args.set, sets]))
        cmd = [sys.executable, __file__, *base, "--json", "--set", extra]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows[name].append(json.loads(out.strip().splitlines()[-1]))
        print(f"# {name}: {rows[name][-1]['updates']}", flush=True)  # each run, for the spread
    floors = "floor_s" in rows[next(iter(rows))][0]
    print("| variant | bf16 ran | s/update | min | world model | imagination | actor-critic | "
          "peak RSS GiB | first update s | policy ms |"
          + (" per-shape floor s | % of it | peak floor s |" if floors else ""))
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if floors else ""))
    for name, results in rows.items():
        updates = [u for r in results for u in r["updates"]]
        med = {k: statistics.median(r[k] for r in results)
               for k in ("world_model", "imagination", "actor_critic", "peak_rss_gib",
                         "first_update_s")}
        print(f"| {name} | {results[0]['bf16']} | {statistics.median(updates):.3f} | "
              f"{min(updates):.3f} | "
              f"{med['world_model']:.3f} | {med['imagination']:.3f} | "
              f"{med['actor_critic']:.3f} | {med['peak_rss_gib']:.2f} | "
              f"{med['first_update_s']:.1f} | {_median(results, 'policy_ms')} |"
              + (_floor_cells(results, statistics.median(updates)) if floors else ""))


def rotated(variants: list[str], rounds: int) -> list[str]:
    """The variants of `rounds` rounds in run order; round r starts at variant r."""
    n = len(variants)
    return [variants[(r + i) % n] for r in range(rounds) for i in range(n)]


def _floor_cells(results: list[dict], update_s: float) -> str:
    floor = statistics.median(r["floor_s"] for r in results)
    peak = statistics.median(r["floor_peak_s"] for r in results)
    return f" {floor:.2f} | {100 * floor / update_s:.0f} % | {peak:.2f} |"


def _median(results: list[dict], key: str) -> str:
    values = [r[key] for r in results if key in r]
    return f"{statistics.median(values):.2f}" if values else "-"


def header() -> str:
    """The CPU model, kind and ISA, cores, torch, load and time: the first line of every output."""
    cpu = hardware.describe()
    return (f"# {cpu['cpu_model']} ({cpu['cpu_detail']}; {cpu['cpu_kind']}: {cpu['isa']}), "
            f"{os.cpu_count()} cores, "
            f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}")


def main() -> None:
    args = parse()
    if args.compare:
        compare(args)
        return
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(header())
    for key, value in result.items():
        print(f"{key:24s} {value:.4g}" if isinstance(value, float) else f"{key:24s} {value}")


if __name__ == "__main__":
    main()

"""End-to-end training speed on this CPU: policy steps/s and updates/s after prefill, before and
after the throughput switches (issue 11; docs/performance.md "End to end").

Each variant is one real `train` run (the Python API, in a child process) of a preset: a short
random prefill, no pretraining, no evaluation and no videos (they are the same work in both
variants and would dominate a short run), then `--steps` training policy steps. The child times
whole update rounds after the first `--warmup` fraction of the steps (`round_window`); the
parent runs the variants interleaved for `--rounds` rounds and prints medians, the ratio
after/before, the peak RSS of each child, the share of the window the learner spent in updates
(`learner busy`: what `overlap` can raise towards 100%), and checks that the updates done equal
the configured replay ratio exactly (1 + pretrain updates, then `train_steps` every `train_every`
policy steps).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_e2e.py --preset atari small --steps 600
    MUJOCO_GL=egl ... python benchmarks/bench_e2e.py --preset dmc_vision --steps 150

Variants: `before` = the official synchronous order, plain path (`envs 1`); `after` = `overlap`
on, plus `atari_vector` for Atari (with `envs 1`); `prefetch` stays `auto` (a no-op on a CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def variants(preset: list[str]) -> dict[str, dict]:
    after = {"overlap": True}
    if preset[0] == "atari":
        after["atari_vector"] = True
    return {"before": {}, "after": after}


def round_window(marks: list[tuple[float, int, int]], warmup: float) -> tuple[int, int]:
    """Indices of the first and last mark, at or after the warmup, right after an update round:
    the timed window then holds whole rounds (`train_every` policy steps and their updates each)
    in every variant. A window cut mid-round (the earlier rule) counted one round more or less
    in one variant than in the other: ~10% in `crafter`'s 50-step runs, which read as a slowdown."""
    start = max(1, int(len(marks) * warmup))
    ends = [i for i in range(start, len(marks)) if marks[i][2] > marks[i - 1][2]]
    if len(ends) < 2:
        raise SystemExit(f"fewer than two update rounds after the warmup in {len(marks)} "
                         "training steps: raise --steps")
    return ends[0], ends[-1]


def updates_due(marks: list[tuple[float, int, int]], train_every: int, train_steps: int,
                pretrain: int) -> int:
    """The updates the configured replay ratio asks for over the whole run (not the window):
    1 + pretrain, then train_steps at the first training step and every train_every policy steps
    after it (`loop.Every`)."""
    rounds = (marks[-1][1] - marks[0][1]) // train_every + 1
    return 1 + pretrain + train_steps * rounds


def child(spec: dict) -> dict:
    """One training run; returns the timed window and the counters (runs in its own process)."""
    import torch

    from dreamerv2_torch import presets
    from dreamerv2_torch.loop import Loop
    from dreamerv2_torch.training import train

    config = presets.resolve(spec["preset"], spec["overrides"])
    marks: list[tuple[float, int, int]] = []  # (time, policy steps, updates) per training step
    plain = Loop.train_step

    def timed(self, transition, worker):
        plain(self, transition, worker)
        if self.pretrained:
            marks.append((time.perf_counter(), self.step, self.updates))
            if len(marks) == spec["steps"]:  # a graceful stop (prefill's length varies)
                self.stop.flag = True

    busy = []  # (start, end) of every update: the learner's share of the window
    update = Loop.update

    def timed_update(self):
        start = time.perf_counter()
        update(self)
        busy.append((start, time.perf_counter()))

    Loop.train_step = timed
    Loop.update = timed_update
    start = time.perf_counter()
    result = train(config, progress=False)
    total = time.perf_counter() - start
    saved = torch.load(f"{config.logdir}/checkpoint.pt", weights_only=True)
    first, last = (marks[i] for i in round_window(marks, spec["warmup"]))
    seconds = last[0] - first[0]
    in_updates = sum(min(b, last[0]) - max(a, first[0]) for a, b in busy
                     if b > first[0] and a < last[0])
    expected = updates_due(marks, config.train_every, config.train_steps, config.pretrain)
    return {"steps_per_s": (last[1] - first[1]) / seconds,
            "updates_per_s": (last[2] - first[2]) / seconds,
            "updates_per_step": (last[2] - first[2]) / (last[1] - first[1]),
            # with a stop, `overlap` keeps the last round due in the checkpoint (`owed`)
            "updates": int(saved["updates"]) + len(saved["owed"]),
            "updates_expected": expected, "steps": result["step"],
            "learner_busy": in_updates / seconds, "window_steps": last[1] - first[1],
            "window_s": seconds, "total_s": total,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", nargs="+", default=["atari", "small"])
    parser.add_argument("--steps", type=int, default=600, help="training policy steps per run")
    parser.add_argument("--prefill", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="fraction of the training steps left out of the timing")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="more overrides for both variants, e.g. task='\"atari_boxing\"'")
    parser.add_argument("--json", help="write all runs here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return

    import torch

    from dreamerv2_torch import hardware

    cpu = hardware.describe()
    print(f"# {cpu['cpu_model']} ({cpu['cpu_detail']}; {cpu['cpu_kind']}: {cpu['isa']}), "
          f"{os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {args.threads}, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# preset {' '.join(args.preset)}: prefill {args.prefill}, pretrain 0, "
          f"{args.steps} training steps, no eval/videos; {args.rounds} interleaved rounds")
    runs: dict[str, list[dict]] = {name: [] for name in variants(args.preset)}
    with tempfile.TemporaryDirectory(prefix="bench_e2e-") as tmp:
        for round_ in range(args.rounds):
            for name, switches in variants(args.preset).items():
                overrides = {"logdir": f"{tmp}/{name}-{round_}", "prefill": args.prefill,
                             "pretrain": 0, "steps": 10**9,
                             "eval_eps": 0, "eval_every": 10**9, "log_every": 10**9,
                             "log_keys_video": (), "checkpoint_every": 0,
                             "threads": args.threads, **switches}
                overrides.update({k: json.loads(v) for k, v in
                                  (item.split("=", 1) for item in args.set)})
                spec = {"preset": args.preset, "overrides": overrides, "warmup": args.warmup,
                        "steps": args.steps}
                out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                                     capture_output=True, text=True)
                line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
                if out.returncode or not line:
                    sys.exit(f"{name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
                run = json.loads(line[0][len("RESULT "):])
                run["load"] = os.getloadavg()[0]
                runs[name].append(run)
                print(f"round {round_ + 1} {name:6s} {run['steps_per_s']:7.2f} steps/s "
                      f"{run['updates_per_s']:6.3f} updates/s, {run['updates_per_step']:.4f} "
                      f"updates/step, updates {run['updates']} (expected "
                      f"{run['updates_expected']}), learner busy {run['learner_busy']:.1%}, "
                      f"peak RSS {run['peak_rss_gib']:.2f} GiB, "
                      f"{run['total_s']:.0f} s, load {run['load']:.2f}", flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in
                  ("steps_per_s", "updates_per_s", "updates_per_step", "learner_busy",
                   "peak_rss_gib")}
           for name, rs in runs.items()}
    exact = all(r["updates"] == r["updates_expected"] for rs in runs.values() for r in rs)
    print("\n| variant | switches | policy steps/s | updates/s | updates per policy step "
          "| learner busy | peak RSS |\n|---|---|---|---|---|---|---|")
    for name, switches in variants(args.preset).items():
        m = med[name]
        text = ", ".join(f"{k} {v}" for k, v in switches.items()) or "official order, plain"
        print(f"| {name} | {text} | {m['steps_per_s']:.2f} | {m['updates_per_s']:.3f} | "
              f"{m['updates_per_step']:.4f} | {m['learner_busy']:.1%} | "
              f"{m['peak_rss_gib']:.2f} GiB |")
    ratio = med["after"]["steps_per_s"] / med["before"]["steps_per_s"]
    print(f"\nafter / before: {ratio:.3f}x policy steps/s (medians of {args.rounds}); updates "
          f"equal the configured replay ratio in every run: {exact}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "args": vars(args), "runs": runs, "medians": med,
                       "ratio": ratio, "replay_ratio_exact": exact}, f, indent=1)


if __name__ == "__main__":
    main()

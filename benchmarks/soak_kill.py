"""kill -9 soak: start a `debug` run, SIGKILL it at random moments, resume, and check the result.

    python benchmarks/soak_kill.py --kills 20 --steps 3000 --logdir /tmp/soak

Each start runs the real CLI in a subprocess (`--checkpoint_every 0.02`, i.e. a checkpoint every
1.2 s, besides the ones after each evaluation) on `dummy_reveal`, whose images show its env's RNG
stream, so a repeated stream would show as two stored episodes with the same images. After the
last kill the run is finished, and `check` asserts: the final counter equals --steps; metrics.jsonl
and scores.jsonl have no duplicate lines and no step going backwards; no two stored episodes (train
or eval) share an image sequence; every file is readable; the final weights are finite. It prints
the kills, resumes, the steps each kill lost (furthest logged step before the kill minus the step
the resume started from) and the duplicates found. `tests/test_soak.py` runs a short version.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dreamerv2_torch.logger import read_jsonl


def command(logdir: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "dreamerv2_torch", "train", "--preset", "debug",
            "--task", "dummy_reveal", "--threads", "1", "--logdir", str(logdir),
            "--steps", str(steps), "--log_every", "20", "--eval_every", "150",
            "--checkpoint_every", "0.02"]


def furthest_logged(logdir: Path) -> int:
    path = logdir / "metrics.jsonl"
    return max((m["step"] for m in read_jsonl(path)), default=0) if path.exists() else 0


def checkpoint_step(logdir: Path) -> int | None:
    path = logdir / "checkpoint.pt"
    if not path.exists():
        return None
    return int(torch.load(path, weights_only=True)["step"])


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns if path.exists() else 0


def soak(logdir: Path, kills: int, steps: int, seed: int = 0, wait=(0.5, 5.0)) -> dict:
    """Kill a run `kills` times (the first in prefill, the others `wait` seconds after the start
    wrote a checkpoint), then finish it; returns the figures."""
    rng = random.Random(seed)
    lost, resumes = [], 0
    for kill in range(kills):
        before = checkpoint_step(logdir)
        proc = subprocess.Popen(command(logdir, steps), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        resumes += before is not None
        # The first kill comes when the first log line appears (in prefill, before any
        # checkpoint), the others at a random moment after this start wrote a checkpoint.
        watched = logdir / ("metrics.jsonl" if kill == 0 else "checkpoint.pt")
        mark = _mtime(watched)
        deadline = time.time() + 300
        while _mtime(watched) == mark and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(rng.uniform(*wait) if kill else 0.0)
        if proc.poll() is not None:
            raise RuntimeError(f"the run ended before its kill:\n{proc.stdout.read()}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        reached, saved = furthest_logged(logdir), checkpoint_step(logdir)
        lost.append(max(0, reached - (saved or 0)))
    out = subprocess.run(command(logdir, steps), capture_output=True, text=True, timeout=1800)
    if out.returncode:
        raise RuntimeError(f"the final run failed:\n{out.stdout}\n{out.stderr}")
    resumes += "Resumed from step" in out.stdout
    return {"kills": kills, "resumes": resumes, "lost_steps_per_kill": lost,
            "duplicates": check(logdir, steps)}


def check(logdir: Path, steps: int) -> int:
    """Assert the finished run is whole (see the module docstring); returns duplicates (0)."""
    state = torch.load(logdir / "checkpoint.pt", weights_only=True)
    assert state["step"] == steps, (state["step"], steps)
    assert all(torch.isfinite(v).all() for v in state["agent"]["nets"].values()
               if v.is_floating_point())
    torch.load(logdir / "checkpoint.prev.pt", weights_only=True)
    duplicates = 0
    for name in ("metrics.jsonl", "scores.jsonl"):
        lines = (logdir / name).read_text().splitlines()
        records = [json.loads(line) for line in lines]  # every line must parse
        duplicates += len(lines) - len(set(lines))
        key = "step" if name == "metrics.jsonl" else "frames"
        for mode in {r.get("mode") for r in records}:
            xs = [r[key] for r in records if r.get("mode") == mode]
            assert xs == sorted(xs), f"{name}: {key} goes backwards"
    seen = set()
    for path in sorted(logdir.glob("*_episodes/*.npz")):
        with np.load(path) as episode:
            digest = hashlib.sha256(episode["image"].tobytes()).hexdigest()
        duplicates += digest in seen
        seen.add(digest)
    assert duplicates == 0, f"{duplicates} duplicate log lines or repeated env streams"
    return duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--logdir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.time()
    figures = soak(args.logdir, args.kills, args.steps, args.seed)
    lost = figures["lost_steps_per_kill"]
    print(json.dumps({**figures, "lost_median": float(np.median(lost)), "lost_max": max(lost),
                      "seconds": round(time.time() - start)}))


if __name__ == "__main__":
    main()

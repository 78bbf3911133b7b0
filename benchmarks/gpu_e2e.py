"""gpu_check's end-to-end section: `train --preset atari --task atari_boxing` for a while, stopped
by SIGINT (which checkpoints), then resumed; speed, GPU utilisation and eval returns beside the
official Boxing score.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def official_boxing() -> float:
    """The official DreamerV2 Boxing score at 1M frames (the `scores` command's rule: mean eval
    return in the 1M-frame bin, averaged over seeds; package data)."""
    from dreamerv2_torch.curves import official_runs
    from dreamerv2_torch.scores import seed_mean_scores
    return seed_mean_scores(official_runs(["atari_boxing"]), 1e6)["dreamerv2"]["atari_boxing"].score


class GpuUtil(threading.Thread):
    """Samples `nvidia-smi` utilisation every 2 s (nothing where there is no nvidia-smi)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(2.0):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits", "-i", "0"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append((time.time(), float(out.strip().splitlines()[0])))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return


def _train(args, preset_names: list[str], logdir: Path, seconds: float, log: Path) -> dict:
    cmd = [sys.executable, "-m", "dreamerv2_torch", "train", "--preset", *preset_names,
           "--task", "atari_boxing", "--logdir", str(logdir), "--device", args.device,
           "--log_keys_video", "--eval_every", "2500" if not args.tiny else "300",
           "--log_every", "500" if not args.tiny else "100", "--eval_eps", "1"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.tiny:
        cmd += ["--prefill", "200"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        # The clock starts once the run has started (its "Task ..." line, printed after the
        # imports and the env check): a SIGINT during the imports would abort without saving.
        # A run that has printed its last line ("Training finished at ...") is left to exit on
        # its own: a SIGINT in its teardown would end it with -2 although it saved everything.
        started, finished = None, False
        while proc.poll() is None:
            now, text = time.time(), "\n" + log.read_text()
            if started is None and "\nTask " in text:
                started = now
            finished = "\nTraining finished at " in text
            if finished or now - (started or start) >= (seconds if started else 300):
                break
            time.sleep(0.5)
        if proc.poll() is None and not finished:
            proc.send_signal(signal.SIGINT)  # the loop stops at a safe point and checkpoints
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    return {"rc": proc.returncode, "wall_s": time.time() - start, "start": start,
            "resumed": "Resumed from step" in text, "log_tail": text[-1500:]}


def run(args, preset_names: list[str], report_start: float) -> dict:
    from dreamerv2_torch.logger import read_jsonl
    root = Path(args.out) / "e2e"
    logdir = root / "atari_boxing"
    util = GpuUtil()
    util.start()
    root.mkdir(parents=True, exist_ok=True)
    left = args.budget_s - (time.time() - (args.started or report_start)) - args.resume_s - 20
    seconds = min(args.e2e_s, max(left, 90.0 if not args.tiny else 10.0))
    first = _train(args, preset_names, logdir, seconds, root / "train.log")
    second = _train(args, preset_names, logdir, args.resume_s, root / "resume.log")
    util.done.set()
    metrics = read_jsonl(logdir / "metrics.jsonl") if (logdir / "metrics.jsonl").exists() else []
    scores = read_jsonl(logdir / "scores.jsonl") if (logdir / "scores.jsonl").exists() else []
    from dreamerv2_torch import presets
    config = presets.resolve(preset_names)
    fps = [m["fps"] for m in metrics if m.get("fps")]
    steps_per_s = sorted(fps)[len(fps) // 2] / config.action_repeat if fps else None
    samples = [u for _, u in util.samples[len(util.samples) // 3:]]  # past prefill, roughly
    out = {
        "train": {k: v for k, v in first.items() if k != "start"},
        "resume": {k: v for k, v in second.items() if k != "start"},
        "policy_steps_per_s": steps_per_s,
        "updates_per_s": (steps_per_s * config.train_steps / config.train_every
                          if steps_per_s else None),
        "gpu_util_pct": sum(samples) / len(samples) if samples else None,
        "eval": [(s["frames"], s["return"]) for s in scores if s["mode"] == "eval"],
        "train_episodes": len([s for s in scores if s["mode"] == "train"]),
        "frames": max((m["step"] for m in metrics), default=0),
        "official_boxing_1m": official_boxing(),
    }
    # SIGINT exits 0 after saving (or 130 where a handler is missing); both runs must have saved.
    out["ok"] = (first.get("rc") in (0, 130) and second.get("rc") in (0, 130)
                 and second.get("resumed", False) and bool(fps))
    return out

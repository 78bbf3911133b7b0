"""`dreamerv2-torch sweep`: many (task, seed) trainings as Ray tasks, then `scores` and `plot`.

Under `--root` (absolute; a shared filesystem on a multi-node cluster): `<task>/<seed>/`, an
ordinary resumable run per (task, seed) that `scores`/`plot` read through its config.yaml;
`sweep/<task>-<seed>.log` (output of every attempt) and `.json` (attempt, state, host);
`sweep/summary.json`; `curves.png`/`.json`; `scores.txt` for Atari tasks.

A Ray task (`num_cpus`, which also sets OMP_NUM_THREADS, and a `num_gpus` fraction) runs `train`
as a subprocess. A training that dies (OOM, SIGKILL) or is stopped early ("Training stopped at")
makes the task raise `RunFailed`; Ray retries it (`max_retries`, `retry_exceptions`; a lost worker
or node likewise) and the retry resumes from the last checkpoint, as any rerun of `train` does.
Exit code 2 (bad flags, an incompatible logdir) is not retried. Rerunning the sweep resumes all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CHILD = "--child"  # argv[1] of the training subprocess (see `_child_main`)
# Test hook, "SEED:MARKER": the run of that seed is SIGKILLed once, after its first checkpoint,
# and MARKER is created; it exercises the kill → retry → resume path of a real sweep.
TEST_KILL = "DREAMERV2_TORCH_SWEEP_TEST_KILL"
ATARI55 = "atari55"
INSTALL = 'Ray is not installed: pip install "dreamerv2-torch[ray]"  (or: pip install ray)'


class RunFailed(RuntimeError):
    """The training process died or stopped before its last step; Ray retries the task."""


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)  # the driver polls these files: never let it read half a file


def _tail(path: Path, nbytes: int = 1 << 16) -> list[str]:
    """The complete last lines of a (possibly large, growing) text file."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - nbytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return lines[1:] if size > nbytes else lines


def _records(path: Path) -> list[dict]:
    out = []
    for line in _tail(path):
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def _wait(proc: subprocess.Popen, logdir: Path, marker: Path | None) -> int:
    """Poll rather than block in waitpid, so that ray.cancel's KeyboardInterrupt gets through."""
    while proc.poll() is None:
        if marker and not marker.exists() and (logdir / "checkpoint.pt").exists():
            marker.write_text(f"killed pid {proc.pid}\n")  # the test hook (TEST_KILL)
            proc.send_signal(signal.SIGKILL)
        time.sleep(0.05 if marker else 1.0)
    return proc.returncode


def run_training(train_args: list[str], logdir: str, log: str, gpus: float = 0.0,
                 kill_marker: str = "") -> dict:
    """Body of one Ray task: train in a subprocess until it finishes; raise RunFailed if not."""
    log_path, status_path = Path(log), Path(log).with_suffix(".json")
    attempt = 1 + (json.loads(status_path.read_text())["attempt"] if status_path.exists() else 0)
    status = {"attempt": attempt, "host": socket.gethostname(), "state": "running"}
    _write_json(status_path, status)
    cmd = [sys.executable, "-m", "dreamerv2_torch.sweep", CHILD, "train", *train_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not gpus:  # no GPU was asked for: keep `--device auto` off any GPU of the node
        env["CUDA_VISIBLE_DEVICES"] = ""
    with open(log_path, "a") as out:
        print(f"=== attempt {attempt} on {status['host']} at {time.ctime()}: {' '.join(cmd)}",
              file=out, flush=True)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            code = _wait(proc, Path(logdir), Path(kill_marker) if kill_marker else None)
        finally:  # the sweep was interrupted (ray.cancel): let train save a checkpoint and stop
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=300)
    tail = _tail(log_path, 4096)
    if code == 2:  # bad flags or an incompatible logdir: retrying cannot help
        _write_json(status_path, {**status, "state": "failed"})
        start = max((i for i, line in enumerate(tail) if line.startswith("error:")), default=-1)
        return {"state": "failed", "code": code, "error": " ".join(tail[start:])}
    if code != 0 or any(line.startswith("Training stopped at") for line in tail[-3:]):
        _write_json(status_path, {**status, "state": "retrying"})
        raise RunFailed(f"{logdir}: training exited with {code} (attempt {attempt}); see {log}")
    _write_json(status_path, {**status, "state": "done"})
    return {"state": "done", "code": 0}


def _child_main(argv: list[str]) -> int:
    """The training subprocess: it dies with its Ray worker, so a retry never finds it running."""
    if sys.platform.startswith("linux"):
        import ctypes

        # PR_SET_PDEATHSIG = 1: SIGTERM when the parent exits (train saves a checkpoint and stops).
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)
    from .cli import main

    return main(argv)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        # No abbreviations: a train flag such as --seed must not be taken for --seeds.
        prog="dreamerv2-torch sweep", allow_abbrev=False,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train every (task, seed) as a Ray task with retries that resume, show "
                    "progress, then write the score table and learning curves. Other flags "
                    "(e.g. --steps 1e6) go to every `train`.")
    p.add_argument("--preset", "--presets", nargs="+", action="extend", default=[],
                   help="train presets, e.g. atari")
    p.add_argument("--tasks", required=True,
                   help=f"comma-separated tasks, e.g. atari_pong,atari_boxing; {ATARI55} = the "
                        "paper's 55 Atari games")
    p.add_argument("--seeds", default="1", help="a count N (seeds 0..N-1) or a list like 0,4,7")
    p.add_argument("--root", required=True, help="root folder of the run directories")
    p.add_argument("--address", help="an existing Ray cluster; none: start a local one")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray instance; none: all")
    p.add_argument("--num-gpus", type=int, help="GPUs of a local Ray instance; none: all")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray num_cpus of a run")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="Ray num_gpus of a run; 0.5: two per GPU")
    p.add_argument("--max-retries", type=int, default=3, help="restarts (resumes) per run")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between progress tables")
    return p


def _tasks(text: str) -> list[str]:
    from .scores import GAMES

    names = [t for t in text.split(",") if t]
    return list(dict.fromkeys(t for n in names for t in (GAMES if n == ATARI55 else [n])))


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s] if "," in text else list(range(int(text)))


COLUMNS = ("task", "seed", "frames", "eval_return", "attempt", "state")


def _progress(run: dict) -> dict:
    """Where a run stands, from the files it writes (cheap: only their tails are read)."""
    logdir, status_path = Path(run["logdir"]), Path(run["log"]).with_suffix(".json")
    frames = next((r["step"] for r in reversed(_records(logdir / "metrics.jsonl"))
                   if "step" in r), 0)
    evals = [r["return"] for r in _records(logdir / "scores.jsonl") if r.get("mode") == "eval"]
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    return dict(task=run["task"], seed=run["seed"], frames=frames, budget=run["frames"],
                eval_return=evals[-1] if evals else None, attempt=status.get("attempt", 0),
                state=run.get("state") or status.get("state", "pending"))


def _table(runs: list[dict]) -> str:
    rows = [list(COLUMNS)]
    for p in map(_progress, runs):
        ret = "-" if p["eval_return"] is None else f"{p['eval_return']:g}"
        rows.append([p["task"], str(p["seed"]), f"{p['frames']}/{p['budget']}", ret,
                     str(p["attempt"]), p["state"]])
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def _plan(args: argparse.Namespace, rest: list[str]) -> list[dict]:
    """One record per (task, seed); checks the train flags first (SystemExit, ConfigError)."""
    from .cli import parse_train_args

    tasks, seeds, root = _tasks(args.tasks), _seeds(args.seeds), Path(args.root)
    presets = ["--preset", *args.preset] if args.preset else []
    config = parse_train_args([*presets, "--task", tasks[0], *rest])  # tyro exits on a bad flag
    budget = int(config.steps) * config.action_repeat  # frames per run, the same for every task
    test_kill = os.environ.get(TEST_KILL, "").split(":", 1)
    (root / "sweep").mkdir(parents=True, exist_ok=True)
    runs = []
    for task, seed in ((task, seed) for task in tasks for seed in seeds):
        # issue 8: `gym:CartPole-v1` → `gym-CartPole-v1`; a ':' breaks Windows paths and
        # TensorBoard's `name:path` logdir spec.
        folder = task.replace(":", "-")
        logdir, log = root / folder / str(seed), root / "sweep" / f"{folder}-{seed}.log"
        flags = [*presets, "--task", task, "--seed", str(seed), "--logdir", str(logdir), *rest]
        kill = test_kill[1] if len(test_kill) == 2 and test_kill[0] == str(seed) else ""
        runs.append(dict(task=task, seed=seed, logdir=str(logdir), log=str(log), flags=flags,
                         kill=kill, frames=budget))
        # Attempts are counted per sweep command; the log keeps every attempt ever made.
        _write_json(log.with_suffix(".json"), {"attempt": 0, "state": "pending"})
    return runs


def sweep_main(argv: list[str] | None = None) -> int:
    """`dreamerv2-torch sweep ...`; 0 when every run finished, 1 if some failed, 2 on bad input."""
    from .presets import ConfigError

    args, rest = _parser().parse_known_args(argv)
    for flag in ("--logdir", "--task", "--seed"):
        if any(a == flag or a.startswith(flag + "=") for a in rest):
            print(f"error: the sweep sets {flag} of each run; do not pass it", file=sys.stderr)
            return 2
    try:
        import ray
    except ImportError:
        print(f"error: {INSTALL}", file=sys.stderr)
        return 2
    args.root = str(Path(args.root).expanduser().resolve())  # workers may start elsewhere
    try:
        runs = _plan(args, rest)
    except (ValueError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # tyro printed the problem with the train flags
        return int(exit_.code or 0) or 2
    # Ray cancels a task with SIGINT in its worker; from a background shell SIGINT is ignored and
    # the local Ray instance would inherit that. After ray.init (which sets its own handler),
    # `kill` is made to stop the sweep as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    local = dict(include_dashboard=False, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    ray.init(address=args.address, log_to_driver=False, **({} if args.address else local))
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    pending = []
    try:
        if args.gpus_per_run > (gpus := ray.cluster_resources().get("GPU", 0)):
            print(f"warning: runs ask for {args.gpus_per_run} GPU but the cluster has {gpus}; "
                  "they wait until GPUs join", file=sys.stderr)
        task_fn = ray.remote(run_training).options(
            num_cpus=args.cpus_per_run, num_gpus=args.gpus_per_run,
            max_retries=args.max_retries, retry_exceptions=[RunFailed])
        refs = {task_fn.remote(r["flags"], r["logdir"], r["log"], args.gpus_per_run, r["kill"]): r
                for r in runs}
        print(f"Sweep: {len(runs)} runs under {args.root}, {args.cpus_per_run} CPU and "
              f"{args.gpus_per_run} GPU each.", flush=True)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=args.poll)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as error:  # RunFailed after the last retry, a lost node, ...
                    result = {"state": "failed", "error": str(error).strip().splitlines()[-1]}
                refs[ref].update(state=result["state"], error=result.get("error", ""))
            print(f"\n[{time.strftime('%H:%M:%S')}]\n{_table(runs)}", flush=True)
    except KeyboardInterrupt:
        print("\nInterrupted: the runs save a checkpoint and stop; rerun the same command to "
              "resume them.", file=sys.stderr)
        for ref in pending:
            ray.cancel(ref)  # run_training sends SIGTERM to its training and waits for it
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=300)
        return 130
    finally:
        ray.shutdown()
    return _finish(Path(args.root), runs)


def _finish(root: Path, runs: list[dict]) -> int:
    """Summary file, failures, then the score table (Atari runs) and the learning curves."""
    from .curves import is_run_dir
    from .plot import plot_main
    from .scores import GAMES, scores_main

    summary = [dict(_progress(r), logdir=r["logdir"], log=r["log"], error=r.get("error", ""))
               for r in runs]
    _write_json(root / "sweep" / "summary.json", {"runs": summary})
    failed = [r for r in runs if r.get("state") != "done"]
    for r in failed:
        print(f"FAILED {r['task']} seed {r['seed']}: {r['error']} ({r['log']})", file=sys.stderr)
    dirs = [r["logdir"] for r in runs if is_run_dir(Path(r["logdir"]))]
    atari = [r for r in runs if r["logdir"] in dirs and r["task"] in GAMES]
    if atari:
        out = root / "scores.txt"
        frames = str(max(r["frames"] for r in atari))
        # The sweep's own budget; runs off the paper's protocol or short are scored but marked.
        marks = ["--allow-nonstandard", "--allow-short"]
        if scores_main([*(r["logdir"] for r in atari), "--frames", frames, *marks,
                        "-o", str(out)]) == 0:
            print("\n" + out.read_text())
    if dirs:
        plot_main([*dirs, "-o", str(root / "curves.png")])
    print(f"Sweep done: {len(runs) - len(failed)} of {len(runs)} runs finished; "
          f"summary: {root / 'sweep' / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        sys.exit(_child_main(sys.argv[2:]))
    sys.exit(sweep_main(sys.argv[1:]))

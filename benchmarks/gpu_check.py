"""The GPU path in one run (issue 11): correctness, speed and end to end, as one summary.

Run through `benchmarks/gpu_check.sh` (which installs the missing packages offline first), or
directly where the package is installed:

  python benchmarks/gpu_check.py --device cuda --out $OUT
  python benchmarks/gpu_check.py --device cpu --tiny            # CI-sized, any CPU

Sections (each one's failure is recorded and the others still run; the exit code is 1 if any
failed):
- correctness: on one fixed batch and seed, the losses and gradients of world model, actor and
  critic on `--device` in fp32 against the CPU in fp32 (same weights, same random draws; relative
  error of each loss and of each group's gradient vector, ≤ 1e-4), and `--device` in bf16 against
  fp32 (reported); one update under a host-synchronisation guard; the `gpu`-marked tests;
- speed: `bench_update.py` at the atari preset for each batch and variant (eager fp32, eager bf16
  and each fast path): s/update, updates/s, its parts, peak device memory, the first update (the
  compile/capture cost), policy latency at 1 and `--act-envs` envs;
- end to end: `train --preset atari --task atari_boxing` for `--e2e-s` seconds with video writing
  off, stopped by SIGINT (which saves a checkpoint), then resumed for `--resume-s` seconds: policy
  steps/s and updates/s after prefill, GPU utilisation, eval returns and their frames, beside the
  official DreamerV2 Boxing score (mean eval return over the first 1M frames, package data).
Writes gpu_check.md and gpu_check.json under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from dreamerv2_torch.hardware import describe

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


import gpu_correctness  # noqa: E402
import gpu_e2e  # noqa: E402

# name -> bench_update --set overrides; `jit` compiles the imagination step, `loops` the whole
# observe and imagine loops (CUDA graphs on CUDA). Compiled variants run at the first batch only:
# their compile time is the cost, and the budget is short.
VARIANTS = {"fp32": "precision=32", "bf16": "precision=16", "bf16+jit": "precision=16,jit=true",
            "bf16+loops": "precision=16,compile_loops=on"}
RESERVED_S = 90 + 40 + 30  # kept for the end-to-end section and the summary
TINY = "debug"  # the preset added in tiny mode (a tiny model and short schedule)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny model and runs (CPU tests)")
    p.add_argument("--out", default="", help="folder for gpu_check.md/.json and run dirs")
    p.add_argument("--sections", default="correctness,tests,speed,e2e")
    p.add_argument("--batches", default="16,50")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--act-envs", type=int, default=8)
    p.add_argument("--e2e-s", type=float, default=240.0,
                   help="training seconds before the resume (shortened to fit --budget-s)")
    p.add_argument("--budget-s", type=float, default=470.0,
                   help="whole check, install included; e2e gets what is left (at least 90 s)")
    p.add_argument("--resume-s", type=float, default=40.0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--started", type=float, default=0.0, help="epoch seconds of the wrapper start")
    return p.parse_args(argv)


def presets_for(args) -> list[str]:
    return ["atari", TINY] if args.tiny else ["atari"]


def section_env(args) -> dict:
    info = {"python": sys.version.split()[0], "torch": torch.__version__,
            "cuda": torch.version.cuda, "device": args.device, "tiny": args.tiny,
            **describe()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import ale_py
        import gymnasium
        info["ale_py"], info["gymnasium"] = ale_py.__version__, gymnasium.__version__
    except ImportError as error:
        info["ale_py"] = f"missing ({error})"
    return info


def section_tests(args) -> dict:
    # Only the file that holds the gpu-marked tests: collecting all of tests/ imports the dev
    # extras (hypothesis, dm_control, ...), which the bare GPU machine does not have.
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           str(HERE.parent / "tests" / "test_gpu.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    # 5: no tests collected (all deselected), which is what a CPU-only run can expect.
    ok = proc.returncode == 0 or (proc.returncode == 5 and args.device == "cpu")
    return {"ok": ok, "summary": last, "rc": proc.returncode,
            **({} if ok else {"output": proc.stdout[-3000:] + proc.stderr[-2000:]})}


def section_speed(args) -> dict:
    rows = []
    batches = [int(b) for b in args.batches.split(",")]
    for batch in batches:
        for name in args.variants.split(","):
            if "+" in name and batch != batches[0]:
                continue
            left = args.budget_s - (time.time() - (args.started or report_start)) - RESERVED_S
            if "e2e" not in args.sections:
                left += RESERVED_S
            if left < 20:
                rows.append({"variant": name, "batch": batch, "error": "skipped: out of budget"})
                continue
            cmd = [sys.executable, str(HERE / "bench_update.py"), "--json", "--device",
                   args.device, "--preset", ",".join(presets_for(args)), "--batch", str(batch),
                   "--iters", str(args.iters), "--warmup", str(args.warmup), "--acting",
                   "--act-envs", str(args.act_envs), "--threads", str(args.threads),
                   "--set", VARIANTS[name]]
            if args.tiny:
                cmd += ["--length", "10", "--act-steps", "20"]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=min(left, 240))
            except subprocess.TimeoutExpired:
                rows.append({"variant": name, "batch": batch,
                             "error": f"timed out after {min(left, 240):.0f} s"})
                continue
            if proc.returncode:
                rows.append({"variant": name, "batch": batch, "error": proc.stderr[-1500:]})
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result.update(variant=name, batch=batch, updates_per_s=1 / result["update"],
                          compile_s=result["first_update_s"] - result["update"])
            rows.append(result)
    return {"ok": all("error" not in r for r in rows), "rows": rows}


SECTIONS = {"correctness": lambda a: gpu_correctness.run(a.device, presets_for(a), a.threads),
            "tests": section_tests, "speed": section_speed,
            "e2e": lambda a: gpu_e2e.run(a, presets_for(a), report_start)}


def _num(value) -> str:
    return "not measured" if value is None else f"{value:.3g}"


def markdown(report: dict) -> str:
    env = report["env"]
    lines = [f"# gpu_check: {env.get('gpu', 'no GPU')} / {env['cpu_model']} "
             f"({env['isa']}), torch {env['torch']} CUDA {env['cuda']}, device {env['device']}"
             f"{' (tiny)' if env['tiny'] else ''}", ""]
    for name, result in report["sections"].items():
        lines.append(f"## {name}: {'ok' if result.get('ok') else 'FAILED'}"
                     f" ({result.get('seconds', 0):.0f} s)")
        if "error" in result:
            lines.append("```\n" + result["error"] + "\n```")
        if name == "correctness":
            lines += gpu_correctness.markdown(result)
        elif name == "tests":
            lines.append(f"pytest -m gpu: {result.get('summary')}")
        elif name == "speed":
            lines += ["| batch | variant | s/update | updates/s | world model | imagination | "
                      "actor-critic | peak GiB (GPU; CPU: RSS) | first update s | "
                      "policy ms (1 / N envs) |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for r in result.get("rows", []):
                if "error" in r:
                    lines.append(f"| {r['batch']} | {r['variant']} | error: "
                                 f"{r['error'].splitlines()[-1] if r['error'] else '?'} |")
                    continue
                mem = r.get("cuda_peak_gib", r["peak_rss_gib"])
                lines.append(
                    f"| {r['batch']} | {r['variant']} | {r['update']:.4f} | "
                    f"{r['updates_per_s']:.2f} | {r['world_model']:.4f} | {r['imagination']:.4f}"
                    f" | {r['actor_critic']:.4f} | {mem:.2f} | {r['first_update_s']:.1f} | "
                    f"{r['policy_ms']:.2f} / {r.get('policy_ms_n', float('nan')):.2f} |")
        elif name == "e2e" and "train" in result:
            lines += [f"- policy steps/s after prefill (median of logged fps / action repeat): "
                      f"{_num(result['policy_steps_per_s'])}; updates/s "
                      f"{_num(result['updates_per_s'])}; GPU utilisation "
                      f"{_num(result['gpu_util_pct'])} %",
                      f"- frames {result['frames']}, train episodes {result['train_episodes']}, "
                      f"eval (frames, return): {result['eval']}",
                      f"- official DreamerV2 Boxing, mean eval return over the first 1M frames: "
                      f"{result['official_boxing_1m']:.1f}",
                      f"- train rc {result['train']['rc']} in {result['train']['wall_s']:.0f} s;"
                      f" resume rc {result['resume']['rc']}, resumed "
                      f"{result['resume']['resumed']}"]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse(argv)
    args.out = args.out or os.environ.get("OUT") or str(Path.cwd() / "gpu_check_out")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device} but CUDA is not available", file=sys.stderr)
        return 2
    report = {"env": section_env(args), "sections": {}}
    for name in args.sections.split(","):
        start = time.time()
        print(f"## {name} ...", file=sys.stderr, flush=True)
        try:
            result = SECTIONS[name](args)
        except Exception as error:  # noqa: BLE001 - recorded; the other sections still run
            import traceback
            result = {"ok": False, "error": traceback.format_exc(limit=6)[-3000:]}
            print(f"{name} failed: {error!r}", file=sys.stderr)
        result["seconds"] = time.time() - start
        report["sections"][name] = result
    report["total_s"] = time.time() - (args.started or report_start)
    text = markdown(report) + f"\ntotal {report['total_s']:.0f} s\n"
    (Path(args.out) / "gpu_check.md").write_text(text)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print(text)
    return 0 if all(r.get("ok") for r in report["sections"].values()) else 1


report_start = time.time()

if __name__ == "__main__":
    sys.exit(main())

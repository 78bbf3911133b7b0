#!/usr/bin/env bash
# Learning check on DMC from proprioception (not CI): the official `dmc_proprio` preset, then a
# return-vs-frames curve beside the official DMC curves where the task has them.
#
#   benchmarks/learn_dmc_proprio.sh [TASK] [LOGDIR] [extra train flags...]
#
# TASK: a dm_control task such as walker_walk (default) or cartpole_swingup. LOGDIR defaults to
# runs/dmc_proprio_<TASK>. Rerunning the same command resumes the run. Proprio runs never render,
# so no OpenGL is needed. One torch thread per run (see learn_minatar.sh).
# Reference (official DreamerV2, DMC from pixels): walker_walk ≈ 930 and cartpole_swingup ≈ 850
# after 0.5M frames; proprio usually learns at least as fast.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK="${1:-walker_walk}"
LOGDIR="${2:-runs/dmc_proprio_${TASK}}"
shift $(( $# < 2 ? $# : 2 ))
BIN="${DREAMERV2_TORCH:-dreamerv2-torch}"
[[ -x .venv/bin/dreamerv2-torch && -z "${DREAMERV2_TORCH:-}" ]] && BIN=.venv/bin/dreamerv2-torch
"$BIN" train --preset dmc_proprio --task "dmc_${TASK}" --logdir "$LOGDIR" --threads 1 "$@"
"$BIN" plot "$LOGDIR" -o "$LOGDIR/curve.png"
echo "curve: $LOGDIR/curve.png"

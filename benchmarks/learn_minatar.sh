#!/usr/bin/env bash
# Learning check on MinAtar (not CI): train the `minatar` preset, then plot return vs frames.
#
#   benchmarks/learn_minatar.sh [GAME] [LOGDIR] [extra train flags...]
#
# GAME: breakout (default), space_invaders, asterix, freeway, seaquest. LOGDIR defaults to
# runs/minatar_<GAME>. Rerunning the same command resumes the run. One torch thread per run:
# on a shared 2-core CPU more threads make small models slower, not faster.
# Reference (a JAX DreamerV2 port): Breakout ≈ 60 and SpaceInvaders ≈ 150 after 1M steps.
set -euo pipefail
cd "$(dirname "$0")/.."
GAME="${1:-breakout}"
LOGDIR="${2:-runs/minatar_${GAME}}"
shift $(( $# < 2 ? $# : 2 ))
BIN="${DREAMERV2_TORCH:-dreamerv2-torch}"
[[ -x .venv/bin/dreamerv2-torch && -z "${DREAMERV2_TORCH:-}" ]] && BIN=.venv/bin/dreamerv2-torch
"$BIN" train --preset minatar --task "minatar_${GAME}" --logdir "$LOGDIR" --threads 1 "$@"
"$BIN" plot "$LOGDIR" -o "$LOGDIR/curve.png" --no-official --bins 10000
echo "curve: $LOGDIR/curve.png"

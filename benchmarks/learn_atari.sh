#!/usr/bin/env bash
# A real Atari learning run on CPU with the `small` preset, plotted against the official DreamerV2
# curve (package data) and the random / human-gamer scores of the game.
# Usage: benchmarks/learn_atari.sh [GAME] [LOGDIR] [STEPS] [more train flags...]
#   (defaults: boxing, runs/atari_GAME_small, 5e5). docs/results.md used
#   benchmarks/learn_atari.sh boxing runs/atari_boxing_small 500000 --eval_every 10000 --eval_eps 2 --log_every 2500
# Rerunning the same command resumes the run; the plot is redrawn from whatever exists.
set -euo pipefail
game="${1:-boxing}"
logdir="${2:-runs/atari_${game}_small}"
steps="${3:-500000}"   # policy steps; x4 frames
shift $(( $# < 3 ? $# : 3 ))
dreamerv2-torch train --preset atari small --task "atari_${game}" --logdir "$logdir" \
  --steps "$steps" "$@" || true   # a stopped run still gets its plot
dreamerv2-torch plot "$logdir" -o "${logdir}/curve.png"
python - "$logdir" <<'PY'
import sys
from dreamerv2_torch.logger import read_jsonl
rows = [e for e in read_jsonl(f"{sys.argv[1]}/scores.jsonl") if e["mode"] == "eval"]
for e in rows:
    print(f"frames {e['frames']:>9}  eval return {e['return']:.1f}")
PY

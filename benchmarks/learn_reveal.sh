#!/usr/bin/env bash
# Learning check on the built-in pixel task `dummy_reveal` (optimal return 100, random ~25).
# Usage: benchmarks/learn_reveal.sh [LOGDIR] [STEPS]. Prints the evaluation returns.
set -euo pipefail
logdir="${1:-runs/reveal}"
steps="${2:-6000}"
args=$(python - <<'PY'
import sys; sys.path.insert(0, "tests")
from test_learning import REVEAL
print(" ".join(REVEAL))
PY
)
# shellcheck disable=SC2086
dreamerv2-torch train $args --logdir "$logdir" --steps "$steps" --threads 1
python - "$logdir" <<'PY'
import sys
from dreamerv2_torch.logger import read_jsonl
for e in read_jsonl(f"{sys.argv[1]}/scores.jsonl"):
    if e["mode"] == "eval":
        print(f"frames {e['frames']:>6}  eval return {e['return']:.0f}")
PY

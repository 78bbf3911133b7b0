#!/usr/bin/env bash
# The GPU path in one run (issue 11): correctness, speed, end to end. At most ~8 minutes on one
# H100/H200; docs/performance.md says how to run it and what it prints.
#   benchmarks/gpu_check.sh                       # on the GPU machine: installs, then checks
#   benchmarks/gpu_check.sh --device cpu --tiny   # the same on a CPU at tiny sizes (CI)
# Options after the first ones go to benchmarks/gpu_check.py (see its --help). Environment:
#   OUT      folder for gpu_check.md / gpu_check.json and the run directories (default: a temp dir)
#   WHEELS   wheel folder for the offline install (default tools/gpu/wheels)
#   NO_INSTALL=1  use the current python as it is (e.g. a CPU machine with the package installed)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
python=${PYTHON:-python3}
start=$(date +%s)
if [ "${NO_INSTALL:-0}" != 1 ]; then
  echo "## step 1: offline install (wheels: ${WHEELS:-$root/tools/gpu/wheels})" >&2
  python=$("$root/tools/gpu/install_offline.sh" "$python" "${WHEELS:-$root/tools/gpu/wheels}" \
    "${VENV:-$out/venv}" | tail -n 1)
  echo "installed in $(( $(date +%s) - start )) s: $python" >&2
fi
exec "$python" "$root/benchmarks/gpu_check.py" --out "$out" --started "$start" "$@"

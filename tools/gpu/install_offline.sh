#!/usr/bin/env bash
# Install what benchmarks/gpu_check.sh needs on a bare, offline machine: the wheels of
# tools/gpu/requirements.txt from a local folder (tools/gpu/prepare_wheels.sh), then this package
# with --no-deps, into a venv that sees the machine's own torch/numpy (--system-site-packages).
#   tools/gpu/install_offline.sh PYTHON WHEELS_DIR VENV_DIR
# Prints the venv's python on its last line. Nothing is fetched from the network (--no-index).
set -euo pipefail
python=$1; wheels=$2; venv=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -d "$wheels" ] || [ -z "$(ls "$wheels"/*.whl 2>/dev/null)" ]; then
  echo "error: no wheels in $wheels; run tools/gpu/prepare_wheels.sh on a machine with PyPI" >&2
  exit 2
fi
"$python" -m venv --system-site-packages "$venv" >&2
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index
     --find-links "$wheels")
"${pip[@]}" -r "$root/tools/gpu/requirements.txt" >&2
# Editable, so the check runs the working tree that travelled; build isolation finds setuptools
# and wheel in the same folder.
"${pip[@]}" --no-deps -e "$root" >&2
# (Importing the package itself needs torch: gpu_check.py does that a moment later.)
"$venv/bin/python" -c "import ale_py, gymnasium, tyro, yaml, tqdm, importlib.util as u
assert u.find_spec('dreamerv2_torch'), 'dreamerv2_torch not installed'" >&2
echo "$venv/bin/python"

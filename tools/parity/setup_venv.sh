#!/usr/bin/env bash
# Build the official DreamerV2 (dreamerv2==2.2.0, TensorFlow 2.15.1 CPU) in its own virtualenv.
# Usage: tools/parity/setup_venv.sh [VENV_DIR]   (default /work/parity-venv; not committed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-/work/parity-venv}"
python3.11 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install -r "$here/requirements.txt"
"$venv/bin/pip" install --no-deps dreamerv2==2.2.0
"$venv/bin/python" -c "import tensorflow as tf, tensorflow_probability as tfp; print(tf.__version__, tfp.__version__)"

#!/usr/bin/env bash
# Download the cp312 manylinux x86_64 wheels that benchmarks/gpu_check.sh installs offline on the
# GPU machine (tools/gpu/requirements.txt and their dependencies) into tools/gpu/wheels/ (gitignored;
# it travels with the working tree; WHEELS=DIR writes elsewhere). Run where PyPI is reachable:
#   tools/gpu/prepare_wheels.sh [python-version, default 3.12]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pyver=${1:-3.12}
dest=${WHEELS:-$here/wheels}
mkdir -p "$dest"
python -m pip download --only-binary=:all: --python-version "$pyver" --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
  -d "$dest" -r "$here/requirements.txt"
# Refuse what must not travel: the 68 MB ffmpeg wheel, or anything pulling torch/CUDA.
if ls "$dest" | grep -E -i '^(imageio_ffmpeg|torch|nvidia_)' ; then
  echo "error: $dest holds wheels that must not travel (above); remove them" >&2
  exit 1
fi
size=$(du -sm "$dest" | cut -f1)
echo "$(ls "$dest" | wc -l) wheels, ${size} MiB in $dest"
if [ "$size" -ge 48 ]; then
  echo "error: $dest is ${size} MiB; the working tree must travel in 64 MiB" >&2
  exit 1
fi

#!/usr/bin/env bash
# Install what benchmarks/gpu_check.sh needs on a bare, offline machine: the wheels of
# tools/gpu/requirements.txt from a local folder (tools/gpu/prepare_wheels.sh), then this package
# with --no-deps, into a fresh venv that also sees PYTHON's own packages (torch, numpy, ...).
#   tools/gpu/install_offline.sh PYTHON WHEELS_DIR VENV_DIR
# Prints the venv's python on its last line. Nothing is fetched from the network (--no-index).
#
# Why not `venv --system-site-packages`: when PYTHON is itself a venv (as on many GPU images) that
# flag exposes the base interpreter's packages, not PYTHON's, and torch would be missing. So the
# new venv gets a .pth file listing PYTHON's site-packages (appended after its own, so the wheels
# installed here win), and PYTHON's pip installs into it (`pip --python`), which needs no
# ensurepip and leaves PYTHON's environment untouched (Debian's is externally managed anyway).
set -euo pipefail
python=$1; wheels=$2; venv=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -d "$wheels" ] || [ -z "$(ls "$wheels"/*.whl 2>/dev/null)" ]; then
  echo "error: no wheels in $wheels; run tools/gpu/prepare_wheels.sh on a machine with PyPI" >&2
  exit 2
fi
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "error: $python has no pip module to install with" >&2
  exit 2
fi
"$python" -m venv --without-pip "$venv" >&2
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$python" - > "$site/_parent_site_packages.pth" <<'PY'
import site, sysconfig
paths = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")] + site.getsitepackages()
if site.ENABLE_USER_SITE:
    paths.append(site.getusersitepackages())
print("\n".join(dict.fromkeys(paths)))
PY
pip=("$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check
     --no-index --find-links "$wheels")
"${pip[@]}" -r "$root/tools/gpu/requirements.txt" >&2
# Editable, so the check runs the working tree that travelled; pip's build isolation finds
# setuptools and wheel in the same folder.
"${pip[@]}" --no-deps -e "$root" >&2
# (Importing the package itself needs torch: gpu_check.py does that a moment later.)
"$venv/bin/python" -c "import ale_py, gymnasium, tyro, yaml, tqdm, importlib.util as u
assert u.find_spec('dreamerv2_torch'), 'dreamerv2_torch not installed'" >&2
echo "$venv/bin/python"

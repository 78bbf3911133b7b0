#!/usr/bin/env bash
# Mutation testing of the algorithm and replay modules (developer tool, not CI; issue 10).
#
#   tools/parity/mutation.sh [WORKDIR] [TESTS...]
#
# Copies src/, tests/ and pyproject.toml into WORKDIR (default /tmp/dv2-mutation; mutmut writes
# its `mutants/` copy there, never into the checkout), writes mutmut's config as setup.cfg and
# runs `mutmut run` niced on one worker. Re-running continues where it stopped (mutmut caches
# results). TESTS default to the fast tests of these modules plus the parity suite; pass others to
# compare (e.g. without tests/test_parity.py for a "before" score). Results: `mutmut results` in
# WORKDIR. Scope: behavior.py, dists.py, rssm.py, world_model.py, replay.py (or the module names
# in $MODULES, e.g. MODULES="behavior world_model"; a path below the package works too).
# The env and resume code takes its own fast TESTS (docs/parity.md, "replay, env and resume code"):
#   MODULES=envs/atari ... tests/test_envs_atari.py tests/test_envs_base.py tests/test_mutants_envs.py
#   MODULES=envs/base ... tests/test_envs_{base,dummy,gym,atari}.py tests/test_mutants_envs_base.py
#   MODULES=checkpoint ... tests/test_mutants_envs.py tests/test_parity_resume.py tests/test_optim.py
#     and test_reliability.py's four checkpoint tests (test_resume_exact.py: ~25 s per mutant).
#   MODULES=run_state ... tests/test_mutants_resume.py tests/test_mutants_nets_optim.py (stub loops;
#     ~1.5 min for the module, where the end-to-end resume tests take 15-25 s per mutant).
#   MODULES="loop training overlap" ... tests/test_mutants_{loop_phases,loop_steps,training,
#     overlap}.py (stand-ins, ~6 min for 912 mutants;
#     docs/parity.md, "training loop: loop, training, overlap").
#   MODULES="rundir skipped_updates episode_log" ... tests/test_mutants_resume.py and six
#     test_reliability.py tests; MODULES=vector_atari ... tests/test_mutants_vector_atari.py and
#     test_vector_atari.py's two in-process tests (docs/parity.md, "run directory, ...").
#   The env suites (docs/parity.md, "env suites: ..."), each with tests/test_mutants_env_*.py:
#   MODULES=envs/minatar ... tests/test_envs_minatar.py; MODULES=envs/crafter ...
#     tests/test_envs_crafter.py; MODULES=envs/gym ... tests/test_envs_gym.py;
#   MODULES=envs/contract ... tests/test_envs_base.py tests/test_envs_dummy.py;
#   MODULES=envs/dmc ... the tests of tests/test_envs_dmc.py except test_pixels_a_few_frames
#     (real EGL rendering hangs in mutmut's forked children);
#   MODULES=envs/__init__ ... tests/test_envs_{base,dummy,gym,minatar,crafter}.py (+ atari, dmc).
#   MODULES=agent ... tests/test_parity.py tests/test_parity_resume.py tests/test_sync_guard.py
#     tests/test_hardware.py tests/test_parity_mutants.py tests/test_actor_grad.py
#     tests/test_fastpath.py tests/test_overlap.py::test_draws_follow_the_rules_of_sample
#     tests/test_mutants_agent{,_acting}.py (docs/parity.md, "agent.py"; the fast tests that
#     build an Agent).
#   Env stepping (docs/parity.md, "env stepping: driver, parallel, prefetch"), in-process tests:
#   MODULES=prefetch ... tests/test_mutants_prefetch.py and test_prefetch.py's three fast tests;
#   MODULES=driver ... tests/test_mutants_driver.py
#     tests/test_reliability.py::test_stream_seeds_never_repeat_across_starts (not the tests that
#     train: a mutant that stalls the driver hangs the loop, minutes of mutmut timeout each);
#   MODULES=parallel ... tests/test_mutants_parallel{,_worker}.py tests/test_parallel.py::test_restart_seed
#     (the worker loop runs in this process there; in spawned workers mutmut sees no test reach it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${1:-/tmp/dv2-mutation}"
shift || true
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests/test_behavior.py tests/test_rssm.py tests/test_dists.py tests/test_truncnormal.py
         tests/test_actor_grad.py tests/test_replay.py tests/test_parity.py
         tests/test_parity_resume.py tests/test_parity_mutants.py tests/test_mutants_dists_rssm.py
         tests/test_mutants_replay.py tests/test_mutants_nets_optim.py tests/test_mutants_nets_conv.py)
fi
mkdir -p "$work"
rm -rf "$work/src" "$work/tests"
cp -r "$root/src" "$root/tests" "$work/"
# mutmut 3.8's stats collector reads `item._nodeid`, which pytest 9 no longer has: a plugin
# (loaded with -p below) gives it back as `nodeid` (a no-op on pytest 8).
mkdir -p "$work/shim"
cat > "$work/shim/mutmut_pytest9.py" <<'PY'
import _pytest.nodes

if not hasattr(_pytest.nodes.Node, "_nodeid"):
    _pytest.nodes.Node._nodeid = property(lambda self: self.nodeid)
PY
export PYTHONPATH="$work/shim${PYTHONPATH:+:$PYTHONPATH}"
# A pyproject without [tool.mutmut] makes mutmut read setup.cfg; only pytest's section is kept.
sed -n '/^\[tool.pytest.ini_options\]/,/^$/p' "$root/pyproject.toml" > "$work/pyproject.toml"
{
  echo "[mutmut]"
  echo "source_paths=src"
  echo "only_mutate="
  for f in ${MODULES:-behavior dists rssm world_model replay}; do
    echo "    src/dreamerv2_torch/$f.py"
  done
  printf "pytest_add_cli_args=\n    -p\n    no:cacheprovider\n    -p\n    mutmut_pytest9\n"
  echo "pytest_add_cli_args_test_selection="
  for t in "${tests[@]}"; do echo "    $t"; done
} > "$work/setup.cfg"
cd "$work"
export OMP_NUM_THREADS=1  # mutmut puts its mutated copy (mutants/src) first on sys.path
# $MUTANTS: a file of mutant names (e.g. an earlier run's survivors) to run only those. Changed
# TESTS make mutmut re-collect its stats: the mutants not named then read "not checked".
names=()
if [ -n "${MUTANTS:-}" ]; then mapfile -t names < "$MUTANTS"; fi
nice -n 10 python -m mutmut run --max-children 1 "${names[@]}"  # the project venv must be active

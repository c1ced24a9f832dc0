#!/usr/bin/env bash
# The whole suite: set up what is missing (system packages, virtualenv, image), run pytest (the roles' lint is a
# test of its own: tests/roles/test_roles.py::test_ansible_lint_production_profile_passes).
# Each phase prints its wall time; pytest also prints the time spent per test directory.
# Extra arguments go to pytest (e.g. scripts/test.sh -k openapi; scripts/test.sh --random-order).
set -euo pipefail
cd "$(dirname "$0")/.."
phase() {  # phase NAME COMMAND...: run it, print how long it took
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "[test] ${name}"
  "$@" || rc=$?
  echo "[test] ${name}: $((SECONDS - t0)) s$([ "$rc" = 0 ] || echo " (failed, exit $rc)")"
  return "$rc"
}
phase "set-up" scripts/setup.sh --test
export CONTAINERS_CONF="$PWD/etc/containers.conf"
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p test-artifacts
phase "pytest" python -m pytest --durations=40 "$@"  # 40: enough to see where CI time goes

#!/usr/bin/env bash
# The whole suite: set up what is missing (system packages, virtualenv, image), lint the roles, run pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k openapi).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export CONTAINERS_CONF="$PWD/etc/containers.conf"
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p test-artifacts
if [ "$#" -eq 0 ]; then
  echo "[test] ansible-lint (production profile)"
  ansible-lint --offline -q playbooks roles
fi
echo "[test] pytest"
exec python -m pytest "$@"

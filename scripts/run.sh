#!/usr/bin/env bash
# The product on one machine: set up what is missing, then serve the web UI + JSON API + job workers
# (embedded default: SQLite metadata, podman on this machine) at http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CONTAINERS_CONF="$PWD/etc/containers.conf"
exec .venv/bin/pgaas run "$@"

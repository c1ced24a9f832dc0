#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh Debian 12 machine for pgaas:
# system packages, the virtualenv with pinned dependencies, the PostgreSQL image (built offline).
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# netavark + aardvark-dns: podman's network backend with DNS between containers. They are only Recommends of
# podman, and --no-install-recommends would leave podman on CNI, where no container name resolves (etc/containers.conf
# names the backend). netavark runs iptables, which nothing else pulls in on a minimal machine.
pkgs=(podman runc netavark aardvark-dns iptables debootstrap uidmap python3-venv postgresql-client-15)
[ "$WITH_TEST" = 1 ] && pkgs+=(postgresql-15 poppler-utils chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PGAAS_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  log "creating virtualenv .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pgaas-deps
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-$WITH_TEST
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing Python dependencies (pinned by constraints.txt)"
  extra=""
  [ "$WITH_TEST" = 1 ] && extra="[test]"
  .venv/bin/pip install -q -c constraints.txt -e ".${extra}"
  echo "$want" > "$stamp"
fi

export CONTAINERS_CONF="$ROOT/etc/containers.conf"
export PATH="$ROOT/.venv/bin:$PATH"
log "ensuring the PostgreSQL image (${PGAAS_IMAGE:-localhost/pgaas-postgres:15})"
img_args=()
[ -n "${PGAAS_IMAGE:-}" ] && img_args=(-e "pgaas_image=$PGAAS_IMAGE")
ansible-playbook playbooks/image.yml "${img_args[@]}" >/tmp/pgaas-image-build.log 2>&1 || {
  tail -40 /tmp/pgaas-image-build.log; exit 1; }
log "ready"

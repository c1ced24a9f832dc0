#!/bin/bash
# Create, if missing, an instance's network, its members' labelled data volumes and configuration
# directories (0700 root). One call per host; prints "created:" followed by what it created.
# usage: pgaas-prepare-host.sh INSTANCE NETWORK CONFIG_DIR STORAGE_GB|- MEMBER...
set -euo pipefail
instance="$1" net="$2" config_dir="$3" storage_gb="$4"
shift 4
created=''
if ! podman network exists "$net"; then
  # A concurrent play may create it at the same moment; accept that.
  podman network create --label "pgaas.instance=$instance" --label pgaas.component=postgres "$net" >/dev/null \
    || podman network exists "$net"
  created="$created network:$net"
fi
for member in "$@"; do
  vol="$member-data"
  if ! podman volume exists "$vol"; then
    extra=()
    if [ "$storage_gb" != "-" ]; then extra=(--label "pgaas.storage_gb=$storage_gb"); fi
    podman volume create --label "pgaas.instance=$instance" --label pgaas.component=postgres \
      --label "pgaas.member=$member" "${extra[@]}" "$vol" >/dev/null
    created="$created volume:$vol"
  fi
  dir="$config_dir/$member"
  if [ ! -d "$dir" ] || [ "$(stat -c '%a %U %G' "$dir")" != '700 root root' ]; then
    install -d -m 0700 -o root -g root "$dir"
    created="$created directory:$dir"
  fi
done
echo "created:$created"

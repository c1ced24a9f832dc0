#!/bin/bash
# Print the containers (IDs), volumes and networks whose label pgaas.instance equals $1 exactly,
# in three sections separated by "--". Podman's label filter is already exact on key=value;
# the second check on the label value makes that explicit, so "main" never selects "main2".
set -euo pipefail
n="$1"
f="label=pgaas.instance=$n"
podman ps --all --filter "$f" --format '{{.ID}} {{index .Labels "pgaas.instance"}}' | awk -v n="$n" '$2 == n {print $1}'
echo '--'
podman volume ls --filter "$f" --format '{{.Name}} {{index .Labels "pgaas.instance"}}' | awk -v n="$n" '$2 == n {print $1}'
echo '--'
for net in $(podman network ls --filter "$f" --format '{{.Name}}'); do
  if [ "$(podman network inspect --format '{{index .Labels "pgaas.instance"}}' "$net")" = "$n" ]; then
    echo "$net"
  fi
done

#!/bin/bash
# Print the containers (IDs), volumes and networks whose label pgaas.instance equals $1 exactly,
# in three sections separated by "--". Podman's label filter is already exact on key=value;
# the second check on the label value makes that explicit, so "main" never selects "main2".
# With a second argument MEMBER, only that member's container and volume (label pgaas.member=MEMBER), no network.
set -euo pipefail
# A host pgaas never prepared (a create refused at first contact, e.g. on a host key mismatch) has no podman or no
# pgaas podman settings yet: nothing of pgaas's can run there, and the teardown must still succeed.
if ! command -v podman >/dev/null 2>&1; then
  printf -- '--\n--\n'
  exit 0
fi
if [ -n "${CONTAINERS_CONF:-}" ] && [ ! -e "$CONTAINERS_CONF" ]; then
  unset CONTAINERS_CONF
fi
n="$1"
member="${2:-}"
f="label=pgaas.instance=$n"
# A `podman run` killed while it creates a container (a canceled job) can leave the container in storage only: no
# labels, unknown to `podman ps --all`, yet holding its name, so the retry's `podman run` fails (exit 125). Those
# are found by their exact pgaas names (members pgaas-<instance>-<N>, etcd pgaas-<instance>-etcd[-<N>]).
storage_only() {
  podman ps --all --external --format '{{.ID}} {{.Names}} {{.Status}}' \
    | awk -v re="$1" '$3 == "Storage" && $2 ~ re {print $1}'
}
if [ -n "$member" ]; then
  podman ps --all --filter "$f" --filter "label=pgaas.member=$member" \
    --format '{{.ID}} {{index .Labels "pgaas.instance"}} {{index .Labels "pgaas.member"}}' \
    | awk -v n="$n" -v m="$member" '$2 == n && $3 == m {print $1}'
  storage_only "^${member}\$"
  echo '--'
  podman volume ls --filter "$f" --filter "label=pgaas.member=$member" \
    --format '{{.Name}} {{index .Labels "pgaas.instance"}} {{index .Labels "pgaas.member"}}' \
    | awk -v n="$n" -v m="$member" '$2 == n && $3 == m {print $1}'
  echo '--'
  exit 0
fi
podman ps --all --filter "$f" --format '{{.ID}} {{index .Labels "pgaas.instance"}}' | awk -v n="$n" '$2 == n {print $1}'
storage_only "^pgaas-${n}-([0-9]+|etcd(-[0-9]+)?)\$"
echo '--'
podman volume ls --filter "$f" --format '{{.Name}} {{index .Labels "pgaas.instance"}}' | awk -v n="$n" '$2 == n {print $1}'
echo '--'
for net in $(podman network ls --filter "$f" --format '{{.Name}}'); do
  if [ "$(podman network inspect --format '{{index .Labels "pgaas.instance"}}' "$net")" = "$n" ]; then
    echo "$net"
  fi
done

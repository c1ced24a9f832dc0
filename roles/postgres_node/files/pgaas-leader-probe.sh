#!/bin/sh
# Probe a member's PostgreSQL through podman exec; prints one line
#   in_recovery|transaction_read_only|server_version|streaming replicas|sync replicas|admin role exists
# usage: pgaas-leader-probe.sh CONTAINER ADMIN_ROLE   (ADMIN_ROLE is validated by the playbook: [a-z0-9_])
exec podman exec --user postgres "$1" psql -XAtq -F '|' -c "SELECT pg_is_in_recovery(),
  current_setting('transaction_read_only'), current_setting('server_version'),
  (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
  (SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'),
  (SELECT count(*) FROM pg_roles WHERE rolname = '$2')"

#!/bin/sh
# Probe a member's PostgreSQL through podman exec; prints one line
#   in_recovery|transaction_read_only|server_version|streaming replicas|sync replicas|admin role exists|
#   admin database exists|admin role holds a power it must not have (CREATEROLE, REPLICATION, BYPASSRLS)|
#   grants to mend on postgres and template1 (PUBLIC may connect; pg_monitor, or the admin role when postgres is its
#   database, may not)
# usage: pgaas-leader-probe.sh CONTAINER ADMIN_ROLE ADMIN_DATABASE
#   (both validated by the playbook: [a-z0-9_] only)
exec podman exec --user postgres "$1" psql -XAtq -F '|' -c "SELECT pg_is_in_recovery(),
  current_setting('transaction_read_only'), current_setting('server_version'),
  (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
  (SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'),
  (SELECT count(*) FROM pg_roles WHERE rolname = '$2'),
  (SELECT count(*) FROM pg_database WHERE datname = '${3:-postgres}'),
  (SELECT count(*) FROM pg_roles WHERE rolname = '$2' AND (rolcreaterole OR rolreplication OR rolbypassrls)),
  (SELECT count(*) FROM pg_database d WHERE d.datname IN ('postgres', 'template1')
     AND (d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a
                                      WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT')))
  + (SELECT count(*) FROM pg_roles r WHERE r.rolname = 'pg_monitor'
       AND NOT has_database_privilege(r.oid, (SELECT oid FROM pg_database WHERE datname = 'postgres'), 'CONNECT'))
  + (SELECT count(*) FROM pg_roles r WHERE r.rolname = '$2' AND '${3:-postgres}' = 'postgres'
       AND NOT has_database_privilege(r.oid, (SELECT oid FROM pg_database WHERE datname = 'postgres'), 'CONNECT'))"

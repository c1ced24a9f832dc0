"""Tenant databases: created, changed and dropped in the database itself over a direct psycopg connection to the
primary (fast, no playbook). Identifiers always go through psycopg.sql; names are validated before."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, NotFound, check_db_name
from webapp.services import access, audit, capacity
from webapp.services.audit import Actor
from webapp.services.crypto import SecretBox, generate_password
from webapp.services.pgconn import connect_primary, scram_verifier
from webapp.store.models import Database, DatabaseDump, Instance, User, utcnow




def _opt_int(value, field, lo, hi):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Invalid(f"{field} must be an integer from {lo} to {hi}", field=field)
    return value


# What a tenant may set on their database (ALTER DATABASE ... SET): planner, memory, timeout and client settings.
# An allowlist: a setting left out cannot undo what pgaas enforces. Left out on purpose, among others:
# default_transaction_read_only and transaction_read_only (the read-only switch over quota), default_tablespace
# and temp_tablespaces, row_security, session_replication_role, local_preload_libraries, synchronous_commit (the
# instance's durability), password_encryption, and debugging settings.
TENANT_PARAMETERS = frozenset("""
application_name array_nulls backslash_quote bytea_output check_function_bodies client_encoding client_min_messages
constraint_exclusion cpu_index_tuple_cost cpu_operator_cost cpu_tuple_cost cursor_tuple_fraction datestyle
default_statistics_target default_text_search_config default_toast_compression default_transaction_deferrable
default_transaction_isolation effective_cache_size effective_io_concurrency enable_async_append enable_bitmapscan
enable_gathermerge enable_hashagg enable_hashjoin enable_incremental_sort enable_indexonlyscan enable_indexscan
enable_material enable_memoize enable_mergejoin enable_nestloop enable_parallel_append enable_parallel_hash
enable_partition_pruning enable_partitionwise_aggregate enable_partitionwise_join enable_seqscan enable_sort
enable_tidscan escape_string_warning extra_float_digits from_collapse_limit geqo geqo_effort geqo_generations
geqo_pool_size geqo_seed geqo_selection_bias geqo_threshold gin_fuzzy_search_limit gin_pending_list_limit
hash_mem_multiplier idle_in_transaction_session_timeout idle_session_timeout intervalstyle jit jit_above_cost
jit_expressions jit_inline_above_cost jit_optimize_above_cost jit_tuple_deforming join_collapse_limit lc_monetary
lc_numeric lc_time lock_timeout maintenance_io_concurrency maintenance_work_mem max_parallel_maintenance_workers
max_parallel_workers_per_gather min_parallel_index_scan_size min_parallel_table_scan_size
parallel_leader_participation parallel_setup_cost parallel_tuple_cost plan_cache_mode quote_all_identifiers
random_page_cost recursive_worktable_factor search_path seq_page_cost standard_conforming_strings statement_timeout
synchronize_seqscans temp_buffers timezone timezone_abbreviations transform_null_equals work_mem xmlbinary
xmloption""".split())
_PARAMETER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,62}$")


def checked_parameters(parameters: dict, current: dict) -> dict[str, str | None]:
    """{setting: value or None (reset)} with names in lowercase, each one a tenant may set; Invalid names the first
    that is not. A reset of a setting the database has is always allowed (one set before the allowlist)."""
    out = {}
    for key, value in parameters.items():
        if not isinstance(key, str) or not _PARAMETER_RE.match(key):
            raise Invalid(f"unknown parameter {key!r}", field="parameters")
        name = key.lower()
        if value is None and (name in TENANT_PARAMETERS or name in current):
            out[name] = None
            continue
        if name not in TENANT_PARAMETERS:
            raise Invalid(f"parameter {key!r} cannot be set per database: a database may change planner, memory, "
                          "timeout and client settings (e.g. work_mem, statement_timeout, search_path, TimeZone); "
                          "settings that would undo its quota or isolation, and server-wide ones, are an "
                          "administrator's (instance settings)", field="parameters")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Invalid(f"parameter {key!r} needs a string or number value", field="parameters")
        out[name] = str(value)
    return out


def uris(db: Database) -> tuple[str, str]:
    hosts = ",".join(f"{m.address}:{m.pg_port}" for m in db.instance.members)
    base = f"postgresql://{db.role_name}@{hosts}/{db.name}"
    from webapp.services import certificates

    tls = f"&{certificates.uri_params(db.instance)}" if certificates.ca_cert(db.instance) else ""
    return f"{base}?target_session_attrs=read-write{tls}", f"{base}?target_session_attrs=read-only{tls}"


# -- lookups (a user sees only their own; another user's database is a 404) ---------------------------------
def visible(s: Session, actor: Actor, instance: str | None = None, owner: str | None = None,
            limit: int | None = None, offset: int = 0) -> list[Database]:
    q = select(Database).join(Instance).order_by(Instance.name, Database.name).limit(limit).offset(offset)
    if not actor.is_admin:
        q = q.where(Database.owner_id == actor.user_id)
    elif owner:
        q = q.join(User, Database.owner_id == User.id).where(User.username == owner)
    if instance:
        q = q.where(Instance.name == instance)
    return list(s.scalars(q))


def get(s: Session, actor: Actor, instance: str, name: str) -> Database:
    db = s.scalar(select(Database).join(Instance).where(Instance.name == instance, Database.name == name))
    if db is None or (not actor.is_admin and db.owner_id != actor.user_id):
        raise NotFound(f"no database {name!r} on instance {instance!r}")
    return db


# -- changes --------------------------------------------------------------------------------------------------
def create(s: Session, box: SecretBox, actor: Actor, instance: str, name, quota_mb=None,
           connection_limit=None, parameters=None, *, limits: capacity.Defaults | None = None
           ) -> tuple[Database, str]:
    """parameters ({setting: value}) are set with update(); if one is refused, the new database and role are
    dropped again and the error raised: a create either happens whole or not at all. The owner (the actor) must
    have room for it in their allowance (services/capacity.py; limits: the configured defaults, None: only the
    allowances set on users); with a storage allowance, a database without quota_mb gets a share of it."""
    if parameters is not None and not isinstance(parameters, dict):
        raise Invalid("parameters must be an object of setting: value", field="parameters")
    checked_parameters(parameters or {}, {})  # refused before anything is made
    check_db_name(name)
    quota_mb = _opt_int(quota_mb, "quota_mb", L.QUOTA_MB_MIN, L.QUOTA_MB_MAX)
    connection_limit = _opt_int(connection_limit, "connection_limit", L.CONNECTION_LIMIT_MIN,
                                L.CONNECTION_LIMIT_MAX)
    inst = access.get_visible(s, actor, instance)  # a user creates databases only on instances open to them
    if s.scalar(select(Database).where(Database.instance_id == inst.id, Database.name == name)):
        raise Conflict(f"database {name!r} already exists on instance {instance!r}")
    quota_mb = capacity.check_new_database(s, actor, actor.user_id, limits or capacity.Defaults(), quota_mb)
    db = Database(instance=inst, owner_id=actor.user_id, name=name, role_name=name, quota_mb=quota_mb,
                  connection_limit=connection_limit, parameters={})
    s.add(db)
    try:
        s.flush()  # the unique constraint settles a race between two creates of one name
    except IntegrityError:
        s.rollback()
        raise Conflict(f"database {name!r} already exists on instance {instance!r}") from None
    password = generate_password(24)
    limit = connection_limit if connection_limit is not None else -1
    with connect_primary(inst, box) as conn:
        exists = conn.execute("SELECT (SELECT count(*) FROM pg_roles WHERE rolname = %s) + "
                              "(SELECT count(*) FROM pg_database WHERE datname = %s)", (name, name)).fetchone()[0]
        if exists:
            raise Conflict(f"a role or database named {name!r} already exists on instance {instance!r}")
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                             "CONNECTION LIMIT {} PASSWORD {}").format(
            ident, sql.Literal(limit), sql.Literal(scram_verifier(password))))
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} CONNECTION LIMIT {}").format(
                ident, ident, sql.Literal(limit)))
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
            conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(ident, ident))
        except psycopg.Error:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
            raise
    if parameters:
        try:
            update(s, box, actor, db, parameters=parameters, record=False, limits=limits)
        except (Invalid, psycopg.Error):
            drop(s, box, actor, db, record=False)
            raise
    audit.record(s, actor, "database.create", "database", f"{instance}/{name}",
                 detail=", ".join(f"{k}={v}" for k, v in sorted((parameters or {}).items())))
    return db, password


def set_password(s: Session, box: SecretBox, actor: Actor, db: Database, password=None) -> str:
    if password is None:
        password = generate_password(24)
    elif not isinstance(password, str) or not L.DB_PASSWORD_MIN <= len(password) <= L.DB_PASSWORD_MAX:
        raise Invalid(f"password must be a string of {L.DB_PASSWORD_MIN} to {L.DB_PASSWORD_MAX} characters",
                      field="password")
    with connect_primary(db.instance, box) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(db.role_name),
                                                                 sql.Literal(scram_verifier(password))))
    audit.record(s, actor, "database.password", "database", f"{db.instance.name}/{db.name}")
    return password


def update(s: Session, box: SecretBox, actor: Actor, db: Database, quota_mb=..., connection_limit=...,
           parameters=None, record: bool = True, *, limits: capacity.Defaults | None = None) -> Database:
    """quota_mb / connection_limit: ... means unchanged, None means no limit. A quota stays within its owner's
    storage allowance (limits: the configured defaults; None: only the allowances set on users)."""
    if quota_mb is not ...:
        quota_mb = _opt_int(quota_mb, "quota_mb", L.QUOTA_MB_MIN, L.QUOTA_MB_MAX)
        if quota_mb != db.quota_mb:
            capacity.check_quota(s, actor, db, limits or capacity.Defaults(), quota_mb)
        db.quota_mb = quota_mb
    if parameters is not None and not isinstance(parameters, dict):
        raise Invalid("parameters must be an object of setting: value (null resets a setting)", field="parameters")
    wanted = checked_parameters(parameters or {}, db.parameters or {})  # all of them before any is set
    changed = []
    with connect_primary(db.instance, box) as conn:
        if connection_limit is not ...:
            db.connection_limit = _opt_int(connection_limit, "connection_limit", L.CONNECTION_LIMIT_MIN,
                                           L.CONNECTION_LIMIT_MAX)
            limit = sql.Literal(db.connection_limit if db.connection_limit is not None else -1)
            conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(sql.Identifier(db.name), limit))
            conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(sql.Identifier(db.role_name), limit))
            changed.append(f"connection_limit={db.connection_limit}")
        params = dict(db.parameters or {})
        for key, value in wanted.items():
            if value is None:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(sql.Identifier(db.name),
                                                                         sql.Identifier(key)))
                params.pop(key, None)
                continue
            try:
                # the server validates the value; its message is the answer
                conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(db.name), sql.Identifier(key), sql.Literal(str(value))))
            except psycopg.Error as exc:
                raise Invalid(f"{key}: {exc.diag.message_primary or exc}", field="parameters") from None
            params[key] = str(value)
        db.parameters = params
    changed += [f"{k}={v}" for k, v in wanted.items()]
    if quota_mb is not ...:
        changed.append(f"quota_mb={db.quota_mb}")
    if record:
        audit.record(s, actor, "database.update", "database", f"{db.instance.name}/{db.name}",
                     detail=", ".join(changed))
    return db


def drop(s: Session, box: SecretBox, actor: Actor, db: Database, record: bool = True) -> None:
    with connect_primary(db.instance, box) as conn:
        ident = sql.Identifier(db.name)
        conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 0").format(ident))
        _end_sessions(conn, db.name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(db.role_name)))
    if record:
        audit.record(s, actor, "database.delete", "database", f"{db.instance.name}/{db.name}")
    s.delete(db)


def live_stats(box: SecretBox, dbs: list[Database]) -> dict[int, dict]:
    """Size and connections of each database, one connection per instance."""
    out: dict[int, dict] = {}
    by_inst: dict[int, list[Database]] = {}
    for db in dbs:
        by_inst.setdefault(db.instance_id, []).append(db)
    for group in by_inst.values():
        inst = group[0].instance
        try:
            with connect_primary(inst, box) as conn:
                rows = conn.execute("SELECT datname, pg_database_size(datname), numbackends FROM pg_stat_database "
                                    "WHERE datname = ANY(%s)", ([d.name for d in group],)).fetchall()
        except Conflict:
            continue
        sizes = {r[0]: (r[1], r[2]) for r in rows}
        for d in group:
            if d.name in sizes:
                out[d.id] = {"size_bytes": sizes[d.name][0], "connections": sizes[d.name][1]}
    return out


# -- final dumps and restore ----------------------------------------------------------------------------------
@dataclass
class DumpSettings:
    dumps_dir: str
    grace_seconds: float
    pg_bin: str
    retention_seconds: float = 24 * 3600  # downloadable dumps and waiting uploads (services/dumps.py)


def latest_dump(s: Session, actor: Actor, instance: str, name: str) -> DatabaseDump:
    q = (select(DatabaseDump).where(DatabaseDump.instance_name == instance, DatabaseDump.database_name == name,
                                    DatabaseDump.restored_at.is_(None), DatabaseDump.expires_at > utcnow())
         .order_by(DatabaseDump.id.desc()))
    if not actor.is_admin:
        q = q.where(DatabaseDump.owner_id == actor.user_id)
    dump = s.scalars(q).first()
    if dump is None or not Path(dump.path).exists():
        raise NotFound(f"no final dump of {name!r} on instance {instance!r} to restore (none kept, or expired)")
    return dump


def restorable_dumps(s: Session, actor: Actor) -> list[DatabaseDump]:
    """The final dumps a restore would use now: the newest unexpired, unrestored dump of each deleted database
    (the actor's own; an admin's: all), whose file is still there."""
    q = (select(DatabaseDump).where(DatabaseDump.restored_at.is_(None), DatabaseDump.expires_at > utcnow())
         .order_by(DatabaseDump.id.desc()))
    if not actor.is_admin:
        q = q.where(DatabaseDump.owner_id == actor.user_id)
    seen, out = set(), []
    for dump in s.scalars(q):
        key = (dump.instance_name, dump.database_name)
        if key not in seen and Path(dump.path).exists():
            seen.add(key)
            out.append(dump)
    return out


def prune_dumps(s: Session) -> int:
    """Delete expired and restored dumps (files and rows)."""
    gone = 0
    for dump in s.scalars(select(DatabaseDump).where(
            (DatabaseDump.expires_at <= utcnow()) | DatabaseDump.restored_at.is_not(None))):
        Path(dump.path).unlink(missing_ok=True)
        s.delete(dump)
        gone += 1
    return gone


def _end_sessions(conn, dbname: str, writers_only: bool = False) -> None:
    """End the database's sessions (only those holding a transaction id, i.e. that wrote, with writers_only)."""
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                 "pg_backend_pid()" + (" AND backend_xid IS NOT NULL" if writers_only else ""), (dbname,))


# -- quotas ---------------------------------------------------------------------------------------------------
# Over its quota, a database becomes read-only: default_transaction_read_only = on for the database and for its
# role in it (set by the superuser; the role-in-database setting comes before the owner's own ALTER ROLE ... SET).
# PostgreSQL lets the owner change both, and any session may override them (SET, BEGIN READ WRITE; large objects
# are written even in a read-only transaction on PostgreSQL 15), so the settings only guide honest clients. What
# enforces the quota is the check that follows: a database that grows past the size it had when it became
# read-only (by more than LOCK_SLACK), or whose read-only setting was changed, is locked: its role may no longer log
# in (NOLOGIN, which a role without CREATEROLE cannot undo) and its sessions end. So a tenant writes at most about
# one check interval past the quota. Raising the quota above the size (or freeing space, when only read-only)
# lifts it. Nothing is ever deleted.
LOCK_SLACK_BYTES = 8 * 1024 * 1024  # or 1% of the quota if more: autovacuum's visibility and free space maps
_TRUE = ("on", "true", "yes", "1")


def _read_only(conn, db: Database, on: bool) -> None:
    dbi, role = sql.Identifier(db.name), sql.Identifier(db.role_name)
    if on:
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(dbi))
        conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(role, dbi))
    else:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(dbi))
        conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET default_transaction_read_only").format(role, dbi))


def _login(conn, db: Database, allowed: bool) -> None:
    conn.execute(sql.SQL("ALTER ROLE {} " + ("LOGIN" if allowed else "NOLOGIN")).format(sql.Identifier(db.role_name)))


def _still_read_only(setconfig: list[str] | None) -> bool:
    """Whether the role-in-database settings still make sessions read-only."""
    for item in setconfig or []:
        name, _, value = item.partition("=")
        if name.lower() == "default_transaction_read_only":
            return value.strip().lower() in _TRUE
    return False


def _quota_state(conn, group: list[Database]) -> dict[str, tuple[int, bool, list[str] | None]]:
    """{database: (size in bytes, whether its role may log in, its role's settings in it)}."""
    rows = conn.execute(
        "SELECT d.datname, pg_database_size(d.oid), coalesce(r.rolcanlogin, false), "
        "(SELECT s.setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = r.oid) "
        "FROM unnest(%s::text[], %s::text[]) AS t(datname, rolname) JOIN pg_database d ON d.datname = t.datname "
        "LEFT JOIN pg_roles r ON r.rolname = t.rolname",
        ([d.name for d in group], [d.role_name for d in group])).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def enforce_quotas(s: Session, box: SecretBox) -> dict[str, str]:
    """One pass (see above): ok -> over_quota (read-only) -> locked (no login) when the tenant writes anyway, and
    back to ok once within the quota. Returns {instance/db: new status} for the databases whose status changed."""
    changed: dict[str, str] = {}
    dbs = list(s.scalars(select(Database).join(Instance).where(Instance.status == "available")))
    by_inst: dict[int, list[Database]] = {}
    for db in dbs:
        if db.quota_mb is not None or db.status != "ok":
            by_inst.setdefault(db.instance_id, []).append(db)
    system = Actor("pgaas-quota")

    def note(db: Database, status: str, action: str, detail: str) -> None:
        db.status = status
        changed[f"{db.instance.name}/{db.name}"] = status
        audit.record(s, system, action, "database", f"{db.instance.name}/{db.name}", detail=detail)

    for group in by_inst.values():
        try:
            conn = connect_primary(group[0].instance, box)
        except Conflict:
            continue  # instance unreachable: check again next pass
        with conn:
            state = _quota_state(conn, group)
            for db in group:
                if db.name not in state:
                    continue
                size, can_login, role_settings = state[db.name]
                quota = db.quota_mb * 1024 * 1024 if db.quota_mb is not None else None
                over = quota is not None and size > quota
                if not over:
                    if db.status != "ok":
                        _read_only(conn, db, False)
                        if db.status == "locked" or not can_login:
                            _login(conn, db, True)
                        _end_sessions(conn, db.name)
                        db.quota_baseline_bytes = None
                        note(db, "ok", "database.quota_ok",
                             f"size {size} within quota {db.quota_mb} MB: writable" if quota is not None else
                             "no quota: writable")
                    continue
                if db.status == "ok":
                    _read_only(conn, db, True)
                    _end_sessions(conn, db.name)
                    db.quota_baseline_bytes = size
                    note(db, "over_quota", "database.over_quota", f"size {size} > quota {db.quota_mb} MB: read-only")
                    continue
                if db.status == "locked":
                    if can_login:  # not by the tenant (it cannot): put it back
                        _login(conn, db, False)
                        _end_sessions(conn, db.name)
                    continue
                if db.quota_baseline_bytes is None:  # read-only since before this check: set it up as now
                    _read_only(conn, db, True)
                    db.quota_baseline_bytes = size
                    continue
                baseline = db.quota_baseline_bytes
                grew = size - baseline > max(LOCK_SLACK_BYTES, quota // 100)
                if grew or not _still_read_only(role_settings):
                    _login(conn, db, False)
                    _end_sessions(conn, db.name)
                    _read_only(conn, db, True)
                    why = (f"it grew from {baseline} to {size} bytes while read-only" if grew else
                           "its read-only setting was changed")
                    note(db, "locked", "database.locked",
                         f"over quota {db.quota_mb} MB and {why}: its role may not log in until it is within its "
                         "quota again")
                    continue
                db.quota_baseline_bytes = min(baseline, size)
                _end_sessions(conn, db.name, writers_only=True)  # they overrode the read-only default
    return changed

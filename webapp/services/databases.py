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

from webapp.services import Conflict, Invalid, NotFound, check_db_name
from webapp.services import access, audit
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
           connection_limit=None, parameters=None) -> tuple[Database, str]:
    """parameters ({setting: value}) are set with update(); if one is refused, the new database and role are
    dropped again and the error raised: a create either happens whole or not at all."""
    if parameters is not None and not isinstance(parameters, dict):
        raise Invalid("parameters must be an object of setting: value", field="parameters")
    check_db_name(name)
    quota_mb = _opt_int(quota_mb, "quota_mb", 1, 16 * 1024 * 1024)
    connection_limit = _opt_int(connection_limit, "connection_limit", 1, 10000)
    inst = access.get_visible(s, actor, instance)  # a user creates databases only on instances open to them
    if s.scalar(select(Database).where(Database.instance_id == inst.id, Database.name == name)):
        raise Conflict(f"database {name!r} already exists on instance {instance!r}")
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
            update(s, box, actor, db, parameters=parameters, record=False)
        except (Invalid, psycopg.Error):
            drop(s, box, actor, db, record=False)
            raise
    audit.record(s, actor, "database.create", "database", f"{instance}/{name}",
                 detail=", ".join(f"{k}={v}" for k, v in sorted((parameters or {}).items())))
    return db, password


def set_password(s: Session, box: SecretBox, actor: Actor, db: Database, password=None) -> str:
    if password is None:
        password = generate_password(24)
    elif not isinstance(password, str) or not 12 <= len(password) <= 128:
        raise Invalid("password must be a string of 12 to 128 characters", field="password")
    with connect_primary(db.instance, box) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(db.role_name),
                                                                 sql.Literal(scram_verifier(password))))
    audit.record(s, actor, "database.password", "database", f"{db.instance.name}/{db.name}")
    return password


def update(s: Session, box: SecretBox, actor: Actor, db: Database, quota_mb=..., connection_limit=...,
           parameters=None, record: bool = True) -> Database:
    """quota_mb / connection_limit: ... means unchanged, None means no limit."""
    if quota_mb is not ...:
        db.quota_mb = _opt_int(quota_mb, "quota_mb", 1, 16 * 1024 * 1024)
    if parameters is not None and not isinstance(parameters, dict):
        raise Invalid("parameters must be an object of setting: value (null resets a setting)", field="parameters")
    changed = []
    with connect_primary(db.instance, box) as conn:
        if connection_limit is not ...:
            db.connection_limit = _opt_int(connection_limit, "connection_limit", 1, 10000)
            limit = sql.Literal(db.connection_limit if db.connection_limit is not None else -1)
            conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(sql.Identifier(db.name), limit))
            conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(sql.Identifier(db.role_name), limit))
            changed.append(f"connection_limit={db.connection_limit}")
        params = dict(db.parameters or {})
        for key, value in (parameters or {}).items():
            if not isinstance(key, str) or not re.match(r"^[a-z_][a-z0-9_.]{0,62}$", key):
                raise Invalid(f"unknown parameter {key!r}", field="parameters")
            row = conn.execute("SELECT context FROM pg_settings WHERE name = %s", (key,)).fetchone()
            if row is None:
                raise Invalid(f"unknown parameter {key!r}", field="parameters")
            if row[0] != "user":
                raise Invalid(f"parameter {key!r} cannot be set per database (context {row[0]}); ask an "
                              "administrator to change the instance's settings", field="parameters")
            if value is None:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(sql.Identifier(db.name),
                                                                         sql.Identifier(key)))
                params.pop(key, None)
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise Invalid(f"parameter {key!r} needs a string or number value", field="parameters")
            try:
                # the server validates the value; its message is the answer
                conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(db.name), sql.Identifier(key), sql.Literal(str(value))))
            except psycopg.Error as exc:
                raise Invalid(f"{key}: {exc.diag.message_primary or exc}", field="parameters") from None
            params[key] = str(value)
        db.parameters = params
    changed += [f"{k}={v}" for k, v in (parameters or {}).items()]
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
def enforce_quotas(s: Session, box: SecretBox) -> dict[str, str]:
    """One pass: a database over its quota becomes read-only (default_transaction_read_only for new sessions;
    existing sessions are ended, and any session that still writes, e.g. after SET default_transaction_read_only
    = off, is ended at every pass). Back under its quota (or the quota raised), writes come back. Nothing is
    deleted. Returns {instance/db: new status} for the databases whose status changed."""
    changed: dict[str, str] = {}
    dbs = list(s.scalars(select(Database).join(Instance).where(Instance.status == "available")))
    by_inst: dict[int, list[Database]] = {}
    for db in dbs:
        if db.quota_mb is not None or db.status != "ok":
            by_inst.setdefault(db.instance_id, []).append(db)
    system = Actor("pgaas-quota")
    for group in by_inst.values():
        try:
            conn = connect_primary(group[0].instance, box)
        except Conflict:
            continue  # instance unreachable: check again next pass
        with conn:
            sizes = dict(conn.execute("SELECT datname, pg_database_size(datname) FROM pg_database "
                                      "WHERE datname = ANY(%s)", ([d.name for d in group],)).fetchall())
            for db in group:
                if db.name not in sizes:
                    continue
                over = db.quota_mb is not None and sizes[db.name] > db.quota_mb * 1024 * 1024
                ident = sql.Identifier(db.name)
                if over and db.status != "over_quota":
                    conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(ident))
                    _end_sessions(conn, db.name)
                    db.status = "over_quota"
                    changed[f"{db.instance.name}/{db.name}"] = db.status
                    audit.record(s, system, "database.over_quota", "database", f"{db.instance.name}/{db.name}",
                                 detail=f"size {sizes[db.name]} > quota {db.quota_mb} MB: read-only")
                elif over:
                    _end_sessions(conn, db.name, writers_only=True)  # they overrode the read-only default
                elif db.status == "over_quota":
                    conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(ident))
                    _end_sessions(conn, db.name)
                    db.status = "ok"
                    changed[f"{db.instance.name}/{db.name}"] = db.status
                    audit.record(s, system, "database.quota_ok", "database", f"{db.instance.name}/{db.name}",
                                 detail=f"size {sizes[db.name]} within quota {db.quota_mb} MB: writable")
    return changed

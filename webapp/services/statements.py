"""Query insights: pg_stat_statements, which every instance loads (roles/postgres_node: shared_preload_libraries).

Read with the sampler's monitoring role (pg_monitor, so it may read every role's statement text) on each member
that answers, so statements run through the read-only URI on the standby count as well as those on the primary;
rows of the same statement are merged by queryid. A database's list is filtered by that database's oid in SQL:
no other database's row leaves the instance. The extension's view lives in the postgres database, which tenants
cannot connect to. A reset asks each member as the superuser, for that one database only."""
from __future__ import annotations

import psycopg
from sqlalchemy.orm import Session

from webapp.schemas.statements import ORDERS as ORDER_NAMES, TOP_DEFAULT, TOP_MAX
from webapp.services import Conflict, Invalid, audit, certificates
from webapp.services.crypto import SecretBox
from webapp.services.metrics import MONITOR_OPTIONS, MONITOR_ROLE, ensure_monitor_role
from webapp.services.pgconn import connect_primary
from webapp.store.models import Instance, Member

LIBRARY = "pg_stat_statements"
# order: (the answer's key, the view's expression each member sorts by before its rows are merged)
ORDERS = dict(zip(ORDER_NAMES, [("total_time_ms", "s.total_exec_time"), ("calls", "s.calls"),
                                 ("mean_time_ms", "s.mean_exec_time"), ("rows", "s.rows")], strict=True))
TEXT_MAX = 2000  # characters of a statement's normalized text in an answer

# Utility statements keep their literals (only plannable ones are normalized): role DDL (CREATE or ALTER ROLE or
# USER, USER MAPPING) can carry a password or a SCRAM verifier, so it is never shown.
_ROWS_SQL = """
SELECT s.queryid, d.datname, s.query, s.calls, s.total_exec_time, s.rows
  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE s.toplevel AND s.queryid IS NOT NULL AND (%(db)s::text IS NULL OR d.datname = %(db)s::text)
   AND s.query !~* '^\\s*(create|alter)\\s+(role|user)\\M'
 ORDER BY {order} DESC LIMIT {limit}"""  # order: one of ORDERS' expressions, never the caller's text


def _member_connect(inst: Instance, m: Member, user: str, password: str, **extra) -> psycopg.Connection:
    return psycopg.connect(host=m.address, port=m.pg_port, dbname="postgres", user=user, password=password,
                           autocommit=True, connect_timeout=3, application_name="pgaas-insights",
                           **certificates.libpq_params(inst), **extra)


def _ensure_loaded(inst: Instance, box: SecretBox) -> None:
    """The extension's view in the postgres database (made once, on the primary; standbys replay it). An instance
    made before query insights existed has not loaded the library: it says how to load it."""
    with connect_primary(inst, box) as conn:
        libraries = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
        if LIBRARY not in [x.strip().strip('"') for x in libraries.split(",")]:
            raise Conflict(f"instance {inst.name!r} does not load {LIBRARY} (it was made before query insights): "
                           f"set shared_preload_libraries to {LIBRARY} in its settings, then restart it")
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (LIBRARY,)).fetchone() is None:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {LIBRARY}")


def _order(order: str | None) -> str:
    order = order or "total_time"
    if order not in ORDERS:
        raise Invalid(f"order must be one of {', '.join(ORDERS)}", field="order")
    return order


def _did_not_answer(inst: Instance, exc: psycopg.Error) -> Conflict:
    return Conflict(f"instance {inst.name!r} did not answer: {str(exc).splitlines()[0] if str(exc) else exc}")


def _limit(limit) -> int:
    if limit is None or limit == "":
        return TOP_DEFAULT
    try:
        n = int(limit)
    except (TypeError, ValueError):
        raise Invalid(f"limit must be a whole number from 1 to {TOP_MAX}", field="limit") from None
    if not 1 <= n <= TOP_MAX:
        raise Invalid(f"limit must be a whole number from 1 to {TOP_MAX}", field="limit")
    return n


def top(s: Session, box: SecretBox, inst: Instance, database: str | None = None, limit=None,
        order: str | None = None) -> dict:
    """The instance's (or one database's) top statements, merged over the members that answer:
    {"statements": [...], "members": [names asked], "unreachable": [names that did not answer]}."""
    order, n = _order(order), _limit(limit)
    if database is not None and (len(database.encode()) > 63 or "\x00" in database):
        raise Invalid("database must be a database's name (at most 63 bytes)", field="database")
    key, expression = ORDERS[order]
    sql = _ROWS_SQL.format(order=expression, limit=TOP_MAX * 5)  # each member's top rows, merged below
    try:
        _ensure_loaded(inst, box)
        password = ensure_monitor_role(s, box, inst)
    except psycopg.Error as exc:
        raise _did_not_answer(inst, exc) from None
    merged: dict[tuple[str, int], dict] = {}
    asked, unreachable = [], []
    for m in inst.members:
        try:
            with _member_connect(inst, m, MONITOR_ROLE, password, options=MONITOR_OPTIONS) as conn:
                rows = conn.execute(sql, {"db": database}).fetchall()
        except psycopg.Error:
            unreachable.append(m.name)
            continue
        asked.append(m.name)
        for queryid, datname, query, calls, total, nrows in rows:
            row = merged.setdefault((datname, queryid), {
                "queryid": str(queryid), "database": datname, "query": (query or "")[:TEXT_MAX], "calls": 0,
                "total_time_ms": 0.0, "rows": 0, "members": []})
            row["calls"] += calls
            row["total_time_ms"] += total
            row["rows"] += nrows
            row["members"].append(m.name)
    if not asked:
        raise Conflict(f"no member of instance {inst.name!r} answered: its statements cannot be read now")
    out = list(merged.values())
    for row in out:
        row["total_time_ms"] = round(row["total_time_ms"], 3)
        row["mean_time_ms"] = round(row["total_time_ms"] / row["calls"], 3) if row["calls"] else 0.0
    out.sort(key=lambda r: r[key], reverse=True)
    return {"statements": out[:n], "order": order, "limit": n,
            "members": asked, "unreachable": unreachable}


def reset(s: Session, box: SecretBox, actor: audit.Actor, inst: Instance, database: str) -> dict:
    """Forget one database's statements on every member that answers (the superuser: only it may reset)."""
    try:
        _ensure_loaded(inst, box)
    except psycopg.Error as exc:
        raise _did_not_answer(inst, exc) from None
    secrets = box.open(inst.secrets_enc)
    done, unreachable = [], []
    for m in inst.members:
        try:
            with _member_connect(inst, m, "postgres", secrets["pgaas_superuser_password"]) as conn:
                conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = %s), 0)",
                             (database,))
        except psycopg.Error:
            unreachable.append(m.name)
            continue
        done.append(m.name)
    if not done:
        raise Conflict(f"no member of instance {inst.name!r} answered: nothing was reset")
    audit.record(s, actor, "database.statements_reset", "database", f"{inst.name}/{database}",
                 detail=f"on {', '.join(done)}" + (f"; {', '.join(unreachable)} did not answer" if unreachable else ""))
    return {"database": database, "reset_on": done, "unreachable": unreachable}


def for_report(s: Session, box: SecretBox, inst: Instance, database: str, limit: int = 10) -> list[dict] | None:
    """A report's top statements; None when the instance cannot tell now (the report says so)."""
    try:
        return top(s, box, inst, database, limit)["statements"]
    except Conflict:
        return None

"""Monitoring: a sampler (one connection per instance per cycle, as a pg_monitor role, with statement and lock
timeouts), history with roll-ups and retention, and the queries behind the metrics API and /metrics."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from webapp.services import Invalid
from webapp.services import failover, livestate
from webapp.services import instances as isvc
from webapp.services.crypto import SecretBox, generate_password
from webapp.services.pgconn import conninfo, connect_primary, scram_verifier
from webapp.store.models import Database, DatabaseSample, Instance, InstanceSample, aware, utcnow

MONITOR_ROLE = "pgaas_monitor"
# Every monitoring query gives up quickly: a locked table can never pile up monitoring sessions.
MONITOR_OPTIONS = "-c statement_timeout=2000 -c lock_timeout=500 -c idle_in_transaction_session_timeout=5000"
DB_COUNTERS = ("xact_commit", "xact_rollback", "blks_hit", "blks_read", "tup_written", "deadlocks", "temp_bytes")


@dataclass
class Retention:
    raw_seconds: float = 24 * 3600
    rollup_seconds: float = 30 * 24 * 3600
    rollup_step: int = 300


# -- the monitoring role ----------------------------------------------------------------------------------------
def ensure_monitor_role(s: Session, box: SecretBox, inst: Instance) -> str:
    """The sampler's own login: member of pg_monitor, never superuser. Created once per instance."""
    secrets = box.open(inst.secrets_enc)
    if "pgaas_monitor_password" in secrets:
        return secrets["pgaas_monitor_password"]
    password = generate_password(32)
    with connect_primary(inst, box) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MONITOR_ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(f"{verb} ROLE {MONITOR_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD "
                     f"'{scram_verifier(password)}'")
        conn.execute(f"GRANT pg_monitor TO {MONITOR_ROLE}")
    secrets["pgaas_monitor_password"] = password
    inst.secrets_enc = box.seal(secrets)
    s.flush()
    return password


def monitor_connect(inst: Instance, password: str, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(user=MONITOR_ROLE, password=password, autocommit=True, options=MONITOR_OPTIONS,
                           **{**conninfo(inst, dbname), "connect_timeout": 3, "application_name": "pgaas-monitor"})


# -- sampling -----------------------------------------------------------------------------------------------------
SAMPLER_THREADS = 8  # instances measured at once: the network waits (Patroni, connect, queries) overlap


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _measure(inst: Instance, password: str | None, dbnames: list[str], problem: str | None = None) -> dict:
    """The network part of one instance's sample, safe in a thread of its own (it reads the instance and its
    loaded members, never the session): Patroni's view, then one monitoring connection for every query."""
    out = {"state": isvc.live_state(inst, timeout=1.0), "databases": [], "gauges": None, "lags": [],
           "errors": [problem] if problem else []}
    if password is None:
        return out
    try:
        with monitor_connect(inst, password) as conn:
            if dbnames:
                out["databases"] = conn.execute(
                    "SELECT d.datname, pg_database_size(d.datname), s.numbackends, s.xact_commit, "
                    "s.xact_rollback, s.blks_hit, s.blks_read, s.tup_inserted + s.tup_updated + s.tup_deleted, "
                    "s.deadlocks, s.temp_bytes FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid "
                    "WHERE d.datname = ANY(%s)", (dbnames,)).fetchall()
            out["gauges"] = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
                "current_setting('max_connections')::int, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
                "(SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database)::bigint").fetchone()
            out["lags"] = conn.execute(
                "SELECT application_name, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
                " extract(epoch FROM replay_lag)::float8, sync_state, state FROM pg_stat_replication").fetchall()
    except Exception as exc:  # one instance failing must not stop the cycle for the others
        out["errors"].append(_error(exc))
    return out


def _store(s: Session, inst: Instance, dbs: dict[str, Database], measured: dict, containers: dict[str, dict],
           now: datetime) -> dict:
    """The session part of one instance's sample: failover bookkeeping and the sample rows."""
    state = measured["state"]
    failover.observe(s, inst, state, now)  # lost standbys; changes of primary that no job recorded
    row = InstanceSample(at=now, instance_name=inst.name, healthy=state.healthy, detail={})
    members = {}
    for ms in ([state.primary] if state.primary else []) + state.replicas:
        members[ms.name] = {"role": ms.role, "state": ms.state, "lag_bytes": ms.lag_bytes,
                            "sync_state": ms.sync_state, "timeline": ms.timeline}
    row.timeline = state.primary.timeline if state.primary else None
    for r in measured["databases"]:
        s.add(DatabaseSample(
            at=now, instance_name=inst.name, database_name=r[0], size_bytes=r[1], numbackends=r[2],
            numbackends_max=r[2], xact_commit=r[3], xact_rollback=r[4], blks_hit=r[5], blks_read=r[6],
            tup_written=r[7], deadlocks=r[8], temp_bytes=r[9], quota_mb=dbs[r[0]].quota_mb))
    xact_total = None
    if measured["gauges"] is not None:
        row.connections, row.max_connections, row.wal_bytes, xact_total = measured["gauges"]
        lags = measured["lags"]
        for name, lag_b, lag_s, sync_state, rstate in lags:
            members.setdefault(name, {}).update(lag_bytes=lag_b, lag_seconds=lag_s or 0.0,
                                                sync_state=sync_state, replication=rstate)
        row.max_lag_bytes = max((x[1] or 0 for x in lags), default=None)
        row.max_lag_seconds = max((x[2] or 0.0 for x in lags), default=None)
    for m in inst.members:
        if m.name in containers:
            members.setdefault(m.name, {}).update(containers[m.name])
    errors = measured["errors"]
    row.detail = {"members": members, **({"xact_total": xact_total} if xact_total is not None else {}),
                  **({"errors": errors} if errors else {})}
    s.add(row)
    return row.detail


def _password(s: Session, box: SecretBox, inst: Instance) -> tuple[str | None, str | None]:
    try:
        return ensure_monitor_role(s, box, inst), None
    except Exception as exc:
        return None, _error(exc)


def sample_instance(s: Session, box: SecretBox, inst: Instance, provider, now: datetime | None = None,
                    containers: dict[str, dict] | None = None) -> dict:
    """One cycle for one instance: database counters, instance gauges, replication, Patroni and containers
    (`containers`: the cycle's container stats for every instance, else asked of the provider for this one)."""
    now = now or utcnow()
    dbs = {d.name: d for d in s.scalars(select(Database).where(Database.instance_id == inst.id))}
    password, problem = _password(s, box, inst)
    measured = _measure(inst, password, list(dbs), problem)
    if containers is None:
        containers = provider.stats([m.name for m in inst.members])
    return _store(s, inst, dbs, measured, containers, now)


def sample_all(s: Session, box: SecretBox, provider) -> dict:
    """One cycle for every available instance. The network waits of the instances overlap (SAMPLER_THREADS at
    once, still one monitoring connection per instance) and the containers of all of them are asked of the
    provider at once, meanwhile (one `podman stats` for the local provider); the rows are written here."""
    now = utcnow()
    insts = list(s.scalars(select(Instance).where(Instance.status == "available")))
    if not insts:
        return {}
    dbs: dict[int, dict[str, Database]] = {i.id: {} for i in insts}
    for d in s.scalars(select(Database).where(Database.instance_id.in_(list(dbs)))):
        dbs[d.instance_id][d.name] = d
    names = list(dict.fromkeys(m.name for inst in insts for m in inst.members))  # members loaded before threads
    logins = {inst.id: _password(s, box, inst) for inst in insts}
    with ThreadPoolExecutor(max_workers=min(SAMPLER_THREADS, len(insts) + 1), thread_name_prefix="pgaas-sample") \
            as pool:
        stats = pool.submit(provider.stats, names) if names else None
        measuring = {}
        for inst in insts:
            password, problem = logins[inst.id]
            measuring[inst.id] = pool.submit(_measure, inst, password, list(dbs[inst.id]), problem)
        try:
            containers = stats.result() if stats is not None else {}
        except Exception:  # no container numbers this cycle; the databases' still count
            containers = {}
        measured = {k: f.result() for k, f in measuring.items()}
    livestate.record(s, {inst.name: measured[inst.id]["state"] for inst in insts}, now)  # what the views read
    return {inst.name: _store(s, inst, dbs[inst.id], measured[inst.id], containers, now) for inst in insts}


# -- roll-ups and retention ---------------------------------------------------------------------------------------
def rollup_and_prune(s: Session, retention: Retention = Retention(), now: datetime | None = None) -> dict:
    """Raw samples older than raw_seconds are folded into rollup_step buckets (counters keep their last value,
    gauges their mean and max), then deleted; roll-ups older than rollup_seconds are deleted."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=retention.raw_seconds)
    step = retention.rollup_step
    made = 0
    old = list(s.scalars(select(DatabaseSample).where(DatabaseSample.resolution == 0, DatabaseSample.at < cutoff)
                         .order_by(DatabaseSample.at)))
    buckets: dict[tuple, list[DatabaseSample]] = {}
    for r in old:
        key = (r.instance_name, r.database_name, _bucket(r.at, step))
        buckets.setdefault(key, []).append(r)
    for (iname, dname, start), rows in buckets.items():
        last = rows[-1]
        s.add(DatabaseSample(
            at=start, resolution=step, instance_name=iname, database_name=dname,
            size_bytes=last.size_bytes, numbackends=round(sum(r.numbackends for r in rows) / len(rows)),
            numbackends_max=max(r.numbackends_max for r in rows), quota_mb=last.quota_mb,
            **{c: getattr(last, c) for c in DB_COUNTERS}))
        made += 1
    old_i = list(s.scalars(select(InstanceSample).where(InstanceSample.resolution == 0, InstanceSample.at < cutoff)
                           .order_by(InstanceSample.at)))
    ibuckets: dict[tuple, list[InstanceSample]] = {}
    for r in old_i:
        ibuckets.setdefault((r.instance_name, _bucket(r.at, step)), []).append(r)
    for (iname, start), rows in ibuckets.items():
        last = rows[-1]
        s.add(InstanceSample(
            at=start, resolution=step, instance_name=iname, healthy=all(r.healthy for r in rows),
            connections=round(sum(r.connections for r in rows) / len(rows)), max_connections=last.max_connections,
            wal_bytes=last.wal_bytes, timeline=last.timeline,
            max_lag_bytes=max((r.max_lag_bytes or 0 for r in rows), default=None),
            max_lag_seconds=max((r.max_lag_seconds or 0.0 for r in rows), default=None),
            detail=_rollup_detail(rows)))
        made += 1
    for r in old + old_i:
        s.delete(r)
    gone = 0
    horizon = now - timedelta(seconds=retention.rollup_seconds)
    for model in (DatabaseSample, InstanceSample):
        gone += s.execute(delete(model).where(model.resolution != 0, model.at < horizon)
                          .execution_options(synchronize_session=False)).rowcount or 0
    return {"rolled_up": len(old) + len(old_i), "rollups_made": made, "pruned": gone}


def _rollup_detail(rows: list[InstanceSample]) -> dict:
    """The last counter (xact_total) and per member the last role and state, the mean CPU, memory and volume."""
    last = rows[-1].detail or {}
    members: dict[str, dict] = {}
    for name, m in (last.get("members") or {}).items():
        members[name] = {k: m[k] for k in ("role", "state") if k in m}
        for key in ("cpu_percent", "memory_bytes", "volume_bytes", "lag_bytes"):
            vals = [v for r in rows if (v := ((r.detail or {}).get("members") or {}).get(name, {}).get(key))
                    is not None]
            if vals:
                members[name][key] = sum(vals) / len(vals)
    return {"samples": len(rows), **({"members": members} if members else {}),
            **({"xact_total": last["xact_total"]} if last.get("xact_total") is not None else {})}


def _bucket(at: datetime, step: int) -> datetime:
    ts = at.timestamp()
    return datetime.fromtimestamp(ts - ts % step, tz=at.tzinfo)


# -- reading --------------------------------------------------------------------------------------------------------
def parse_range(start: str | None, end: str | None, default_seconds: float = 3600) -> tuple[datetime, datetime]:
    def parse(v):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except (AttributeError, ValueError):
            raise Invalid(f"bad time {v!r}: use ISO 8601, e.g. 2026-11-28T10:00:00Z") from None
        return dt if dt.tzinfo else dt.replace(tzinfo=utcnow().tzinfo)

    t_end = parse(end) if end else utcnow()
    t_start = parse(start) if start else t_end - timedelta(seconds=default_seconds)
    if t_start >= t_end:
        raise Invalid("from must be before to")
    return t_start, t_end


def database_series(s: Session, instance: str, database: str, start: datetime, end: datetime) -> list[dict]:
    """Points with rates between consecutive samples: tps, rollbacks/s, tuples written/s; cache hit ratio."""
    rows = list(s.scalars(select(DatabaseSample).where(
        DatabaseSample.instance_name == instance, DatabaseSample.database_name == database,
        DatabaseSample.at >= start, DatabaseSample.at <= end).order_by(DatabaseSample.at, DatabaseSample.resolution)))
    points = []
    prev = None
    for r in rows:
        p = {"at": aware(r.at).isoformat(), "resolution": r.resolution, "size_bytes": r.size_bytes,
             "connections": r.numbackends, "connections_max": r.numbackends_max, "quota_mb": r.quota_mb,
             "quota_used": (r.size_bytes / (r.quota_mb * 1024 * 1024)) if r.quota_mb else None,
             "deadlocks": r.deadlocks, "temp_bytes": r.temp_bytes}
        if prev is not None:
            dt = (aware(r.at) - aware(prev.at)).total_seconds()
            reset = r.xact_commit < prev.xact_commit  # stats reset or a failover to a fresh counter
            if dt > 0 and not reset:
                p["tps"] = (r.xact_commit + r.xact_rollback - prev.xact_commit - prev.xact_rollback) / dt
                p["rollbacks_per_s"] = (r.xact_rollback - prev.xact_rollback) / dt
                p["tuples_written_per_s"] = (r.tup_written - prev.tup_written) / dt
                hit, read = r.blks_hit - prev.blks_hit, r.blks_read - prev.blks_read
                p["cache_hit_ratio"] = hit / (hit + read) if hit + read > 0 else None
        points.append(p)
        prev = r
    return points


def instance_series(s: Session, instance: str, start: datetime, end: datetime) -> list[dict]:
    rows = list(s.scalars(select(InstanceSample).where(
        InstanceSample.instance_name == instance, InstanceSample.at >= start, InstanceSample.at <= end)
        .order_by(InstanceSample.at)))
    points, prev = [], None
    for r in rows:
        p = {"at": aware(r.at).isoformat(), "resolution": r.resolution, "healthy": r.healthy,
             "connections": r.connections, "max_connections": r.max_connections, "timeline": r.timeline,
             "max_lag_bytes": r.max_lag_bytes, "max_lag_seconds": r.max_lag_seconds,
             "members": (r.detail or {}).get("members", {})}
        if prev is not None:
            dt = (aware(r.at) - aware(prev.at)).total_seconds()
            if dt > 0 and r.wal_bytes >= prev.wal_bytes:
                p["wal_bytes_per_s"] = (r.wal_bytes - prev.wal_bytes) / dt
            x1, x0 = (r.detail or {}).get("xact_total"), (prev.detail or {}).get("xact_total")
            if dt > 0 and x1 is not None and x0 is not None and x1 >= x0:
                p["tps"] = (x1 - x0) / dt  # every database of the instance, measured on the primary
        points.append(p)
        prev = r
    return points


def latest_instance_samples(s: Session) -> dict[str, InstanceSample]:
    newest = (select(InstanceSample.instance_name, func.max(InstanceSample.at).label("at"))
              .where(InstanceSample.resolution == 0).group_by(InstanceSample.instance_name).subquery())
    rows = s.scalars(select(InstanceSample).join(newest, (InstanceSample.instance_name == newest.c.instance_name)
                                                 & (InstanceSample.at == newest.c.at)))
    return {r.instance_name: r for r in rows}


def latest_database_samples(s: Session) -> list[list[DatabaseSample]]:
    """The two newest raw samples of each database (for rates), newest first."""
    out: dict[tuple, list[DatabaseSample]] = {}
    cutoff = utcnow() - timedelta(minutes=10)
    for r in s.scalars(select(DatabaseSample).where(DatabaseSample.resolution == 0, DatabaseSample.at >= cutoff)
                       .order_by(DatabaseSample.at.desc())):
        lst = out.setdefault((r.instance_name, r.database_name), [])
        if len(lst) < 2:
            lst.append(r)
    return list(out.values())


def timed(fn, *args) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - w0, time.process_time() - c0


# -- Prometheus ---------------------------------------------------------------------------------------------------
def prometheus_text(s: Session) -> bytes:
    """The newest samples in Prometheus' text format, labelled by instance, database, member."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    inst_rows = latest_instance_samples(s)
    db_rows = [pair[0] for pair in latest_database_samples(s)]

    class Collector:
        def collect(self):
            g = {name: GaugeMetricFamily(f"pgaas_{name}", doc, labels=labels) for name, doc, labels in [
                ("instance_healthy", "1 when the instance has a running primary and a healthy standby", ["instance"]),
                ("instance_connections", "client connections on the primary", ["instance"]),
                ("instance_max_connections", "max_connections", ["instance"]),
                ("instance_replication_lag_bytes", "replay lag of a standby, measured on the primary",
                 ["instance", "member"]),
                ("instance_timeline", "timeline of the primary", ["instance"]),
                ("container_cpu_percent", "CPU use of a member's container", ["instance", "member"]),
                ("container_memory_bytes", "memory use of a member's container", ["instance", "member"]),
                ("container_volume_bytes", "disk use of a member's data volume", ["instance", "member"]),
                ("database_size_bytes", "size of a tenant database", ["instance", "database"]),
                ("database_connections", "sessions on a tenant database", ["instance", "database"]),
                ("database_quota_bytes", "quota of a tenant database", ["instance", "database"]),
            ]}
            c = {name: CounterMetricFamily(f"pgaas_database_{name}", f"pg_stat_database.{name}",
                                           labels=["instance", "database"]) for name in DB_COUNTERS}
            wal = CounterMetricFamily("pgaas_instance_wal_bytes", "WAL written by the primary", labels=["instance"])
            for name, r in inst_rows.items():
                g["instance_healthy"].add_metric([name], 1.0 if r.healthy else 0.0)
                g["instance_connections"].add_metric([name], r.connections)
                g["instance_max_connections"].add_metric([name], r.max_connections)
                if r.timeline is not None:
                    g["instance_timeline"].add_metric([name], r.timeline)
                wal.add_metric([name], r.wal_bytes)
                for member, m in ((r.detail or {}).get("members") or {}).items():
                    if m.get("role") == "replica" and m.get("lag_bytes") is not None:
                        g["instance_replication_lag_bytes"].add_metric([name, member], m["lag_bytes"])
                    for key, metric in (("cpu_percent", "container_cpu_percent"),
                                        ("memory_bytes", "container_memory_bytes"),
                                        ("volume_bytes", "container_volume_bytes")):
                        if m.get(key) is not None:
                            g[metric].add_metric([name, member], m[key])
            for r in db_rows:
                labels = [r.instance_name, r.database_name]
                g["database_size_bytes"].add_metric(labels, r.size_bytes)
                g["database_connections"].add_metric(labels, r.numbackends)
                if r.quota_mb:
                    g["database_quota_bytes"].add_metric(labels, r.quota_mb * 1024 * 1024)
                for name in DB_COUNTERS:
                    c[name].add_metric(labels, getattr(r, name))
            yield from g.values()
            yield from c.values()
            yield wal

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry)

#!/usr/bin/env python3
"""Tenant database creation benchmark: latency of POST /api/v1/instances/<i>/databases, beside the same SQL sent
with bare psycopg in the same run, against the same instance.

  api    POST /api/v1/instances/bench-db-1/databases {"name": "bench_api_NN"} as a non-admin user, on an in-process
         control plane (tests.conftest.Live: SQLite metadata, real HTTP, one job worker); each must answer 201.
  raw    bare psycopg as the instance's superuser, one new connection per database like the API (the same multi-host
         read-write conninfo, the same SET statement_timeout/lock_timeout, the same existence check, password +
         SCRAM verifier computed client-side, CREATE ROLE, CREATE DATABASE ... OWNER, REVOKE ALL ... FROM PUBLIC,
         GRANT CONNECT, TEMPORARY), databases bench_raw_NN.
  reuse  the same SQL over one connection opened beforehand (untimed), databases bench_reuse_NN: what is left
         when connection set-up is taken away.
  floor  GET /api/v1/databases?instance=<none> as the same user: token lookup (+ its last_used_at commit), one
         metadata query, an empty JSON answer. The API's fixed cost per request over HTTP; constant along the run
         (the unfiltered list would grow with each database created).

The kinds run interleaved (api, raw, reuse, floor, api, raw, ...) so machine noise hits all of them alike. The
instance is created through the API and its job awaited before any timing (untimed). The API's time is split by
thin wrappers installed in-process (a few microseconds each): server time vs HTTP, authentication, the service's
connect, its SQL statements, its metadata work, serialization + commit. When the API's p50 misses the target (or
with --profile N), N more API creations run under cProfile (in the request threads) and the heaviest functions are
printed.

At the end (also on Ctrl-C or SIGTERM) the control plane stops and everything podman holds of bench-db-* is removed
(containers, volumes, network, configuration directory). Exit status 0 whatever the numbers, 1 if the benchmark
could not run, 130 when interrupted. --smoke: one database of each kind and one profiled creation.

    .venv/bin/python bench/databases.py [--count 50] [--profile N] [--smoke]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import _common as common
from _common import REPO, BenchFailed

INSTANCE = "bench-db-1"
PREFIX = "bench-db-"
USER, USER_PASSWORD = "bench-tenant", "bench-tenant-password-1"
TARGET_P50_MS = 300.0
JOB_TIMEOUT = 300.0


# -- numbers -------------------------------------------------------------------------------------------------
def pct(xs: list[float], p: int) -> float:
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1]


def summary(xs: list[float]) -> dict:
    return {"n": len(xs), "p50": statistics.median(xs), "p90": pct(xs, 90), "p99": pct(xs, 99),
            "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs)}


# -- in-process timing of the API path -----------------------------------------------------------------------
class Probe:
    """Thin wrappers around the app's pieces; requests are sequential, so one 'current' record is enough."""

    def __init__(self, app):
        self.app = app
        self.current: dict[str, float] | None = None
        self.records: list[dict[str, float]] = []
        self._undo = []

    def add(self, key: str, seconds: float) -> None:
        if self.current is not None:
            self.current[key] = self.current.get(key, 0.0) + seconds

    def start(self) -> None:
        self.current = defaultdict(float)

    def stop(self) -> dict[str, float]:
        rec, self.current = dict(self.current or {}), None
        self.records.append(rec)
        return rec

    def _patch(self, obj, name, new):
        old = getattr(obj, name) if not isinstance(obj, dict) else obj[name]
        if isinstance(obj, dict):
            obj[name] = new
            self._undo.append(lambda: obj.__setitem__(name, old))
        else:
            setattr(obj, name, new)
            self._undo.append(lambda: setattr(obj, name, old))
        return old

    def _timed(self, key, fn):
        probe = self

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                probe.add(key, time.perf_counter() - t0)
        return wrapper

    def install(self) -> None:
        from webapp.services import databases as dbsvc

        probe = self
        self._patch(self.app, "wsgi_app", self._timed("server", self.app.wsgi_app))
        view = self.app.view_functions["api.create_database"]
        self._patch(self.app.view_functions, "api.create_database", self._timed("view", view))
        self._patch(dbsvc, "create", self._timed("service", dbsvc.create))
        self._patch(dbsvc, "scram_verifier", self._timed("sql: scram verifier (client CPU)", dbsvc.scram_verifier))
        connect = dbsvc.connect_primary

        def connect_primary(*a, **kw):
            t0 = time.perf_counter()
            conn = connect(*a, **kw)
            probe.add("connect_primary (connect + SET)", time.perf_counter() - t0)
            return TimedConn(conn, probe)
        self._patch(dbsvc, "connect_primary", connect_primary)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()


class TimedConn:
    """A psycopg connection whose execute() and close are timed per statement kind."""

    def __init__(self, conn, probe: Probe):
        self._conn, self._probe = conn, probe

    def __enter__(self):
        self._conn.__enter__()
        return self

    def __exit__(self, *exc):
        t0 = time.perf_counter()
        try:
            return self._conn.__exit__(*exc)
        finally:
            self._probe.add("sql: close", time.perf_counter() - t0)

    def execute(self, query, params=None, **kw):
        text = query if isinstance(query, str) else query.as_string(self._conn)
        words = text.split()
        label = "sql: " + (" ".join(words[:2]).rstrip(",") if words and words[0] != "SELECT" else "SELECT exists check")
        t0 = time.perf_counter()
        try:
            return self._conn.execute(query, params, **kw)
        finally:
            self._probe.add(label, time.perf_counter() - t0)

    def __getattr__(self, name):
        return getattr(self._conn, name)


# -- the baseline: bare psycopg ------------------------------------------------------------------------------
def raw_sql(conn, name: str) -> None:
    """What webapp.services.databases.create sends for one database (the success path)."""
    from psycopg import sql

    from webapp.services.crypto import generate_password
    from webapp.services.pgconn import scram_verifier

    exists = conn.execute("SELECT (SELECT count(*) FROM pg_roles WHERE rolname = %s) + "
                          "(SELECT count(*) FROM pg_database WHERE datname = %s)", (name, name)).fetchone()[0]
    if exists:
        raise BenchFailed(f"{name} already exists on the instance")
    ident = sql.Identifier(name)
    verifier = scram_verifier(generate_password(24))
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                         "CONNECTION LIMIT {} PASSWORD {}").format(ident, sql.Literal(-1), sql.Literal(verifier)))
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} CONNECTION LIMIT {}").format(ident, ident, sql.Literal(-1)))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
    conn.execute(sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(ident, ident))


def raw_connect(params: dict):
    import psycopg

    conn = psycopg.connect(**params)
    conn.execute("SET statement_timeout = '30s'; SET lock_timeout = '5s'")
    return conn


# -- main ----------------------------------------------------------------------------------------------------
def profile_api(live, tenant, count: int, top: int = 22) -> None:
    """count more API creations, each request profiled with cProfile in its server thread."""
    app = live.app
    inner = app.wsgi_app
    stats: list[pstats.Stats] = []

    def profiled(environ, start_response):
        prof = cProfile.Profile()
        prof.enable()
        try:
            return inner(environ, start_response)
        finally:
            prof.disable()
            stats.append(pstats.Stats(prof))

    app.wsgi_app = profiled
    times = []
    try:
        for i in range(1, count + 1):
            t0 = time.perf_counter()
            r = tenant.post(f"/api/v1/instances/{INSTANCE}/databases", json={"name": f"bench_prof_{i:02d}"})
            times.append(time.perf_counter() - t0)
            if r.status_code != 201:
                raise BenchFailed(f"profiled create {i} answered {r.status_code}: {r.text[:300]}")
    finally:
        app.wsgi_app = inner
    if not stats:
        return
    total = stats[0]
    for st in stats[1:]:
        total.add(st)
    print(f"\ncProfile of {count} more API creations (p50 {statistics.median(times) * 1000:.1f} ms under the "
          f"profiler), per request, by cumulative time:")
    print(f"  {'cum ms':>8} {'own ms':>8} {'calls':>6}  function")

    def where(func):
        file, line, name = func
        if file == "~":
            return name
        path = Path(file)
        for root in (REPO, Path(sys.prefix)):
            try:
                path = path.relative_to(root)
                break
            except ValueError:
                continue
        parts = path.parts
        short = "/".join(parts[-3:]) if len(parts) > 3 else str(path)
        return f"{short}:{line}({name})"

    rows = sorted(total.stats.items(), key=lambda kv: -kv[1][3])
    shown = 0
    for func, (cc, nc, tt, ct, _callers) in rows:
        if ct / count < 0.002:  # below 2 ms per request: not a contender
            break
        print(f"  {ct / count * 1000:8.1f} {tt / count * 1000:8.1f} {nc / count:6.0f}  {where(func)}")
        shown += 1
        if shown >= top:
            break
    print("  heaviest by own time (where the thread actually sat):")
    for func, (cc, nc, tt, ct, _callers) in sorted(total.stats.items(), key=lambda kv: -kv[1][2])[:8]:
        print(f"  {ct / count * 1000:8.1f} {tt / count * 1000:8.1f} {nc / count:6.0f}  {where(func)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50, help="databases of each kind (default 50)")
    ap.add_argument("--profile", type=int, default=None,
                    help="API creations to profile afterwards (default: 10 if the target is missed, else 0)")
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.count, args.profile = 1, 1
    if args.count < 1:
        ap.error("--count must be at least 1")
    if not common.require_image():
        return 2
    common.trap_signals()

    print(f"pgaas tenant database benchmark: {args.count} databases of each kind, interleaved (api, raw, reuse, "
          f"floor); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    common.smoke_note(args.smoke)
    common.note_other_containers()
    status = common.in_control_plane("databases", PREFIX, lambda cp: measure(cp, args))
    print(common.load_line("at the end"))
    return status


def measure(cp: common.ControlPlane, args) -> None:
    from tests.conftest import Api
    from webapp.services import instances as isvc
    from webapp.services.pgconn import conninfo

    live = cp.live
    times: dict[str, list[float]] = {"api": [], "raw": [], "reuse": [], "floor": []}
    raw_parts: dict[str, list[float]] = defaultdict(list)
    probe = reused = None
    try:
        t0 = time.monotonic()
        cp.wait_ok(cp.create(INSTANCE)["job"]["id"], JOB_TIMEOUT)
        print(f"  instance {INSTANCE} ready through the API in {time.monotonic() - t0:.1f} s (untimed)", flush=True)
        r = live.admin.post("/api/v1/users", json={"username": USER, "password": USER_PASSWORD})
        if r.status_code != 201:
            raise BenchFailed(f"POST /api/v1/users answered {r.status_code}: {r.text[:300]}")
        # room for every database it makes (the default allowance is 10 databases)
        r = live.admin.patch(f"/api/v1/users/{USER}", json={"max_databases": 100000, "storage_allowance_mb": 1024 ** 3})
        if r.status_code != 200:
            raise BenchFailed(f"PATCH /api/v1/users/{USER} answered {r.status_code}: {r.text[:300]}")
        tenant: Api = live.anon.as_user(USER, USER_PASSWORD)

        svc = live.app.extensions["pgaas"]
        with svc.store.session() as s:
            inst = isvc.get(s, INSTANCE)
            params = {"user": "postgres", "password": svc.box.open(inst.secrets_enc)["pgaas_superuser_password"],
                      "autocommit": True, **conninfo(inst)}
            members = ", ".join(f"{m.address}:{m.pg_port}" for m in inst.members)
        print(f"  members {members}; user {USER} (not an administrator) creates the API's databases", flush=True)
        reused = raw_connect(params)
        # warm-up, untimed: one request through the whole API path (imports, first SQLite queries), one floor
        tenant.get("/api/v1/databases?instance=bench-none")

        probe = Probe(live.app)
        probe.install()
        floor_server = []
        for i in range(1, args.count + 1):
            probe.start()
            t = time.perf_counter()
            r = tenant.post(f"/api/v1/instances/{INSTANCE}/databases", json={"name": f"bench_api_{i:02d}"})
            times["api"].append(time.perf_counter() - t)
            rec = probe.stop()
            rec["client"] = times["api"][-1]
            if r.status_code != 201:
                raise BenchFailed(f"create bench_api_{i:02d} answered {r.status_code}: {r.text[:300]}")

            t = time.perf_counter()
            conn = raw_connect(params)
            t_conn = time.perf_counter()
            raw_sql(conn, f"bench_raw_{i:02d}")
            t_sql = time.perf_counter()
            conn.close()
            times["raw"].append(time.perf_counter() - t)
            raw_parts["connect + SET"].append(t_conn - t)
            raw_parts["SQL"].append(t_sql - t_conn)

            t = time.perf_counter()
            raw_sql(reused, f"bench_reuse_{i:02d}")
            times["reuse"].append(time.perf_counter() - t)

            probe.start()
            t = time.perf_counter()
            r = tenant.get("/api/v1/databases?instance=bench-none")
            times["floor"].append(time.perf_counter() - t)
            floor_server.append(probe.stop().get("server", 0.0))
            if r.status_code != 200:
                raise BenchFailed(f"GET /api/v1/databases answered {r.status_code}: {r.text[:300]}")
            if i % 10 == 0 or i == args.count:
                print(f"  {i:3d}/{args.count}  api {times['api'][-1] * 1000:7.1f} ms   raw "
                      f"{times['raw'][-1] * 1000:7.1f} ms   reuse {times['reuse'][-1] * 1000:7.1f} ms   floor "
                      f"{times['floor'][-1] * 1000:6.1f} ms", flush=True)
        probe.uninstall()
        api_records = probe.records[0::2]

        # -- report ------------------------------------------------------------------------------------------
        ms = {k: {kk: vv * 1000 if kk != "n" else vv for kk, vv in summary(v).items()} for k, v in times.items()}
        labels = {"api": "api    POST .../databases (HTTP, non-admin)",
                  "raw": "raw    bare psycopg, new connection each",
                  "reuse": "reuse  bare psycopg, one reused connection",
                  "floor": "floor  GET /api/v1/databases (HTTP floor)"}
        print(f"\nlatency per database (ms), n={args.count} each:")
        print(f"  {'':44} {'p50':>8} {'p90':>8} {'p99':>8} {'mean':>8} {'min':>8} {'max':>8}")
        for k in ("api", "raw", "reuse", "floor"):
            m = ms[k]
            print(f"  {labels[k]:44} {m['p50']:8.1f} {m['p90']:8.1f} {m['p99']:8.1f} {m['mean']:8.1f} "
                  f"{m['min']:8.1f} {m['max']:8.1f}")
        print(f"  ratio p50 api/raw   {ms['api']['p50'] / ms['raw']['p50']:.2f}x   (the control plane over the same "
              f"work with a new connection)")
        print(f"  ratio p50 api/reuse {ms['api']['p50'] / ms['reuse']['p50']:.2f}x   (over the SQL alone)")

        print("\nwhere the API's time goes (median per request, ms; medians do not add up exactly):")
        keys = ["client", "server", "view", "service", "connect_primary (connect + SET)",
                "sql: scram verifier (client CPU)"]
        keys += sorted({k for rec in api_records for k in rec if k.startswith("sql: ") and k not in keys})
        med = {k: statistics.median([rec.get(k, 0.0) for rec in api_records]) * 1000 for k in keys}
        sql_total = statistics.median([sum(v for k, v in rec.items() if k.startswith("sql: ") and "scram" not in k)
                                       for rec in api_records]) * 1000
        def med_of(fn) -> float:
            return statistics.median([fn(rec) for rec in api_records]) * 1000

        http = med_of(lambda rec: rec["client"] - rec.get("server", 0.0))
        flask = med_of(lambda rec: rec.get("server", 0.0) - rec.get("view", 0.0))
        rest = med_of(lambda rec: rec.get("view", 0.0) - rec.get("service", 0.0))
        metadata = med_of(lambda rec: rec.get("service", 0.0) - rec.get("connect_primary (connect + SET)", 0.0)
                          - sum(v for k, v in rec.items() if k.startswith("sql: ")))
        floor_srv = statistics.median(floor_server) * 1000
        print(f"  {'client round trip':<74} {med['client']:8.1f}")
        print(f"    {'HTTP + werkzeug outside the app (client - server)':<72} {http:8.1f}")
        print(f"    {'server (Flask wsgi_app)':<72} {med['server']:8.1f}")
        print(f"      {'Flask routing/response (server - view)':<70} {flask:8.1f}")
        print(f"      {'view: auth + JSON body + serialize + commit (view - service)':<70} {rest:8.1f}")
        print(f"      {'service (webapp.services.databases.create)':<70} {med['service']:8.1f}")
        print(f"        {'metadata (name checks, lookups, flush, audit row)':<68} {metadata:8.1f}")
        print(f"        {'connect_primary (new connection + SET)':<68} {med['connect_primary (connect + SET)']:8.1f}")
        print(f"        {'SQL statements + close':<68} {sql_total:8.1f}")
        for k in keys[6:]:
            print(f"          {k[5:]:<66} {med[k]:8.1f}")
        print(f"        {'scram verifier (client CPU)':<68} {med['sql: scram verifier (client CPU)']:8.1f}")
        print(f"  {'floor request, server side (token lookup + one query + JSON)':<74} {floor_srv:8.1f}")
        print(f"  raw: connect + SET {statistics.median(raw_parts['connect + SET']) * 1000:.1f} ms, SQL "
              f"{statistics.median(raw_parts['SQL']) * 1000:.1f} ms (medians)")
        print(f"  control plane's own share of the API p50: api - raw = "
              f"{ms['api']['p50'] - ms['raw']['p50']:.1f} ms")

        met = ms["api"]["p50"] <= TARGET_P50_MS
        print(f"\ntarget: API p50 <= {TARGET_P50_MS:.0f} ms: p50 {ms['api']['p50']:.1f} ms -> "
              f"{'MET' if met else 'NOT met'} (p99 {ms['api']['p99']:.1f} ms)")
        n_prof = args.profile if args.profile is not None else (0 if met else 10)
        if n_prof > 0:
            profile_api(live, tenant, n_prof)
    finally:
        if probe is not None:
            probe.uninstall()
        if reused is not None:
            try:
                reused.close()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Monitoring sampler benchmark: the cost of one sampling cycle, metrics.sample_all(session, box, provider) inside
`with store.session() as s:` (so the commit of the samples is included), for N = 1, 5 and 20 instances with 10
tenant databases each: median wall time and CPU time (time.process_time: this process, all its threads; the
podman children's CPU is reported beside it) per cycle, per instance, and the growth from N to N.

What is real and what is not. Two real Patroni pairs are provisioned through the API (bench-smp-1, bench-smp-2)
on an in-process control plane (tests.conftest.Live: SQLite metadata, real HTTP, one job worker), and 10 tenant
databases are created on each through the API by a non-admin user; a little pgbench load (untimed) gives the
counters something to count. Twenty real pairs (60 containers) would take many minutes on this machine and
distort what is measured, so N > 2 instances are *metadata aliases*: extra Instance/Member/Database rows, written
through the ORM into copies of the metadata store (never into the control plane's own store), that point at the
members (address, ports, container names) and secrets of the two real pairs and name their real databases. Every
cycle therefore does the real work per instance (Patroni REST probe, a monitor connection, the pg_stat queries,
podman stats and volume sizes, the metadata writes), but the PostgreSQL servers and containers answering are shared
by fewer of them. Alias members carry a distinct `host` label (bench-alias-NN; Member has unique (host, port)
constraints); the sampler reads `address`, the ports and `name`, which are the real members'.

Each N gets its own copy of the store (SQLite, online backup of the control plane's file), so the sample tables
grow with N like a real deployment's. The cycles run interleaved (1, 5, 20, then 5, 20, 1, ...) after one
untimed warm-up cycle per N (which also creates the pgaas_monitor role on the real pairs before the aliases copy
their secrets). Thin wrappers (a few microseconds each) split every timed cycle: Patroni REST (isvc.live_state),
monitor connection (metrics.monitor_connect), queries (the connection's execute/fetch), podman
(provider.stats, once per cycle for all instances: one podman stats call; a data volume's disk use is measured
with du by a background thread when older than VOLUME_SIZE_SECONDS, inside the cycle only the first time), metadata
commit, and the rest (ORM
lookups and adds, secret decryption, Python). If the 20-instance median misses the target (or with --profile),
one 20-instance cycle runs under cProfile and the heaviest functions are printed. Two more kinds of 20-instance
cycle are timed apart: with every volume's number too old (the cycle hands them to the background thread), and a
cold one with no volume measured yet (every volume measured inside the cycle: once after a worker starts).

At the end (also on Ctrl-C) both instances are deleted through the API (force=true) and anything still labelled
pgaas.instance=bench-smp-* is removed. Exit status is 0 whatever the numbers, unless the benchmark could not run.

    .venv/bin/python bench/sampler.py [--cycles 7] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CONTAINERS_CONF = str(REPO / "etc" / "containers.conf")
os.environ["CONTAINERS_CONF"] = CONTAINERS_CONF  # for podman calls made here and by the control plane's plays
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
IMAGE = "localhost/pgaas-postgres:15"
PREFIX = "bench-smp-"
REAL = [f"{PREFIX}1", f"{PREFIX}2"]
CONFIG_ROOT = Path("/var/lib/pgaas/instances")
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
USER, USER_PASSWORD = "bench-smp-tenant", "bench-smp-tenant-password-1"
SIZES = (1, 5, 20)
DBS_PER_INSTANCE = 10
TARGET_N, TARGET_WALL = 20, 1.0
JOB_TIMEOUT = 300.0
PARTS = ("patroni REST probe", "monitor connect", "queries", "podman stats + volumes", "metadata commit",
         "rest (wall minus the parts)")


WALK = "  of which: volume du (also background)"


class BenchFailed(Exception):
    pass


# -- podman --------------------------------------------------------------------------------------------------
def podman(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV)


def _labelled(kind: list[str]) -> list[str]:
    """Ids/names of podman objects whose pgaas.instance label starts with bench-smp-."""
    r = podman(*kind, "--format", "json")
    try:
        items = json.loads(r.stdout or "[]") or []
    except ValueError:
        return []
    out = []
    for it in items:
        labels = it.get("Labels") or it.get("labels") or {}
        if str(labels.get("pgaas.instance", "")).startswith(PREFIX):
            out.append(it.get("Id") or it.get("ID") or it.get("Name") or it.get("name"))
    return [x for x in out if x]


def remove_labelled() -> list[str]:
    """Remove every container, volume and network labelled pgaas.instance=bench-smp-*, and their config dirs."""
    found = []
    ctrs = _labelled(["ps", "-a"])
    if ctrs:
        found.append(f"{len(ctrs)} container(s)")
        podman("rm", "-f", "-t", "0", *ctrs)
    vols = _labelled(["volume", "ls"])
    if vols:
        found.append(f"{len(vols)} volume(s)")
        podman("volume", "rm", "-f", *vols)
    nets = set(_labelled(["network", "ls"]))
    nets |= {n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split()
             if n.startswith(f"pgaas-{PREFIX}")}
    if nets:
        found.append(f"network(s) {', '.join(sorted(nets))}")
        podman("network", "rm", "-f", *sorted(nets))
    for d in CONFIG_ROOT.glob(f"{PREFIX}*"):
        shutil.rmtree(d, ignore_errors=True)
    return found


# -- the control plane ---------------------------------------------------------------------------------------
def wait_job(api, job_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "canceled", "error"):
            return job
        if time.monotonic() > deadline:
            raise BenchFailed(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        time.sleep(0.2)


def delete_instance(api, name: str) -> str:
    r = api.delete(f"/api/v1/instances/{name}?force=true", timeout=60)
    if r.status_code == 404:
        return "not found"
    if r.status_code == 409:  # its create job is still running (Ctrl-C during the deploy): cancel it first
        for j in api.get(f"/api/v1/jobs?instance={name}").json().get("jobs", []):
            if j["status"] in ("queued", "running"):
                api.post(f"/api/v1/jobs/{j['id']}/cancel")
                wait_job(api, j["id"], 120)
        r = api.delete(f"/api/v1/instances/{name}?force=true", timeout=60)
    if r.status_code != 202:
        return f"DELETE answered {r.status_code}: {r.text[:200]}"
    return "delete job " + wait_job(api, r.json()["job"]["id"], 180)["status"]


# -- copies of the metadata store with aliases ---------------------------------------------------------------
def sqlite_copy(src: Path, dst: Path) -> None:
    """An online, consistent copy (SQLite's backup API), safe while the control plane has the file open."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def add_aliases(store, count: int) -> list[str]:
    """count alias instances (status 'parked') pointing at the real pairs' members, secrets and databases."""
    from sqlalchemy import select

    from webapp.store.models import Database, Instance, Member

    names = []
    with store.session() as s:
        real = [s.scalar(select(Instance).where(Instance.name == n)) for n in REAL]
        dbs = {r.id: list(s.scalars(select(Database).where(Database.instance_id == r.id).order_by(Database.name)))
               for r in real}
        for k in range(count):
            src = real[k % len(real)]
            name = f"{PREFIX}alias-{k + 3:02d}"
            inst = Instance(name=name, status="parked", status_reason="bench alias of " + src.name,
                            provider=src.provider, synchronous=src.synchronous, replicas=src.replicas,
                            storage_gb=src.storage_gb, cpus=src.cpus, memory_mb=src.memory_mb,
                            admin_user=src.admin_user, secrets_enc=src.secrets_enc, meta=dict(src.meta or {}),
                            created_by="bench")
            inst.members = [Member(ordinal=m.ordinal, name=m.name, host=f"bench-alias-{k + 3:02d}",
                                   address=m.address, pg_port=m.pg_port, api_port=m.api_port) for m in src.members]
            s.add(inst)
            s.flush()
            for d in dbs[src.id]:
                s.add(Database(instance_id=inst.id, owner_id=d.owner_id, name=d.name, role_name=d.role_name,
                               quota_mb=d.quota_mb, connection_limit=d.connection_limit,
                               parameters=dict(d.parameters or {}), status=d.status))
            names.append(name)
    return names


def activate(store, names: list[str]) -> None:
    from sqlalchemy import update

    from webapp.store.models import Instance

    with store.session() as s:
        s.execute(update(Instance).values(status="parked").where(Instance.status == "available"))
        s.execute(update(Instance).values(status="available").where(Instance.name.in_(names)))


# -- splitting a cycle ---------------------------------------------------------------------------------------
class Probe:
    """Thin wrappers that add each piece's wall time into the current cycle's record."""

    def __init__(self):
        self.current: dict[str, float] | None = None
        self._undo = []

    def add(self, key: str, seconds: float) -> None:
        if self.current is not None:
            self.current[key] += seconds

    def _patch(self, obj, name, new):
        old = getattr(obj, name)
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

    def install(self, provider) -> None:
        from webapp.services import instances as isvc
        from webapp.services import metrics

        probe = self
        self._patch(isvc, "live_state", self._timed("patroni REST probe", isvc.live_state))
        self._patch(provider, "stats", self._timed("podman stats + volumes", provider.stats))
        from webapp.providers import local
        self._patch(local, "du_bytes", self._timed(WALK, local.du_bytes))
        connect = metrics.monitor_connect

        def monitor_connect(*a, **kw):
            t0 = time.perf_counter()
            conn = connect(*a, **kw)
            probe.add("monitor connect", time.perf_counter() - t0)
            return TimedConn(conn, probe)
        self._patch(metrics, "monitor_connect", monitor_connect)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()


class TimedConn:
    """The monitor connection with execute + fetch timed as 'queries' and the close as part of the connection."""

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
            self._probe.add("monitor connect", time.perf_counter() - t0)

    def execute(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            cur = self._conn.execute(*a, **kw)
            rows = cur.fetchall()  # the sampler fetches everything it runs; fetch here to time it with the query
        finally:
            self._probe.add("queries", time.perf_counter() - t0)
        return _Rows(rows)

    def __getattr__(self, name):
        return getattr(self._conn, name)


class _Rows:
    def __init__(self, rows):
        self._rows = rows

    def fetchall(self):
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None


def run_cycle(store, box, provider, probe: Probe | None = None) -> tuple[dict, float, float, float, dict]:
    """One sampling cycle, commit included: (result, wall, CPU of this process, CPU of children, parts)."""
    from webapp.services import metrics

    parts: dict[str, float] = defaultdict(float)
    if probe is not None:
        probe.current = parts

    def cycle():
        with store.session() as s:
            out = metrics.sample_all(s, box, provider)
            t0 = time.perf_counter()
        parts["metadata commit"] += time.perf_counter() - t0  # the context manager's commit + close
        return out

    c0 = os.times()
    result, wall, cpu = metrics.timed(cycle)
    c1 = os.times()
    if probe is not None:
        probe.current = None
    children = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    parts[PARTS[-1]] = wall - sum(parts[k] for k in PARTS[:-1])
    return result, wall, cpu, children, dict(parts)


def cycle_errors(result: dict) -> list[str]:
    out = []
    for name, detail in result.items():
        out += [f"{name}: {e}" for e in detail.get("errors", [])]
        members = detail.get("members", {})
        if not any(m.get("role") == "primary" for m in members.values()):
            out.append(f"{name}: no primary seen")
        if not any("cpu_percent" in m for m in members.values()):
            out.append(f"{name}: no container stats")
    return out


# -- profiling -----------------------------------------------------------------------------------------------
def where(func) -> str:
    file, line, name = func
    if file == "~":
        return name
    path = Path(file)
    for root in (REPO, Path(sys.prefix), Path(sys.base_prefix) / "lib"):
        try:
            path = path.relative_to(root)
            break
        except ValueError:
            continue
    parts = path.parts
    short = "/".join(parts[-3:]) if len(parts) > 3 else str(path)
    return f"{short}:{line}({name})"


def profile_cycle(store, box, provider, top: int = 25) -> None:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        run_cycle(store, box, provider)
    finally:
        prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    print(f"\ncProfile of one {TARGET_N}-instance cycle ({wall * 1000:.0f} ms under the profiler), by cumulative "
          f"time:")
    print(f"  {'cum ms':>8} {'own ms':>8} {'calls':>6}  function")
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][3])
    shown = 0
    for func, (cc, nc, tt, ct, _callers) in rows:
        if ct < 0.005:
            break
        print(f"  {ct * 1000:8.1f} {tt * 1000:8.1f} {nc:6d}  {where(func)}")
        shown += 1
        if shown >= top:
            break
    print("  heaviest by own time (where the thread actually sat):")
    for func, (cc, nc, tt, ct, _callers) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:8]:
        print(f"  {ct * 1000:8.1f} {tt * 1000:8.1f} {nc:6d}  {where(func)}")
    groups = {"patroni REST probe": ("instances.py", "live_state"),
              "monitor connect": ("metrics.py", "monitor_connect"),
              "podman stats + volumes": ("local.py", "container_stats"),
              "  of which: volume du": ("local.py", "du_bytes"),
              "  of which: podman CLI": ("subprocess.py", "run"),
              "metadata commit": ("session.py", "commit")}
    print("  cumulative time of the sampler's pieces in this profile:")
    for label, (file, name) in groups.items():
        ct = sum(v[3] for f, v in st.stats.items() if f[0].endswith(file) and f[2] == name)
        print(f"    {label:<26} {ct * 1000:8.1f} ms")
    print("  (cProfile sees only the cycle's own thread: the instances' network parts and podman stats run in the "
          "sampler's threads and show here as waiting on futures; each data volume is measured at most once per "
          "VOLUME_SIZE_SECONDS)")


# -- main ----------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=7, help="timed cycles per N (default 7, at least 5)")
    ap.add_argument("--profile", action="store_true", help="profile a 20-instance cycle even if the target is met")
    args = ap.parse_args()
    if args.cycles < 5:
        ap.error("--cycles must be at least 5")
    if podman("image", "exists", IMAGE).returncode != 0:
        print(f"image {IMAGE} is missing: build it with playbooks/image.yml", file=sys.stderr)
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (cmd &)

    from tests.conftest import Live, make_app
    from webapp.store import Store

    workdir = Path(tempfile.mkdtemp(prefix="pgaas-bench-smp-"))
    os.chmod(workdir, 0o700)
    live = probe = None
    stores: dict[int, Store] = {}
    created: list[str] = []
    interrupted = False
    failure = None
    print(f"pgaas sampler benchmark: one sampling cycle (metrics.sample_all + commit) for N = "
          f"{', '.join(map(str, SIZES))} instances x {DBS_PER_INSTANCE} databases, {args.cycles} timed cycles each, "
          f"interleaved; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    print("  NOTE: only 2 real Patroni pairs exist; N > 2 instances are metadata aliases of them (their rows point at "
          "the same members, secrets and databases), so the per-instance work is real but the PostgreSQL servers "
          "and containers answering it are shared by fewer servers than N.", flush=True)
    others = podman("ps", "-q").stdout.split()
    if others:
        print(f"  note: {len(others)} other container(s) already running on this machine (noise)", flush=True)
    stale = remove_labelled()
    if stale:
        print(f"  (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)
    try:
        db_file = workdir / "pgaas.sqlite"
        # no periodic sampling / quota checks by the control plane's own worker; slow job polling (less noise)
        live = Live(make_app(f"sqlite:///{db_file}", workdir / "instance", SAMPLE_SECONDS=1e9,
                             QUOTA_CHECK_SECONDS=1e9, WORKER_POLL_SECONDS=0.5), workers=1)
        svc = live.app.extensions["pgaas"]
        t0 = time.monotonic()
        jobs = {}
        for name in REAL:
            r = live.admin.post("/api/v1/instances", json={"name": name})
            if r.status_code != 202:
                raise BenchFailed(f"POST /api/v1/instances {name} answered {r.status_code}: {r.text[:300]}")
            created.append(name)
            jobs[name] = r.json()["job"]["id"]
        for name, job_id in jobs.items():
            job = wait_job(live.admin, job_id, JOB_TIMEOUT)
            if job["status"] != "succeeded":
                raise BenchFailed(f"instance {name}: job {job['status']}: {job.get('error')}")
        print(f"  instances {', '.join(REAL)} ready through the API in {time.monotonic() - t0:.1f} s (untimed)",
              flush=True)

        r = live.admin.post("/api/v1/users", json={"username": USER, "password": USER_PASSWORD})
        if r.status_code != 201:
            raise BenchFailed(f"POST /api/v1/users answered {r.status_code}: {r.text[:300]}")
        tenant = live.anon.as_user(USER, USER_PASSWORD)
        t0 = time.monotonic()
        first_db = {}
        for name in REAL:
            for j in range(1, DBS_PER_INSTANCE + 1):
                r = tenant.post(f"/api/v1/instances/{name}/databases", json={"name": f"smp_db_{j:02d}"})
                if r.status_code != 201:
                    raise BenchFailed(f"create {name}/smp_db_{j:02d} answered {r.status_code}: {r.text[:300]}")
                if j == 1:
                    first_db[name] = r.json()["database"]
        print(f"  {2 * DBS_PER_INSTANCE} databases created through the API by {USER} (not an administrator) in "
              f"{time.monotonic() - t0:.1f} s (untimed)", flush=True)

        if os.path.exists(PGBENCH):
            t0 = time.monotonic()
            for name, db in first_db.items():
                env = {**os.environ, "PGPASSWORD": db["password"]}
                for cmd in ([PGBENCH, "-i", "-s", "1", "-q", db["uri"]], [PGBENCH, "-T", "3", "-c", "2", "-n",
                                                                           db["uri"]]):
                    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    if p.returncode != 0:
                        print(f"  note: pgbench on {name}/{db['name']} failed: {p.stderr.strip()[-200:]}")
                        break
            print(f"  pgbench -i -s 1 + 3 s of load on smp_db_01 of each pair ({time.monotonic() - t0:.1f} s, "
                  f"untimed; the load stops before measuring)", flush=True)

        # the copies: one per N, each with 18 aliases (parked), the first N instances made 'available'
        base = workdir / "base.sqlite"
        sqlite_copy(db_file, base)
        base_store = Store(f"sqlite:///{base}")
        activate(base_store, REAL)
        _res, wall, _cpu, _ch, _p = run_cycle(base_store, svc.box, svc.provider)  # creates pgaas_monitor on both
        errs = cycle_errors(_res)
        if errs:
            raise BenchFailed(f"warm-up cycle on the real pairs reported: {errs[:4]}")
        aliases = add_aliases(base_store, max(SIZES) - len(REAL))
        base_store.dispose()
        order = REAL + aliases
        for n in SIZES:
            path = workdir / f"meta-{n}.sqlite"
            sqlite_copy(base, path)
            stores[n] = Store(f"sqlite:///{path}")
            activate(stores[n], order[:n])
        print(f"  metadata: {len(SIZES)} copies of the control plane's SQLite store (one per N), "
              f"{len(aliases)} alias instances written through the ORM; warm-up on the 2 real pairs "
              f"{wall * 1000:.0f} ms", flush=True)

        for n in SIZES:  # one untimed warm-up per N (connections, imports, first queries of each copy)
            res = run_cycle(stores[n], svc.box, svc.provider)[0]
            errs = cycle_errors(res)
            if len(res) != n or errs:
                raise BenchFailed(f"warm-up cycle N={n}: {len(res)} instances sampled, problems: {errs[:4]}")

        probe = Probe()
        probe.install(svc.provider)
        walls, cpus, childs = defaultdict(list), defaultdict(list), defaultdict(list)
        parts = defaultdict(list)
        problems = defaultdict(list)
        for rnd in range(args.cycles):
            k = rnd % len(SIZES)
            for n in SIZES[k:] + SIZES[:k]:
                res, wall, cpu, ch, pr = run_cycle(stores[n], svc.box, svc.provider, probe)
                walls[n].append(wall)
                cpus[n].append(cpu)
                childs[n].append(ch)
                parts[n].append(pr)
                problems[n] += cycle_errors(res) + ([f"{len(res)} instances sampled"] if len(res) != n else [])
            print(f"  round {rnd + 1}/{args.cycles}: " + "   ".join(
                f"N={n} {walls[n][-1] * 1000:7.1f} ms" for n in SIZES), flush=True)
        probe.uninstall()

        # -- report ------------------------------------------------------------------------------------------
        med = {n: statistics.median(walls[n]) for n in SIZES}
        medc = {n: statistics.median(cpus[n]) for n in SIZES}
        medch = {n: statistics.median(childs[n]) for n in SIZES}
        print(f"\none sampling cycle, median of {args.cycles} (N > 2: metadata aliases of the 2 real pairs):")
        print(f"  {'N':>3} {'wall ms':>9} {'min':>8} {'max':>8} {'CPU ms':>8} {'podman':>8} {'wall/inst':>10} "
              f"{'CPU/inst':>9}  {'DB samples':>10}")
        for n in SIZES:
            print(f"  {n:3d} {med[n] * 1000:9.1f} {min(walls[n]) * 1000:8.1f} {max(walls[n]) * 1000:8.1f} "
                  f"{medc[n] * 1000:8.1f} {medch[n] * 1000:8.1f} {med[n] / n * 1000:10.1f} "
                  f"{medc[n] / n * 1000:9.1f}  {n * DBS_PER_INSTANCE:10d}")
        print("  (CPU = time.process_time of this process, every thread; podman = CPU of the podman child processes "
              "it waited for, os.times; PostgreSQL's and Patroni's own CPU are not counted)")
        bad = {n: p for n, p in problems.items() if p}
        for n, p in bad.items():
            print(f"  WARNING N={n}: {len(p)} problem(s) in timed cycles, e.g. {p[:2]}")

        print("\ngrowth (linear = the instance count's ratio):")
        for a, b in zip(SIZES, SIZES[1:]):
            lin = b / a
            rw, rc = med[b] / med[a], medc[b] / medc[a] if medc[a] else float("nan")
            verdict = "at or below linear" if rw <= lin * 1.05 else "FASTER than linear"
            print(f"  wall({b})/wall({a}) = {rw:5.2f}x  (linear {lin:.0f}x: {verdict})   "
                  f"CPU({b})/CPU({a}) = {rc:5.2f}x")

        print("\nwhere a cycle's time goes (median ms per cycle, summed over the sampler's threads: the instances' "
              "network parts overlap, so the parts can add up to more than the wall time and 'rest' = wall minus "
              "the parts goes negative):")
        print(f"  {'part':<38} " + " ".join(f"{'N=' + str(n):>9} {'/inst':>7}" for n in SIZES))
        share20 = {}
        for key in PARTS[:4] + (WALK,) + PARTS[4:]:
            vals = {n: statistics.median([p.get(key, 0.0) for p in parts[n]]) for n in SIZES}
            if key != WALK:
                share20[key] = vals[TARGET_N]
            print(f"  {key:<38} " + " ".join(f"{vals[n] * 1000:9.1f} {vals[n] / n * 1000:7.1f}" for n in SIZES))
        top = sorted(share20.items(), key=lambda kv: -kv[1])
        print(f"  at N={TARGET_N} the biggest part is '{top[0][0]}' ({top[0][1] / med[TARGET_N] * 100:.0f}% of the "
              f"median cycle), then '{top[1][0]}' ({top[1][1] / med[TARGET_N] * 100:.0f}%)")

        from webapp.providers.local import VolumeSizes

        vols = svc.provider.volumes
        age, vols.max_age = vols.max_age, 0.0
        stale = []
        for _ in range(3):
            stale.append(run_cycle(stores[TARGET_N], svc.box, svc.provider)[1])
            vols.wait_refreshed()
        vols.max_age = age
        cold = []
        for _ in range(3):
            svc.provider.volumes = VolumeSizes(vols.conf, age)
            cold.append(run_cycle(stores[TARGET_N], svc.box, svc.provider)[1])
        svc.provider.volumes = vols
        print(f"\nN={TARGET_N}, every data volume's number older than {age:.0f} s (measured by du in the background "
              f"thread): median {statistics.median(stale) * 1000:.1f} ms of {len(stale)} cycles")
        print(f"N={TARGET_N}, cold (no volume measured yet: {len(vols._sizes)} distinct volumes measured inside the "
              f"cycle, once per worker start): median {statistics.median(cold) * 1000:.1f} ms of {len(cold)} cycles")

        met = med[TARGET_N] <= TARGET_WALL
        linear = all(med[b] / med[a] <= (b / a) * 1.05 for a, b in zip(SIZES, SIZES[1:]))
        print(f"\ntarget: {TARGET_N} instances in <= {TARGET_WALL:.1f} s of wall time per cycle: median "
              f"{med[TARGET_N]:.3f} s -> {'MET' if met else 'NOT met'}; growth "
              f"{'no faster than linear' if linear else 'faster than linear'}")
        if not met or args.profile:
            profile_cycle(stores[TARGET_N], svc.box, svc.provider)
            print(f"  dominant part (from the split above): {top[0][0]}")
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: cleaning up", flush=True)
    except BenchFailed as exc:
        failure = str(exc)
        print(f"\nFAILED: {exc}", flush=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if probe is not None:
            probe.uninstall()
        for st in stores.values():
            st.dispose()
        if live is not None:
            for name in created:
                try:
                    print(f"cleanup: {name}: {delete_instance(live.admin, name)}", flush=True)
                except Exception as exc:  # removal below goes on regardless
                    print(f"cleanup: {name}: API delete failed: {exc}", flush=True)
            try:
                live.close()
            except Exception as exc:
                print(f"warning: closing the control plane: {exc}", flush=True)
        left = remove_labelled()
        if left:
            print(f"cleanup: removed what the API left behind: {', '.join(left)}", flush=True)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min), {os.getloadavg()[1]:.2f} (5 min)"
          f"{' (interrupted: partial)' if interrupted else ''}")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())

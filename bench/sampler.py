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

At the end (also on Ctrl-C or SIGTERM) the control plane stops and everything podman holds of bench-smp-* is removed
(containers, volumes, networks, configuration directories). Exit status 0 whatever the numbers, 1 if the benchmark
could not run, 130 when interrupted. --smoke: one real pair with one database, N = 1 and 2, one timed cycle of each
kind, and the profile.

    .venv/bin/python bench/sampler.py [--cycles 7] [--profile] [--smoke]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import _common as common
from _common import REPO, BenchFailed

PREFIX = "bench-smp-"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
USER, USER_PASSWORD = "bench-smp-tenant", "bench-smp-tenant-password-1"
TARGET_N, TARGET_WALL = 20, 1.0
JOB_TIMEOUT = 300.0
PARTS = ("patroni REST probe", "monitor connect", "queries", "podman stats + volumes", "metadata commit",
         "rest (wall minus the parts)")


@dataclass(frozen=True)
class Shape:
    """What one run measures: the real pairs, the instance counts N (the largest is the target's), the tenant
    databases per instance, seconds of pgbench load, and the cycles of each extra kind (stale volumes, cold)."""
    real: tuple[str, ...] = (f"{PREFIX}1", f"{PREFIX}2")
    sizes: tuple[int, ...] = (1, 5, TARGET_N)
    dbs: int = 10
    pgbench_seconds: int = 3
    extra_cycles: int = 3

    @property
    def top(self) -> int:
        return self.sizes[-1]


FULL = Shape()
SMOKE = Shape(real=(f"{PREFIX}1",), sizes=(1, 2), dbs=1, pgbench_seconds=1, extra_cycles=1)
WALK = "  of which: volume du (also background)"


# -- copies of the metadata store with aliases ---------------------------------------------------------------
def sqlite_copy(src: Path, dst: Path) -> None:
    """An online, consistent copy (SQLite's backup API), safe while the control plane has the file open."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def add_aliases(store, real_names: tuple[str, ...], count: int, prefix: str = PREFIX,
                status: str = "parked") -> list[str]:
    """count alias instances (status `status`) pointing at the real pairs' members, secrets and databases (also
    bench/scale.py's)."""
    from sqlalchemy import select

    from webapp.store.models import Database, Instance, Member

    names = []
    with store.session() as s:
        real = [s.scalar(select(Instance).where(Instance.name == n)) for n in real_names]
        dbs = {r.id: list(s.scalars(select(Database).where(Database.instance_id == r.id).order_by(Database.name)))
               for r in real}
        for k in range(count):
            src = real[k % len(real)]
            name = f"{prefix}alias-{k + 3:02d}"
            inst = Instance(name=name, status=status, status_reason="bench alias of " + src.name,
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


def profile_cycle(store, box, provider, n: int, top: int = 25) -> None:
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        run_cycle(store, box, provider)
    finally:
        prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof)
    print(f"\ncProfile of one {n}-instance cycle ({wall * 1000:.0f} ms under the profiler), by cumulative "
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
    common.add_smoke(ap)
    args = ap.parse_args()
    shape = SMOKE if args.smoke else FULL
    if args.smoke:
        args.cycles, args.profile = 1, True
    elif args.cycles < 5:
        ap.error("--cycles must be at least 5")
    if not common.require_image():
        return 2
    common.trap_signals()

    print(f"pgaas sampler benchmark: one sampling cycle (metrics.sample_all + commit) for N = "
          f"{', '.join(map(str, shape.sizes))} instances x {shape.dbs} databases, {args.cycles} timed cycles each, "
          f"interleaved; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}", flush=True)
    common.smoke_note(args.smoke)
    print(f"  NOTE: only {len(shape.real)} real Patroni pair(s) exist; N > {len(shape.real)} instances are metadata "
          "aliases of them (their rows point at the same members, secrets and databases), so the per-instance work "
          "is real but the PostgreSQL servers and containers answering it are shared by fewer servers than N.",
          flush=True)
    common.note_other_containers()
    # no periodic sampling / quota checks by the control plane's own worker; slow job polling (less noise)
    status = common.in_control_plane("sampler", PREFIX, lambda cp: measure(cp, args, shape), SAMPLE_SECONDS=1e9,
                                     QUOTA_CHECK_SECONDS=1e9, WORKER_POLL_SECONDS=0.5)
    print(common.load_line("at the end"))
    return status


def measure(cp: common.ControlPlane, args, shape: Shape) -> None:
    from webapp.store import Store

    live = cp.live
    workdir, db_file = cp.workdir, cp.db_file
    probe = None
    stores: dict[int, Store] = {}
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        print(f"  WARNING: {text}", flush=True)

    try:
        svc = live.app.extensions["pgaas"]
        t0 = time.monotonic()
        jobs = {name: cp.create(name)["job"]["id"] for name in shape.real}
        for job_id in jobs.values():
            cp.wait_ok(job_id, JOB_TIMEOUT)
        print(f"  instances {', '.join(shape.real)} ready through the API in {time.monotonic() - t0:.1f} s "
              "(untimed)", flush=True)

        r = live.admin.post("/api/v1/users", json={"username": USER, "password": USER_PASSWORD})
        if r.status_code != 201:
            raise BenchFailed(f"POST /api/v1/users answered {r.status_code}: {r.text[:300]}")
        # room for every database it makes (the default allowance is 10 databases)
        r = live.admin.patch(f"/api/v1/users/{USER}", json={"max_databases": 100000, "storage_allowance_mb": 1024 ** 3})
        if r.status_code != 200:
            raise BenchFailed(f"PATCH /api/v1/users/{USER} answered {r.status_code}: {r.text[:300]}")
        tenant = live.anon.as_user(USER, USER_PASSWORD)
        t0 = time.monotonic()
        first_db = {}
        for name in shape.real:
            for j in range(1, shape.dbs + 1):
                r = tenant.post(f"/api/v1/instances/{name}/databases", json={"name": f"smp_db_{j:02d}"})
                if r.status_code != 201:
                    raise BenchFailed(f"create {name}/smp_db_{j:02d} answered {r.status_code}: {r.text[:300]}")
                if j == 1:
                    first_db[name] = r.json()["database"]
        print(f"  {len(shape.real) * shape.dbs} databases created through the API by {USER} (not an administrator) "
              f"in {time.monotonic() - t0:.1f} s (untimed)", flush=True)

        if os.path.exists(PGBENCH):
            t0 = time.monotonic()
            for name, db in first_db.items():
                env = {**os.environ, "PGPASSWORD": db["password"]}
                for cmd in ([PGBENCH, "-i", "-s", "1", "-q", db["uri"]],
                            [PGBENCH, "-T", str(shape.pgbench_seconds), "-c", "2", "-n", db["uri"]]):
                    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    if p.returncode != 0:
                        warn(f"pgbench on {name}/{db['name']} failed: {p.stderr.strip()[-200:]}")
                        break
            print(f"  pgbench -i -s 1 + {shape.pgbench_seconds} s of load on smp_db_01 of each pair "
                  f"({time.monotonic() - t0:.1f} s, untimed; the load stops before measuring)", flush=True)

        # the copies: one per N, each with the aliases (parked), the first N instances made 'available'
        base = workdir / "base.sqlite"
        sqlite_copy(db_file, base)
        base_store = Store(f"sqlite:///{base}")
        activate(base_store, list(shape.real))
        _res, wall, _cpu, _ch, _p = run_cycle(base_store, svc.box, svc.provider)  # creates pgaas_monitor on both
        errs = cycle_errors(_res)
        if errs:
            raise BenchFailed(f"warm-up cycle on the real pairs reported: {errs[:4]}")
        aliases = add_aliases(base_store, shape.real, shape.top - len(shape.real))
        base_store.dispose()
        order = list(shape.real) + aliases
        for n in shape.sizes:
            path = workdir / f"meta-{n}.sqlite"
            sqlite_copy(base, path)
            stores[n] = Store(f"sqlite:///{path}")
            activate(stores[n], order[:n])
        print(f"  metadata: {len(shape.sizes)} copies of the control plane's SQLite store (one per N), "
              f"{len(aliases)} alias instances written through the ORM; warm-up on the {len(shape.real)} real "
              f"pair(s) {wall * 1000:.0f} ms", flush=True)

        for n in shape.sizes:  # one untimed warm-up per N (connections, imports, first queries of each copy)
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
            k = rnd % len(shape.sizes)
            for n in shape.sizes[k:] + shape.sizes[:k]:
                res, wall, cpu, ch, pr = run_cycle(stores[n], svc.box, svc.provider, probe)
                walls[n].append(wall)
                cpus[n].append(cpu)
                childs[n].append(ch)
                parts[n].append(pr)
                problems[n] += cycle_errors(res) + ([f"{len(res)} instances sampled"] if len(res) != n else [])
            print(f"  round {rnd + 1}/{args.cycles}: " + "   ".join(
                f"N={n} {walls[n][-1] * 1000:7.1f} ms" for n in shape.sizes), flush=True)
        probe.uninstall()

        # -- report ------------------------------------------------------------------------------------------
        med = {n: statistics.median(walls[n]) for n in shape.sizes}
        medc = {n: statistics.median(cpus[n]) for n in shape.sizes}
        medch = {n: statistics.median(childs[n]) for n in shape.sizes}
        print(f"\none sampling cycle, median of {args.cycles} (N > {len(shape.real)}: metadata aliases of the real "
              "pair(s)):")
        print(f"  {'N':>3} {'wall ms':>9} {'min':>8} {'max':>8} {'CPU ms':>8} {'podman':>8} {'wall/inst':>10} "
              f"{'CPU/inst':>9}  {'DB samples':>10}")
        for n in shape.sizes:
            print(f"  {n:3d} {med[n] * 1000:9.1f} {min(walls[n]) * 1000:8.1f} {max(walls[n]) * 1000:8.1f} "
                  f"{medc[n] * 1000:8.1f} {medch[n] * 1000:8.1f} {med[n] / n * 1000:10.1f} "
                  f"{medc[n] / n * 1000:9.1f}  {n * shape.dbs:10d}")
        print("  (CPU = time.process_time of this process, every thread; podman = CPU of the podman child processes "
              "it waited for, os.times; PostgreSQL's and Patroni's own CPU are not counted)")
        bad = {n: p for n, p in problems.items() if p}
        for n, p in bad.items():
            warn(f"N={n}: {len(p)} problem(s) in timed cycles, e.g. {p[:2]}")

        print("\ngrowth (linear = the instance count's ratio):")
        for a, b in zip(shape.sizes, shape.sizes[1:]):
            lin = b / a
            rw, rc = med[b] / med[a], medc[b] / medc[a] if medc[a] else float("nan")
            verdict = "at or below linear" if rw <= lin * 1.05 else "FASTER than linear"
            print(f"  wall({b})/wall({a}) = {rw:5.2f}x  (linear {lin:.0f}x: {verdict})   "
                  f"CPU({b})/CPU({a}) = {rc:5.2f}x")

        print("\nwhere a cycle's time goes (median ms per cycle, summed over the sampler's threads: the instances' "
              "network parts overlap, so the parts can add up to more than the wall time and 'rest' = wall minus "
              "the parts goes negative):")
        print(f"  {'part':<38} " + " ".join(f"{'N=' + str(n):>9} {'/inst':>7}" for n in shape.sizes))
        share_top = {}
        for key in PARTS[:4] + (WALK,) + PARTS[4:]:
            vals = {n: statistics.median([p.get(key, 0.0) for p in parts[n]]) for n in shape.sizes}
            if key != WALK:
                share_top[key] = vals[shape.top]
            print(f"  {key:<38} " + " ".join(f"{vals[n] * 1000:9.1f} {vals[n] / n * 1000:7.1f}"
                                             for n in shape.sizes))
        top = sorted(share_top.items(), key=lambda kv: -kv[1])
        print(f"  at N={shape.top} the biggest part is '{top[0][0]}' ({top[0][1] / med[shape.top] * 100:.0f}% of the "
              f"median cycle), then '{top[1][0]}' ({top[1][1] / med[shape.top] * 100:.0f}%)")

        from webapp.providers.local import VolumeSizes

        vols = svc.provider.volumes
        age, vols.max_age = vols.max_age, 0.0
        stale = []
        for _ in range(shape.extra_cycles):
            stale.append(run_cycle(stores[shape.top], svc.box, svc.provider)[1])
            vols.wait_refreshed()
        vols.max_age = age
        cold = []
        for _ in range(shape.extra_cycles):
            svc.provider.volumes = VolumeSizes(vols.conf, age)
            cold.append(run_cycle(stores[shape.top], svc.box, svc.provider)[1])
        svc.provider.volumes = vols
        print(f"\nN={shape.top}, every data volume's number older than {age:.0f} s (measured by du in the background "
              f"thread): median {statistics.median(stale) * 1000:.1f} ms of {len(stale)} cycles")
        print(f"N={shape.top}, cold (no volume measured yet: {len(vols._sizes)} distinct volumes measured inside the "
              f"cycle, once per worker start): median {statistics.median(cold) * 1000:.1f} ms of {len(cold)} cycles")

        met = med[shape.top] <= TARGET_WALL
        linear = all(med[b] / med[a] <= (b / a) * 1.05 for a, b in zip(shape.sizes, shape.sizes[1:]))
        print(f"\ntarget: {shape.top} instances in <= {TARGET_WALL:.1f} s of wall time per cycle: median "
              f"{med[shape.top]:.3f} s -> {'MET' if met else 'NOT met'}; growth "
              f"{'no faster than linear' if linear else 'faster than linear'}")
        if not met or args.profile:
            profile_cycle(stores[shape.top], svc.box, svc.provider, shape.top)
            print(f"  dominant part (from the split above): {top[0][0]}")
        if args.smoke and warnings:
            raise BenchFailed(f"{len(warnings)} warning(s), a smoke run takes none: {warnings[:2]}")
    finally:
        if probe is not None:
            probe.uninstall()
        for st in stores.values():
            st.dispose()


if __name__ == "__main__":
    sys.exit(main())

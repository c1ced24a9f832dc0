#!/usr/bin/env python3
"""The control plane at 50 instances (issue 17, item 3): the list API and page, the instance API and page, the
dashboard and one sampler cycle, with SQLite and then with PostgreSQL as the metadata store, in one run.

What is real and what is not. Two real Patroni pairs are made through the API (bench-scale-1, bench-scale-2) on an
in-process control plane (tests.conftest.Live: real HTTP, one job worker whose own sampler is kept idle), and a
tenant makes one database on each. The other 48 instances are metadata aliases (bench/sampler.py's add_aliases):
Instance/Member/Database rows in the control plane's own store, status available, that point at the real pairs'
members (addresses, ports, container names) and secrets. So every view that asks Patroni asks a real Patroni, every
sampler probe opens a real monitoring connection, but 25 instances share each pair's servers.

Timed, interleaved (--count rounds): GET /api/v1/instances?limit=100 and GET /api/v1/instances/bench-scale-1 with
an admin token; the website's /instances, /instances/bench-scale-1, /dashboard and /dashboard/data logged in as the
admin. Printed per target: p50, p95, max in ms and the answer's size, beside the target (p95 at most 100 ms). Then
--cycles sampler cycles (metrics.sample_all over the 50, committed; target at most 2 s), and the resident memory of
this process (the control plane runs in it; the bench's own share is small: requests and the timings).

Everything of bench-scale-* goes at the end (also on Ctrl-C or SIGTERM). Exit status 0 whatever the numbers, 1 if
the benchmark could not run, 130 when interrupted. --smoke: one real pair, 3 instances in all, one round and one
cycle, PostgreSQL metadata only (SQLite's path is every other bench's).

    .venv/bin/python bench/scale.py [--instances 50] [--count 20] [--cycles 3] [--store sqlite|postgresql|both]
                                    [--smoke]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import _common as common
from _common import BenchFailed
from sampler import add_aliases
from ui_pages import pct, web_session

PREFIX = "bench-scale-"
TARGET_MS, TARGET_CYCLE = 100.0, 2.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(cp: common.ControlPlane, store_name: str, real: list[str], total: int, count: int, cycles: int,
            results: dict) -> None:
    live = cp.live
    svc = live.app.extensions["pgaas"]
    t0 = time.monotonic()
    jobs = [cp.create(name)["job"]["id"] for name in real]
    for job_id in jobs:
        cp.wait_ok(job_id)
    for name in real:
        r = live.alice.post(f"/api/v1/instances/{name}/databases", json={"name": "scale_shop", "quota_mb": 100})
        if r.status_code != 201:
            raise BenchFailed(f"create database on {name}: {r.status_code} {r.text[:200]}")
    aliases = add_aliases(svc.store, tuple(real), total - len(real), prefix=PREFIX, status="available")
    print(f"  [{store_name}] {len(real)} real pair(s) ready in {time.monotonic() - t0:.1f} s, "
          f"{len(aliases)} aliases added: {total} instances (untimed)", flush=True)

    admin_web = web_session(live.base, "root", "root-password-1")
    first = real[0]
    targets = {
        "API  GET /api/v1/instances?limit=100": lambda: live.admin.get("/api/v1/instances?limit=100", timeout=60),
        f"API  GET /api/v1/instances/{first}": lambda: live.admin.get(f"/api/v1/instances/{first}", timeout=60),
        "page /instances": lambda: admin_web.get(live.base + "/instances", timeout=60),
        f"page /instances/{first}": lambda: admin_web.get(live.base + f"/instances/{first}", timeout=60),
        "page /dashboard": lambda: admin_web.get(live.base + "/dashboard", timeout=60),
        "JSON /dashboard/data": lambda: admin_web.get(live.base + "/dashboard/data", timeout=60),
    }
    sizes, times = {}, {k: [] for k in targets}
    for label, fn in targets.items():  # warm-up, untimed; also checks the answer
        r = fn()
        if r.status_code != 200:
            raise BenchFailed(f"{label}: {r.status_code} {r.text[:200]}")
        sizes[label] = len(r.content)
    listed = live.admin.get("/api/v1/instances?limit=100").json()
    if len(listed.get("instances", [])) < total:
        raise BenchFailed(f"the list shows {len(listed.get('instances', []))} instances, not {total}")
    for _ in range(count):
        for label, fn in targets.items():
            t = time.perf_counter()
            r = fn()
            times[label].append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                raise BenchFailed(f"{label}: {r.status_code}")

    from webapp.services import metrics

    walls = []
    for _ in range(cycles + 1):  # the first creates the monitoring role and measures the volumes: untimed
        t = time.perf_counter()
        with svc.store.session() as s:
            out = metrics.sample_all(s, svc.box, svc.provider)
        walls.append(time.perf_counter() - t)
        if len(out) < total:
            raise BenchFailed(f"a sampler cycle sampled {len(out)} of {total} instances")
    results[store_name] = {"times": times, "sizes": sizes, "cycles": walls[1:], "rss_mb": rss_mb()}


def report(store_name: str, res: dict, total: int) -> bool:
    ok = True
    print(f"\n[{store_name}] {total} instances                 {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'kB':>7}")
    for label, ts in res["times"].items():
        p95 = pct(ts, 95)
        ok &= p95 <= TARGET_MS
        print(f"  {label:<44} {statistics.median(ts):8.1f} {p95:8.1f} {max(ts):8.1f} "
              f"{res['sizes'][label] / 1024:7.1f}{'' if p95 <= TARGET_MS else '   over ' + str(int(TARGET_MS))}")
    cyc = statistics.median(res["cycles"])
    ok &= cyc <= TARGET_CYCLE
    print(f"  sampler cycle over {total} instances: median {cyc:.2f} s, max {max(res['cycles']):.2f} s "
          f"(target <= {TARGET_CYCLE:.0f} s)")
    print(f"  resident memory of the control plane's process: {res['rss_mb']:.0f} MB")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    common.add_smoke(ap)
    a = ap.parse_args()
    real = [f"{PREFIX}1", f"{PREFIX}2"]
    if a.smoke:
        real, a.instances, a.count, a.cycles = real[:1], 3, 1, 1
        a.store = "postgresql" if a.store == "both" else a.store  # the path with more code; SQLite is every bench's
    if a.instances < len(real):
        ap.error(f"--instances must be at least {len(real)}")
    if not common.require_image():
        return 1
    common.trap_signals()
    print(f"pgaas control plane at {a.instances} instances ({len(real)} real pairs), {a.count} round(s), "
          f"{common.load_line('at the start')}", flush=True)
    common.smoke_note(a.smoke)
    common.note_other_containers()
    stores = ("sqlite", "postgresql") if a.store == "both" else (a.store,)
    results: dict = {}
    rc = 0
    for store_name in stores:
        meta = None
        url = None
        if store_name == "postgresql":
            from tests.conftest import MetadataPostgres

            meta = MetadataPostgres()
            url = meta.new_database()
        try:
            rc = rc or common.in_control_plane(
                "scale", PREFIX, lambda cp: measure(cp, store_name, real, a.instances, a.count, a.cycles, results),
                database_url=url, SAMPLE_SECONDS=1e9, QUOTA_CHECK_SECONDS=1e9)
        finally:
            if meta is not None:
                meta.stop()
        if rc:
            break
    met = all([report(name, res, a.instances) for name, res in results.items()])
    if results:
        print(f"\ntargets (every page and API p95 <= {TARGET_MS:.0f} ms, a sampler cycle <= {TARGET_CYCLE:.0f} s): "
              f"{'met' if met else 'NOT met'}{' (smoke: not a result)' if a.smoke else ''}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

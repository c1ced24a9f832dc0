#!/usr/bin/env python3
"""Website page latency: how long each main page takes to answer, logged in, against a real instance.

An in-process control plane (tests.conftest.Live: SQLite metadata, real HTTP on loopback, one job worker) creates
the instance (untimed), a database user creates one database on it, and two browser-like sessions (requests,
logged in through the login form) fetch each page --count times, the pages interleaved so machine noise hits all
alike. Printed per page: p50, p95 and max in ms, and the answer's size.

The instance page is the heaviest: beside the metadata it asks Patroni for the live state (one /cluster call) and,
for the settings editor, every member for its settings (one /patroni call and one PostgreSQL connection per
member). Those two parts are also timed alone, in-process, so the page's own cost can be told from theirs.

At the end (also on Ctrl-C or SIGTERM) the control plane stops and everything podman holds of the instance is
removed (containers, volumes, network, configuration directory). Exit status 0 whatever the numbers, 1 if the
benchmark could not run, 130 when interrupted. --smoke: one request per page and per part.

    .venv/bin/python bench/ui_pages.py [--count 30] [--instance bench-ui-1] [--smoke]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

import requests

import _common as common
from _common import BenchFailed


def web_session(base: str, username: str, password: str) -> requests.Session:
    s = requests.Session()
    html = s.get(base + "/login", timeout=30).text
    token = re.search(r'name="(?:\w+-)?csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    r = s.post(base + "/login", data={"csrf_token": token, "username": username, "password": password},
               allow_redirects=False, timeout=30)
    if r.status_code != 302:
        raise BenchFailed(f"log in as {username} failed: {r.status_code}")
    return s


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=30, help="requests per page (default 30)")
    ap.add_argument("--instance", default="bench-ui-1",
                    help="name of the instance to create (default bench-ui-1; anything podman holds under a name "
                         "starting with it is removed before and after)")
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.count = 1
    if args.count < 1:
        ap.error("--count must be at least 1")
    if not common.require_image():
        return 2
    common.trap_signals()
    common.smoke_note(args.smoke)
    return common.in_control_plane("ui_pages", args.instance, lambda cp: measure(cp, args.instance, args.count))


def measure(cp: common.ControlPlane, name: str, count: int) -> None:
    live = cp.live
    t0 = time.perf_counter()
    job_id = cp.create(name)["job"]["id"]
    cp.wait_ok(job_id, timeout=300)
    print(f"instance {name} available after {time.perf_counter() - t0:.1f} s (untimed below)")
    r = live.alice.post(f"/api/v1/instances/{name}/databases", json={"name": "bench_shop", "quota_mb": 100})
    if r.status_code != 201:
        raise BenchFailed(f"create database: {r.status_code} {r.text}")

    root = web_session(live.base, "root", "root-password-1")
    alice = web_session(live.base, "alice", "alice-password-1")
    pages = [("admin", "/instances"), ("admin", f"/instances/{name}"), ("admin", "/databases"),
             ("admin", f"/jobs/{job_id}"), ("admin", f"/jobs/{job_id}/events?after=0"), ("admin", "/users"),
             ("admin", "/audit"), ("user", "/databases"), ("user", f"/instances/{name}/databases/bench_shop"),
             ("user", "/account/tokens")]
    sessions = {"admin": root, "user": alice}
    times: dict[tuple, list[float]] = {p: [] for p in pages}
    sizes: dict[tuple, int] = {}
    for who, path in pages:  # one warm-up each, untimed
        r = sessions[who].get(live.base + path, timeout=60)
        if r.status_code != 200:
            raise BenchFailed(f"{who} {path}: {r.status_code}")
        sizes[(who, path)] = len(r.content)
    for _ in range(count):
        for who, path in pages:
            t = time.perf_counter()
            r = sessions[who].get(live.base + path, timeout=60)
            times[(who, path)].append((time.perf_counter() - t) * 1000)
            if r.status_code != 200:
                raise BenchFailed(f"{who} {path}: {r.status_code}")

    print(f"\n{'page':<48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'kB':>6}")
    for (who, path), ts in times.items():
        print(f"{who + ' ' + path:<48} {statistics.median(ts):8.1f} {pct(ts, 95):8.1f} {max(ts):8.1f} "
              f"{sizes[(who, path)] / 1024:6.1f}")

    # the instance page's two live parts, alone
    from webapp.services import certificates, patroni
    from webapp.services import instances as isvc
    from webapp.services import settings as ssvc

    svc = live.app.extensions["pgaas"]
    timeout = float(svc.config["PROBE_TIMEOUT"])
    with svc.store.session() as s:
        inst = isvc.get(s, name)
        cluster = timed(lambda: isvc.live_state(inst, timeout), count)
        managed = (inst.meta or {}).get("settings") or {}
        password = svc.box.open(inst.secrets_enc)["pgaas_superuser_password"]
        settings, serial = [], []
        for _ in range(count):  # interleaved: the same noise for both
            settings += timed(lambda: ssvc.current(inst, svc.box, timeout + 1), 1)
            ctx = patroni.context(inst)
            serial += timed(lambda: [ssvc.member_settings(inst, m, managed, password, timeout + 1, ctx)
                                     for m in inst.members], 1)
    print(f"\nin-process parts of the instance page ({count} each, {len(inst.members)} members)")
    print(f"{'  Patroni /cluster (live state)':<48} {statistics.median(cluster):8.1f} {pct(cluster, 95):8.1f} "
          f"{max(cluster):8.1f}")
    print(f"{'  settings of every member (in parallel)':<48} {statistics.median(settings):8.1f} "
          f"{pct(settings, 95):8.1f} {max(settings):8.1f}")
    print(f"{'  the same, one member after the other':<48} {statistics.median(serial):8.1f} "
          f"{pct(serial, 95):8.1f} {max(serial):8.1f}")
    import psycopg

    m = inst.members[0]
    ctx = patroni.context(inst)
    parts = {"    one member: Patroni /patroni": lambda: patroni.get(m, "/patroni", timeout, ctx),
             "    one member: PostgreSQL connect (SCRAM, TLS)": lambda: psycopg.connect(
                 host=m.address, port=m.pg_port, user="postgres", dbname="postgres", password=password,
                 connect_timeout=3, **certificates.libpq_params(inst)).close()}
    for label, fn in parts.items():
        ts = timed(fn, count)
        print(f"{label:<48} {statistics.median(ts):8.1f} {pct(ts, 95):8.1f} {max(ts):8.1f}")


if __name__ == "__main__":
    sys.exit(main())

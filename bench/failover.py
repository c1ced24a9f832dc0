#!/usr/bin/env python3
"""Failover benchmark: RTO and acknowledged commits lost when the primary's container of a synchronous pair is
SIGKILLed under a write load, with pgaas's settings against Patroni's stock ones, in the same run.

  pgaas     a synchronous pair as the API creates it (Patroni ttl 10, loop_wait 1, retry_timeout 4, ...), with
            the control plane's leader guard on (it releases the leader key once the container has exited).
  noguard   the same pair with the guard switched off (PGAAS_FAST_FAILOVER=false): Patroni's TTL alone.
  stock     a second synchronous pair switched to Patroni's stock timings through its dynamic configuration
            (ttl 30, loop_wait 10, retry_timeout 10, primary_start_timeout 300, no failsafe_mode), guard off.

Both pairs come from an in-process control plane (tests.conftest.Live: real HTTP, job workers, ansible-runner,
podman; SQLite metadata). A writer inserts sequential ids through the instance's unchanged multi-host URI
(target_session_attrs=read-write), every attempt bounded (connect_timeout 2 s, tcp_user_timeout 2 s,
statement_timeout 2 s), and records every id whose COMMIT was acknowledged. Then `podman kill -s KILL` on the
current primary's container.

  RTO   from the kill to the first acknowledged write after the writes failed (through the same URI).
  lost  acknowledged ids missing from the table on the new primary afterwards (must be 0: synchronous mode).

Each pair is checked healthy (a sync standby streaming) before its first run; after each run but a pair's last
(untimed) the old primary is started again and the bench waits until it streams as the sync standby, so every run
starts from a healthy pair (after its last run the pair is only deleted). Modes run interleaved (pgaas, noguard,
stock, pgaas, ...) so machine noise hits them alike; the load average is printed with the figures (the machine is
shared). Containers, volumes and networks are the instances' own (bench-fo-*), removed at the end, also on Ctrl-C
or SIGTERM. Exit status 0 whatever the numbers, 1 if a run failed or the benchmark could not run, 130 when
interrupted. --smoke: one run of the modes pgaas and stock (noguard differs from pgaas only by the guard's switch,
which stock also turns off).

    .venv/bin/python bench/failover.py [--runs 5] [--modes pgaas,noguard,stock] [--smoke]
"""
from __future__ import annotations

import re
import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from base64 import b64encode

import psycopg

import _common as common
from _common import BenchFailed

PREFIX = "bench-fo-"
TARGET_RTO = 5.0
STOCK = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "primary_start_timeout": 300, "failsafe_mode": False,
         "check_timeline": False}


class Writer(threading.Thread):
    """Sequential inserts through the URI; acknowledged ids with their times, and the times attempts failed."""

    def __init__(self, uri: str, password: str):
        super().__init__(daemon=True)
        self.uri, self.password = uri, password
        self.acked: list[int] = []
        self.acked_at: list[float] = []
        self.failures: list[float] = []
        self.errors: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self):
        n, conn = 0, None
        while not self.stop.is_set():
            n += 1
            try:
                if conn is None:
                    conn = psycopg.connect(self.uri, password=self.password, connect_timeout=2, autocommit=True,
                                           tcp_user_timeout=2000, keepalives_idle=1, keepalives_interval=1,
                                           keepalives_count=2, options="-c statement_timeout=2000")
                conn.execute("insert into fo_rows values (%s)", (n,))
                self.acked.append(n)
                self.acked_at.append(time.monotonic())
            except psycopg.Error as exc:
                self.failures.append(time.monotonic())
                kind = type(exc).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg.Error:
                        pass
                conn = None
                time.sleep(0.02)
            time.sleep(0.005)

    def resumed_at(self, killed_at: float) -> float | None:
        """First acknowledged write after the last failure that followed the kill (once writes flow again)."""
        fails = [t for t in self.failures if t >= killed_at]
        if not fails:
            return None
        after = [t for t in self.acked_at if t > fails[-1]]
        return after[0] if len(after) >= 20 else None


class Pair:
    def __init__(self, cp: common.ControlPlane, name: str):
        self.cp, self.live, self.name = cp, cp.live, name
        self.created = cp.create(name, synchronous=True)
        self.job_id = self.created["job"]["id"]
        self.password = self.created["admin_password"]
        self.settled_at = 0.0  # monotonic time from which runs may start (after a change of Patroni's timings)

    def ready(self):
        self.cp.wait_ok(self.job_id, timeout=300)
        base = self.created["instance"]["uri"]
        with psycopg.connect(base, password=self.password, autocommit=True) as c:
            c.execute("create database fo_app")
        self.uri = re.sub(r"/\w+\?", "/fo_app?", base, count=1)
        with psycopg.connect(self.uri, password=self.password, autocommit=True) as c:
            c.execute("create table fo_rows (id int primary key)")
        self.wait_healthy()

    def state(self) -> dict:
        return self.live.admin.get(f"/api/v1/instances/{self.name}").json()

    def patroni_config(self, patch: dict) -> None:
        """PATCH Patroni's dynamic configuration through a member's REST API (what patronictl edit-config does)."""
        from tests.e2e.helpers import patroni_tls, secrets_of

        secrets = secrets_of(self.live, self.name)
        member = self.state()["primary"]
        api_port = next(m["api_port"] for m in self._members() if m["name"] == member["container"])
        auth = b64encode(f"pgaas:{secrets['pgaas_restapi_password']}".encode()).decode()
        req = urllib.request.Request(f"https://127.0.0.1:{api_port}/config", data=json.dumps(patch).encode(),
                                     method="PATCH", headers={"Authorization": f"Basic {auth}",
                                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=patroni_tls(self.live, self.name)) as r:
            applied = json.load(r)
        if any(applied.get(k) != v for k, v in patch.items()):
            raise BenchFailed(f"Patroni's configuration of {self.name} after the PATCH: {applied}")
        self.settled_at = time.monotonic() + 12  # every member's next loop picks the new timings up

    def _members(self) -> list[dict]:
        from webapp.services import instances as isvc

        svc = self.live.app.extensions["pgaas"]
        with svc.store.session() as s:
            return [{"name": m.name, "api_port": m.api_port} for m in isvc.get(s, self.name).members]

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            reps = st.get("replicas") or []
            if st.get("primary") and st.get("status") == "available" and reps and \
                    all(r["state"] in ("running", "streaming") for r in reps) and \
                    any(r.get("sync_state") == "sync" for r in reps):
                return
            time.sleep(1)
        raise BenchFailed(f"{self.name} did not become healthy again: {self.state()}")


def one_run(pair: Pair, recover: bool, timeout: float = 120) -> dict:
    """Kill the primary under the writer's load: RTO and lost commits. With recover, start the old primary again
    and wait until the pair is healthy (untimed)."""
    time.sleep(max(0.0, pair.settled_at - time.monotonic()))
    before = pair.state()
    victim = before["primary"]["container"]
    writer = Writer(pair.uri, pair.password)
    writer.start()
    time.sleep(2)
    if len(writer.acked) < 10:
        writer.stop.set()
        raise BenchFailed(f"writer did not get going before the kill: {writer.errors}")
    killed_at = time.monotonic()
    common.podman("kill", "--signal", "KILL", victim, check=True)
    deadline = killed_at + timeout
    while time.monotonic() < deadline and writer.resumed_at(killed_at) is None:
        time.sleep(0.05)
    writer.stop.set()
    writer.join(timeout=15)
    resumed = writer.resumed_at(killed_at)
    with psycopg.connect(pair.uri, password=pair.password, connect_timeout=5) as c:
        present = {r[0] for r in c.execute("select id from fo_rows")}
        c.execute("truncate fo_rows")
        c.commit()
    lost = [i for i in writer.acked if i not in present]
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    if recover:
        common.podman("start", victim, check=True)
        pair.wait_healthy()
    return {"rto": None if resumed is None else resumed - killed_at, "lost": len(lost), "acked": len(writer.acked),
            "errors": dict(writer.errors), "load": load, "victim": victim,
            "rejoin": time.monotonic() - t0 if recover else None}


def summary(label: str, runs: list[dict]) -> tuple[float | None, int]:
    rtos = [r["rto"] for r in runs if r["rto"] is not None]
    lost = [r["lost"] for r in runs]
    med = statistics.median(rtos) if rtos else None
    print(f"  {label:<8} runs {len(runs)}  RTO median {med if med is None else f'{med:.2f}'} s "
          f"(min {min(rtos, default=float('nan')):.2f}, max {max(rtos, default=float('nan')):.2f}; "
          f"{len(runs) - len(rtos)} never resumed)  lost median {statistics.median(lost) if lost else '-'} "
          f"(total {sum(lost)})  load {statistics.median([r['load'] for r in runs]) if runs else 0:.2f}",
          flush=True)
    return med, sum(lost)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--modes", default="pgaas,noguard,stock")
    ap.add_argument("--port-start", type=int, default=common.PORT_RANGES["failover"],
                    help="first of 100 host ports for the pairs")
    ap.add_argument("--verbose", action="store_true", help="log what the leader guard does")
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.runs, args.modes = 1, "pgaas,stock"
    import logging

    logging.basicConfig(level=logging.WARNING, format="    %(asctime)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("webapp.services.leader_guard").setLevel(logging.INFO)
    modes = [m for m in args.modes.split(",") if m]
    if not common.require_image():
        return 2
    common.trap_signals()

    print(f"pgaas failover benchmark: {args.runs} run(s) per mode ({', '.join(modes)}), interleaved; "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    common.smoke_note(args.smoke)
    results: dict[str, list[dict]] = {m: [] for m in modes}
    failed: list[str] = []
    # ports of its own: a member that is down frees its port, and another control plane on this machine (a test
    # run) would otherwise take it meanwhile
    status = common.in_control_plane("failover", PREFIX, lambda cp: measure(cp, args, modes, results, failed),
                                     workers=2, SAMPLE_SECONDS=3600, QUOTA_CHECK_SECONDS=3600,
                                     PORT_RANGE_START=args.port_start, PORT_RANGE_END=args.port_start + 99)
    print("results (median over runs):", flush=True)
    meds = {m: summary(m, results[m]) for m in modes}
    if "pgaas" in meds and "stock" in meds and meds["pgaas"][0] and meds["stock"][0]:
        print(f"  ratio stock / pgaas RTO: {meds['stock'][0] / meds['pgaas'][0]:.1f}x; target RTO <= "
              f"{TARGET_RTO:.0f} s: {'met' if meds['pgaas'][0] <= TARGET_RTO else 'MISSED'}; lost "
              f"acknowledged commits: {sum(v[1] for v in meds.values())}", flush=True)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return status or (1 if failed else 0)


def measure(cp: common.ControlPlane, args, modes: list[str], results: dict[str, list[dict]],
            failed: list[str]) -> None:
    """The pairs, then the runs (each mode's results into results, what failed into failed)."""
    want = {"pgaas": f"{PREFIX}tuned", "noguard": f"{PREFIX}tuned", "stock": f"{PREFIX}stock"}
    t0 = time.monotonic()
    try:
        pairs = {name: Pair(cp, name) for name in sorted({want[m] for m in modes})}
        for p in pairs.values():
            p.ready()
    except psycopg.Error as exc:
        raise BenchFailed(f"setting up the pairs: {exc}") from None
    print(f"  {', '.join(pairs)} ready through the API in {time.monotonic() - t0:.1f} s (untimed)", flush=True)
    if f"{PREFIX}stock" in pairs:
        pairs[f"{PREFIX}stock"].patroni_config(STOCK)
    last = {want[m]: (args.runs, m) for m in modes}  # each pair's last run
    for i in range(1, args.runs + 1):
        for mode in modes:
            cp.live.app.config["FAST_FAILOVER"] = mode == "pgaas"
            try:
                res = one_run(pairs[want[mode]], recover=last[want[mode]] != (i, mode))
            except (BenchFailed, psycopg.Error) as exc:
                failed.append(f"run {i} {mode}: {exc}")
                print(f"  run {i} {mode:<8} FAILED: {exc}", flush=True)
                continue
            results[mode].append(res)
            rto = "never" if res["rto"] is None else f"{res['rto']:.2f} s"
            rejoin = "" if res["rejoin"] is None else f"  (healthy again {res['rejoin']:.1f} s later, untimed)"
            print(f"  run {i} {mode:<8} RTO {rto:>8}  lost {res['lost']}  acked {res['acked']}  "
                  f"killed {res['victim']}  load {res['load']:.2f}  client errors {res['errors']}{rejoin}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())

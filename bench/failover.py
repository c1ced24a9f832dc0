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

After each run (untimed) the old primary is started again and the bench waits until it streams as the sync
standby, so every run starts from a healthy pair. Modes run interleaved (pgaas, noguard, stock, pgaas, ...) so
machine noise hits them alike; the load average is printed with the figures (the machine is shared). Containers,
volumes and networks are the instances' own (bench-fo-*), removed at the end, also on Ctrl-C.

    .venv/bin/python bench/failover.py [--runs 5] [--modes pgaas,noguard,stock]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CONTAINERS_CONF = str(REPO / "etc" / "containers.conf")
os.environ["CONTAINERS_CONF"] = CONTAINERS_CONF
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
TARGET_RTO = 5.0
STOCK = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "primary_start_timeout": 300, "failsafe_mode": False,
         "check_timeline": False}


def podman(*args, check=True) -> str:
    r = subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV)
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


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
    def __init__(self, live, name: str):
        self.live, self.name = live, name
        r = live.admin.post("/api/v1/instances", json={"name": name, "synchronous": True})
        if r.status_code != 202:
            raise RuntimeError(r.text)
        self.created = r.json()
        self.job_id = self.created["job"]["id"]
        self.password = self.created["admin_password"]

    def ready(self):
        job = self.live.admin.wait_job(self.job_id, timeout=300)
        if job["status"] != "succeeded":
            raise RuntimeError(f"create {self.name}: {job['error']}")
        base = self.created["instance"]["uri"]
        with psycopg.connect(base, password=self.password, autocommit=True) as c:
            c.execute("create database fo_app")
        self.uri = base.replace("/postgres?", "/fo_app?")
        with psycopg.connect(self.uri, password=self.password, autocommit=True) as c:
            c.execute("create table fo_rows (id int primary key)")

    def state(self) -> dict:
        return self.live.admin.get(f"/api/v1/instances/{self.name}").json()

    def patroni_config(self, patch: dict) -> None:
        """PATCH Patroni's dynamic configuration through a member's REST API (what patronictl edit-config does)."""
        from tests.e2e.helpers import secrets_of

        secrets = secrets_of(self.live, self.name)
        member = self.state()["primary"]
        api_port = next(m["api_port"] for m in self._members() if m["name"] == member["container"])
        auth = b64encode(f"pgaas:{secrets['pgaas_restapi_password']}".encode()).decode()
        req = urllib.request.Request(f"http://127.0.0.1:{api_port}/config", data=json.dumps(patch).encode(),
                                     method="PATCH", headers={"Authorization": f"Basic {auth}",
                                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            applied = json.load(r)
        assert all(applied.get(k) == v for k, v in patch.items()), applied
        time.sleep(12)  # every member's next loop picks the new timings up

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
        raise RuntimeError(f"{self.name} did not become healthy again: {self.state()}")


def one_run(pair: Pair, timeout: float = 120) -> dict:
    before = pair.state()
    victim = before["primary"]["container"]
    writer = Writer(pair.uri, pair.password)
    writer.start()
    time.sleep(2)
    if len(writer.acked) < 10:
        writer.stop.set()
        raise RuntimeError(f"writer did not get going before the kill: {writer.errors}")
    killed_at = time.monotonic()
    podman("kill", "--signal", "KILL", victim)
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
    podman("start", victim)
    pair.wait_healthy()
    return {"rto": None if resumed is None else resumed - killed_at, "lost": len(lost), "acked": len(writer.acked),
            "errors": dict(writer.errors), "load": os.getloadavg()[0], "victim": victim}


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
    ap.add_argument("--port-start", type=int, default=21900, help="first of 100 host ports for the pairs")
    ap.add_argument("--verbose", action="store_true", help="log what the leader guard does")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="    %(asctime)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("webapp.services.leader_guard").setLevel(logging.INFO)
    modes = [m for m in args.modes.split(",") if m]

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    from tests.conftest import Live, make_app

    workdir = Path(tempfile.mkdtemp(prefix="pgaas-bench-fo-"))
    os.chmod(workdir, 0o700)
    print(f"pgaas failover benchmark: {args.runs} run(s) per mode ({', '.join(modes)}), interleaved; "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    live, pairs = None, {}
    results: dict[str, list[dict]] = {m: [] for m in modes}
    try:
        # ports of its own: a member that is down frees its port, and another control plane on this machine (a
        # test run) would otherwise take it meanwhile
        live = Live(make_app(f"sqlite:///{workdir / 'pgaas.sqlite'}", workdir / "instance", SAMPLE_SECONDS=3600,
                             QUOTA_CHECK_SECONDS=3600, PORT_RANGE_START=args.port_start,
                             PORT_RANGE_END=args.port_start + 99), workers=2)
        want = {"pgaas": "bench-fo-tuned", "noguard": "bench-fo-tuned", "stock": "bench-fo-stock"}
        for name in sorted({want[m] for m in modes}):
            pairs[name] = Pair(live, name)
        for p in pairs.values():
            p.ready()
        if "bench-fo-stock" in pairs:
            pairs["bench-fo-stock"].patroni_config(STOCK)
        for i in range(1, args.runs + 1):
            for mode in modes:
                live.app.config["FAST_FAILOVER"] = mode == "pgaas"
                try:
                    res = one_run(pairs[want[mode]])
                except (RuntimeError, psycopg.Error) as exc:
                    print(f"  run {i} {mode:<8} FAILED: {exc}", flush=True)
                    continue
                results[mode].append(res)
                rto = "never" if res["rto"] is None else f"{res['rto']:.2f} s"
                print(f"  run {i} {mode:<8} RTO {rto:>8}  lost {res['lost']}  acked {res['acked']}  "
                      f"killed {res['victim']}  load {res['load']:.2f}  client errors {res['errors']}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
    finally:
        print("results (median over runs):", flush=True)
        meds = {m: summary(m, results[m]) for m in modes}
        if "pgaas" in meds and "stock" in meds and meds["pgaas"][0] and meds["stock"][0]:
            print(f"  ratio stock / pgaas RTO: {meds['stock'][0] / meds['pgaas'][0]:.1f}x; target RTO <= "
                  f"{TARGET_RTO:.0f} s: {'met' if meds['pgaas'][0] <= TARGET_RTO else 'MISSED'}; lost "
                  f"acknowledged commits: {sum(v[1] for v in meds.values())}", flush=True)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        if live is not None:
            for name in pairs:
                r = live.admin.delete(f"/api/v1/instances/{name}?force=true")
                if r.status_code == 202:
                    live.admin.wait_job(r.json()["job"]["id"], timeout=180)
            live.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Data-path benchmark (issue 17, item 5): pgbench through an instance's address, beside a hand-started primary and
standby with the same settings and the same synchronous mode, on the same machine, in the same run.

  inst     an instance made through the API (in-process control plane: SQLite metadata, real HTTP, one worker,
           ansible-runner, podman), pgbench as its admin role on its admin database, through the primary's
           published 127.0.0.1 port (what a URI reaches), TLS (sslmode=require).
  pair     the floor: a primary (initdb + postgres) and a standby (pg_basebackup -R, streaming), bare podman, no
           Patroni, the same image, the same PostgreSQL parameters and initdb options as the role's
           (bench/provision.py's baseline b), TLS on (the image's snakeoil certificate), data in podman volumes on
           the same disk; synchronous_standby_names='*' in the synchronous mode (Patroni names the standby: same
           effect). pgbench as postgres through the primary's published 127.0.0.1 port.
  inst-ip  the instance's primary at its container address (no port forwarding).
  pair-ip  the pair's primary at its container address.

pgbench -c 4 -j 2 -T 15 at scale 10 (the issue's figures), each kind in turn within a round (inst, pair, inst-ip,
pair-ip), rounds repeated, both modes (asynchronous and synchronous). Printed: tps per kind (median of the rounds),
inst/pair (target at least 0.9x), inst-ip/pair-ip (the same without port forwarding), pair-ip/pair (what podman's
port forwarding costs), and the settings that differ between the instance and the pair.

Exit status 0 whatever the numbers, 1 if the benchmark could not run, 130 when interrupted; everything named
pgaas-bench-tp-* is removed at the end. --smoke: the synchronous mode only, one round of 2 s at scale 1.

    .venv/bin/python bench/throughput.py [--rounds 3] [--seconds 15] [--scale 10] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import _common as common
from _common import BenchFailed, podman
from provision import logs_tail, start_bare_pair, wait_streaming

PREFIX = "bench-tp-"
TARGET = 0.9
KINDS = ("inst", "pair", "inst-ip", "pair-ip")
SHOWN = ("shared_buffers", "synchronous_commit", "synchronous_standby_names", "wal_log_hints", "fsync",
         "full_page_writes", "data_checksums", "huge_pages", "ssl", "max_connections", "wal_compression")
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


def container_ip(name: str) -> str:
    out = podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name,
                 check=True).stdout.split()
    if not out:
        raise BenchFailed(f"{name} has no address")
    return out[0]


def pgbench(target: dict, *args: str, timeout: float = 900) -> str:
    env = {**os.environ, "PGPASSWORD": target["password"], "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "10"}
    cmd = [PGBENCH, "-h", target["host"], "-p", str(target["port"]), "-U", target["user"], *args, target["db"]]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise BenchFailed(f"pgbench {' '.join(args[:2])} against {target['host']}:{target['port']}: "
                          f"{(r.stderr or r.stdout).strip()[-400:]}")
    return r.stdout


def tps(target: dict, seconds: int) -> float:
    out = pgbench(target, "-c", "4", "-j", "2", "-T", str(seconds), "-n")
    m = re.search(r"tps = ([0-9.]+)", out)
    if not m:
        raise BenchFailed(f"no tps in pgbench's output: {out[-300:]}")
    return float(m.group(1))


def settings_of(target: dict) -> dict:
    import psycopg

    with psycopg.connect(host=target["host"], port=target["port"], user=target["user"], password=target["password"],
                         dbname=target["db"], sslmode="require", connect_timeout=10) as c:
        return {n: c.execute("SELECT current_setting(%s, true)", (n,)).fetchone()[0] for n in SHOWN}


# -- the instance --------------------------------------------------------------------------------------------
def make_instance(cp: common.ControlPlane, mode: str) -> dict:
    name = f"{PREFIX}{mode}"
    created = cp.create(name, synchronous=(mode == "sync"))
    cp.wait_ok(created["job"]["id"])
    inst = cp.live.admin.get(f"/api/v1/instances/{name}").json()
    primary = inst["primary"]  # {"name", "port", "container", ...}: the member Patroni names leader
    target = {"host": "127.0.0.1", "port": primary["port"], "user": inst["admin_user"],
              "password": created["admin_password"], "db": inst["admin_database"]}
    return {"inst": target, "inst-ip": {**target, "host": container_ip(primary["container"]), "port": 5432}}


# -- the hand-started pair (bench/provision.py's baseline b, kept running, TLS on) --------------------------
def make_pair(mode: str) -> dict:
    name = f"{PREFIX}pair-{mode}"
    opts = ("-c", "ssl=on", "-c", "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "-c", "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
            *(("-c", "synchronous_standby_names=*") if mode == "sync" else ()))
    pair = start_bare_pair(name, opts, hostssl=True)
    port = pair["ports"][pair["primary"]]
    try:
        wait_streaming(port, pair["password"], time.monotonic() + 120)
    except BenchFailed as exc:
        raise BenchFailed(f"{exc}\n{logs_tail([pair['primary'], pair['standby']])}") from None
    target = {"host": "127.0.0.1", "port": port, "user": "postgres", "password": pair["password"], "db": "postgres"}
    return {"pair": target, "pair-ip": {**target, "host": container_ip(pair["primary"]), "port": 5432}}


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def run_mode(cp: common.ControlPlane, mode: str, rounds: int, seconds: int, scale: int) -> dict:
    print(f"\n[{mode}] making the instance through the API and the hand-started pair", flush=True)
    targets = {**make_instance(cp, mode), **make_pair(mode)}
    for kind in ("inst", "pair"):
        pgbench(targets[kind], "-i", "-q", "-s", str(scale))
    results: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in range(1, rounds + 1):
        for kind in KINDS:
            results[kind].append(tps(targets[kind], seconds))
            print(f"  round {r} {kind:8s} {results[kind][-1]:9.1f} tps", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    inst_set, pair_set = settings_of(targets["inst"]), settings_of(targets["pair"])
    differ = {n: (inst_set[n], pair_set[n]) for n in SHOWN if inst_set[n] != pair_set[n]}
    print(f"  medians: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()), flush=True)
    print(f"  inst/pair {ratio(med['inst'], med['pair'])} (target >= {TARGET}x)   "
          f"inst-ip/pair-ip {ratio(med['inst-ip'], med['pair-ip'])}   "
          f"pair-ip/pair {ratio(med['pair-ip'], med['pair'])} (port forwarding's price, as a speed-up)", flush=True)
    print("  settings that differ (instance, pair): "
          + (", ".join(f"{n}={a!r} vs {b!r}" for n, (a, b) in differ.items()) or "none"), flush=True)
    return {"tps": results, "median": med, "settings_differ": differ}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--scale", type=int, default=10)
    common.add_smoke(ap)
    a = ap.parse_args()
    if a.smoke:
        a.rounds, a.seconds, a.scale = 1, 2, 1
    modes = ("sync",) if a.smoke else ("async", "sync")
    if not common.require_image():
        return 1
    common.trap_signals()
    print(f"pgaas data-path benchmark: pgbench -c 4 -j 2 -T {a.seconds}, scale {a.scale}, {a.rounds} round(s), "
          f"modes {', '.join(modes)}; {os.cpu_count()} CPUs, {common.load_line('at the start')}", flush=True)
    common.smoke_note(a.smoke)
    common.note_other_containers()
    summary = {}

    def body(cp: common.ControlPlane) -> None:
        try:
            for mode in modes:
                summary[mode] = run_mode(cp, mode, a.rounds, a.seconds, a.scale)
                print(f"  {common.load_line('now')}", flush=True)
        finally:
            with common.shielded():
                for mode in modes:
                    common.remove_leftovers(f"{PREFIX}pair-{mode}")

    rc = common.in_control_plane("throughput", PREFIX, body)
    if summary:
        print("\n" + json.dumps({m: {"median_tps": v["median"]} for m, v in summary.items()}), flush=True)
        met = all(v["median"]["inst"] >= TARGET * v["median"]["pair"] for v in summary.values())
        print(f"target inst >= {TARGET}x pair in every mode: {'met' if met else 'NOT met'}"
              f"{' (smoke: not a result)' if a.smoke else ''}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

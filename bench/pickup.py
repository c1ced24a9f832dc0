#!/usr/bin/env python3
"""Job pickup: how long from a job's POST until an idle worker starts it, on SQLite and on PostgreSQL metadata,
against the polling of before, measured in the same run; and what an idle worker process costs in CPU.

For each store, the worker runs in the web process (`pgaas run`) or in a process of its own (`pgaas serve` beside
`pgaas worker`, or the CLI queuing for `pgaas run`); each way with the wake-ups (webapp/store/wakeup.py: an event
after the commit, PostgreSQL's LISTEN/NOTIFY, SQLite's probe of the highest job id) and as a baseline without them
(the claim poll every 0.25 s, main before the wake-ups). The target: a queued job starts within 100 ms (p95).

- The web app: tests.conftest.Live (real HTTP on loopback), metadata in a private work dir (SQLite) or on a
  throwaway PostgreSQL 15 server (tests.conftest.MetadataPostgres).
- The POST: `POST /api/v1/jobs/ID/retry` of the newest failed job of an available instance (a row, no containers),
  which queues that job again through services/jobs.enqueue. "Started" is the job's started_at, set by the worker's
  claim; the worker's handler then refuses the job at once (no playbook), so the next POST finds it failed.
- The workers: webapp.jobs.worker.Worker, three threads as in `pgaas run` (two for the instances' jobs, one for
  dumps), in the bench's process or in a child (this script with --worker-process), no periodic maintenance.
- Each POST comes a random 0-300 ms after the previous job ended, so it falls anywhere in a poll's period.
- Idle CPU: the child worker process's user+system time (/proc) over --idle seconds, in % of one core, with the
  wake-ups, with the old 0.25 s claim poll, and with a 0.05 s claim poll (what 100 ms would take by polling alone).

Printed: per store, worker place and mode, the median, p95 and max ms from the POST sent to the start, the median
and p95 from the commit that queued the job to the start (the pickup itself: the rest is the request's own work),
the POST's median answer time, whether the target is met, and the ratios baseline / now; then the idle CPU.
Exit status 0 whatever the figures, 1 if the bench could not run, 130 when interrupted. --smoke: 3 POSTs per way,
1 s of idle CPU, no 0.05 s poll.

    .venv/bin/python bench/pickup.py [--posts 30] [--idle 10] [--smoke]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common as common
from _common import BenchFailed

TARGET_MS = 100.0
BASELINE_POLL = 0.25  # WORKER_POLL_SECONDS before the wake-ups
KIND, INSTANCE = "instance_restart", "bench-pickup"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def workers(store, tmp: str, poll: float, wakeup: bool):
    """Three workers with a handler that refuses the job at once, as `pgaas run` pools them."""
    from webapp.jobs.types import NotRunnable
    from webapp.jobs.worker import Worker
    from webapp.services import dumps
    from webapp.services.handlers.base import JobHandler

    class Refuse(JobHandler):
        def prepare(self, s, job):
            raise NotRunnable("bench/pickup.py: the start is measured; nothing to run")

    pools = [{"skip_kinds": dumps.KINDS}, {"skip_kinds": dumps.KINDS}, {"kinds": dumps.KINDS}]
    return [Worker(store, {KIND: Refuse()}, jobs_dir=f"{tmp}/jobs", project_dir=tmp, inventory="unused",
                   poll_seconds=poll, wakeup=wakeup, **pool) for pool in pools]


def start(ws) -> threading.Event:
    stop = threading.Event()
    for w in ws:
        threading.Thread(target=w.run_forever, args=(stop,), daemon=True).start()
    return stop


def worker_process(url: str, poll: float, wakeup: bool) -> int:
    """--worker-process: the workers alone, in this process, until SIGTERM."""
    from webapp.store import Store

    store, parent = Store(url), os.getppid()
    with tempfile.TemporaryDirectory(prefix="pgaas-bench-pickup-") as tmp:
        stop = start(workers(store, tmp, poll, wakeup))
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("ready", flush=True)
        while not stop.wait(0.5) and os.getppid() == parent:  # ends with the bench, however that ends
            pass
        stop.set()
        store.dispose()
    return 0


class Child:
    """A worker process (this script with --worker-process), stopped on exit."""

    def __init__(self, url: str, poll: float, wakeup: bool):
        cmd = [sys.executable, __file__, "--worker-process", url, "--poll", str(poll)]
        self.proc = subprocess.Popen(cmd + ([] if wakeup else ["--no-wakeup"]), stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> Child:
        if self.proc.stdout.readline().strip() != "ready":
            raise BenchFailed(f"the worker process did not start (exit {self.proc.poll()})")
        time.sleep(0.5)  # its watcher is connected (PostgreSQL: LISTEN) and its workers idle
        return self

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def idle_cpu(self, seconds: float) -> float:
        """% of one core the idle process used over that many seconds."""
        c0 = self.cpu_seconds()
        time.sleep(seconds)
        return (self.cpu_seconds() - c0) / seconds * 100

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def seed(store) -> int:
    """An available instance (a row) and a failed job of it to retry; the job's id."""
    from webapp.store.models import Instance, Job

    with store.session() as s:
        s.add(Instance(name=INSTANCE, status="available", provider="local", admin_user="dbadmin", secrets_enc="x"))
        job = Job(kind=KIND, instance_name=INSTANCE, status="failed", created_by="root")
        s.add(job)
        s.flush()
        return job.id


def commit_times(store) -> dict:
    """job id -> when the transaction that queued it committed (the web process is this one)."""
    from sqlalchemy import event

    from webapp.store.models import Job, utcnow

    seen: dict = {}

    def committed(s):
        now = utcnow()
        for obj in list(s.identity_map.values()):
            if isinstance(obj, Job) and obj.status == "queued":
                seen.setdefault(obj.id, now)

    event.listen(store.sessionmaker, "after_commit", committed)
    return seen


def posts(live, store, committed: dict, last: int, count: int, rng: random.Random) -> tuple[dict, int]:
    """count retries, one after the other: ms from the POST sent and from the commit that queued the job to the
    job's start, and of the POST's answer; the last job's id."""
    from webapp.store.models import Job, aware, utcnow

    ms: dict[str, list[float]] = {"sent": [], "committed": [], "answered": []}
    for _ in range(count):
        time.sleep(rng.uniform(0, 0.3))
        sent, t0 = utcnow(), time.perf_counter()
        r = live.admin.post(f"/api/v1/jobs/{last}/retry")
        ms["answered"].append((time.perf_counter() - t0) * 1000)
        if r.status_code != 202:
            raise BenchFailed(f"POST /api/v1/jobs/{last}/retry answered {r.status_code}: {r.text[:300]}")
        last = r.json()["job"]["id"]
        deadline = time.monotonic() + 30
        while True:
            with store.session() as s:
                job = s.get(Job, last)
                if job.status == "failed":
                    ms["sent"].append((aware(job.started_at) - sent).total_seconds() * 1000)
                    ms["committed"].append((aware(job.started_at) - committed[last]).total_seconds() * 1000)
                    break
            if time.monotonic() > deadline:
                raise BenchFailed(f"job {last} still {job.status} after 30 s")
            time.sleep(0.01)
    return ms, last


def measure_store(url: str, count: int, idle: float, poll: float, rng: random.Random, smoke: bool) -> dict:
    from tests.conftest import Live, make_app

    out: dict = {}
    workdir = tempfile.mkdtemp(prefix="pgaas-bench-pickup-")
    live = Live(make_app(url, Path(workdir) / "instance"), workers=0)
    try:
        store = live.app.extensions["pgaas"].store
        last, committed = seed(store), commit_times(store)
        for wakeup in (True, False):
            mode, p = ("now", poll) if wakeup else ("baseline", BASELINE_POLL)
            stop = start(workers(store, workdir, p, wakeup))
            time.sleep(0.5)
            try:
                out[("in the web process", mode)], last = posts(live, store, committed, last, count, rng)
            finally:
                stop.set()
                time.sleep(0.5)
            with Child(url, p, wakeup) as child:
                label = f"wake-ups, claim poll {p:g} s (now)" if wakeup else f"claim poll {p:g} s (baseline)"
                out[("idle", label)] = child.idle_cpu(idle)
                out[("in a worker process", mode)], last = posts(live, store, committed, last, count, rng)
        if not smoke:  # the baseline's code path with another poll
            with Child(url, 0.05, False) as child:
                out[("idle", "claim poll 0.05 s (100 ms by polling alone)")] = child.idle_cpu(idle)
    finally:
        live.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def report(results: dict[str, dict], count: int, idle: float) -> None:
    print(f"\nms from the POST sent (sent) and from the commit that queued the job (commit) to the job's start, "
          f"and the POST's answer; {count} POSTs each")
    print(f"{'store':<11} {'worker':<21} {'mode':<9} {'sent':>7} {'p95':>7} {'max':>7} {'commit':>7} {'p95':>7} "
          f"{'POST':>7}  target: p95 <= {TARGET_MS:.0f} ms after sent")
    for store, out in results.items():
        for where in ("in the web process", "in a worker process"):
            for mode in ("now", "baseline"):
                ms = out[(where, mode)]
                met = "met" if pct(ms["sent"], 95) <= TARGET_MS else "NOT met"
                print(f"{store:<11} {where:<21} {mode:<9} {statistics.median(ms['sent']):7.1f} "
                      f"{pct(ms['sent'], 95):7.1f} {max(ms['sent']):7.1f} {statistics.median(ms['committed']):7.1f} "
                      f"{pct(ms['committed'], 95):7.1f} {statistics.median(ms['answered']):7.1f}  {met}")
            now, base = out[(where, "now")], out[(where, "baseline")]
            ratios = [statistics.median(base[k]) / max(statistics.median(now[k]), 0.1) for k in ("sent", "committed")]
            print(f"{'':<11} {'':<21} {'ratio':<9} {ratios[0]:6.1f}x {'':>15} {ratios[1]:6.1f}x"
                  f"   (baseline / now, medians)")
    print(f"\nidle CPU of a worker process (3 worker threads, no maintenance), % of one core over {idle:g} s")
    for store, out in results.items():
        for (kind, label), value in out.items():
            if kind == "idle":
                print(f"{store:<11} {label:<46} {value:6.2f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=30, help="POSTs per store, worker place and mode (default 30)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured per mode (default 10)")
    ap.add_argument("--worker-process", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--poll", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-wakeup", action="store_true", help=argparse.SUPPRESS)
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.worker_process:
        return worker_process(args.worker_process, args.poll, not args.no_wakeup)
    if args.smoke:
        args.posts, args.idle = 3, 1.0
    if args.posts < 1 or args.idle <= 0:
        ap.error("--posts must be at least 1 and --idle above 0")
    from webapp.config import Defaults
    from tests.conftest import MetadataPostgres

    common.trap_signals()
    common.smoke_note(args.smoke)
    print(common.load_line("at the start"), flush=True)
    rng, results, server = random.Random(17), {}, []
    poll = float(Defaults.WORKER_POLL_SECONDS)

    def run() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="pgaas-bench-pickup-") as tmp:
                results["sqlite"] = measure_store(f"sqlite:///{tmp}/pgaas.sqlite", args.posts, args.idle,
                                                  poll, rng, args.smoke)
            server.append(MetadataPostgres())
            results["postgresql"] = measure_store(server[0].new_database(), args.posts, args.idle, poll, rng,
                                                   args.smoke)
        finally:
            if server:
                with common.shielded():
                    server[0].stop()

    status = common.exit_status(run)
    if status:
        return status
    report(results, args.posts, args.idle)
    print(common.load_line("at the end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

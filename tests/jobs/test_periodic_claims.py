"""Periodic work runs once per interval for the whole control plane, not once per worker: two workers on one store
(SQLite and PostgreSQL) share each task through its claim in periodic_claims, ask the store only when a task falls
due, take over from a worker that died, and never run one task twice at once. Then two real `pgaas worker`
processes, started together on an empty PostgreSQL database, run the real maintenance list: they migrate it once,
and the sampler's rows come once per interval, also after the worker that sampled is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import event, select

from tests.jobs.test_migration_lock import migrations_run, scripts
from webapp.jobs.worker import Worker
from webapp.store import Store
from webapp.store.models import Instance, InstanceSample, PeriodicClaim, aware, utcnow

REPO = Path(__file__).resolve().parent.parent.parent
PGAAS = REPO / ".venv" / "bin" / "pgaas"


class Runs:
    """What test tasks did: (task, worker id, start, end) in time.monotonic(), from every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, str, float, float]] = []

    def task(self, name: str, worker_id: str, seconds: float = 0.0):
        def run(_session):
            start = time.monotonic()
            time.sleep(seconds)
            with self.lock:
                self.rows.append((name, worker_id, start, time.monotonic()))
        return run

    def of(self, name: str) -> list[tuple[str, str, float, float]]:
        return sorted((r for r in self.rows if r[0] == name), key=lambda r: r[2])


def make_worker(store: Store, tmp_path: Path, worker_id: str, periodic: list, **kw) -> Worker:
    return Worker(store, {}, jobs_dir=str(tmp_path / worker_id), project_dir=str(REPO), inventory="unused",
                  worker_id=worker_id, periodic=periodic, poll_seconds=0.02, **kw)


def run_for(workers: list[Worker], seconds: float) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=w.run_forever, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_two_workers_run_each_task_once_per_interval_and_ask_the_store_only_when_due(database_url, tmp_path):
    intervals, seconds = {"fast": 0.4, "slow": 1.0}, 4.0
    runs, stores, statements = Runs(), [], {}
    workers = []
    for wid in ("w1", "w2"):  # a store (engine) each, as two processes would have
        store = Store(database_url)
        store.upgrade()
        statements[wid] = 0

        def count(_conn, _cursor, statement, *_args, wid=wid):
            if "periodic_claims" in statement:
                statements[wid] += 1

        event.listen(store.engine, "before_cursor_execute", count)
        stores.append(store)
        workers.append(make_worker(store, tmp_path, wid, [(i, n, runs.task(n, wid)) for n, i in intervals.items()]))
    run_for(workers, seconds)

    for name, interval in intervals.items():
        starts = [r[2] for r in runs.of(name)]
        # one run per interval in all: two workers each running it would make about twice as many, closer together
        assert seconds / interval / 2 <= len(starts) <= seconds / interval + 1, (name, len(starts))
        assert min(gaps(starts)) >= interval * 0.6, (name, gaps(starts))
    with stores[0].session() as s:
        claims = {c.name: c for c in s.scalars(select(PeriodicClaim))}
    assert set(claims) == set(intervals) and {c.holder for c in claims.values()} <= {"w1", "w2"}
    for c in claims.values():
        assert (aware(c.next_due_at) - aware(c.claimed_at)).total_seconds() == intervals[c.name]
    # each worker asks about a task about once per interval (a claim: an UPDATE, and a SELECT when it lost), not at
    # each of its ~200 loops
    budget = sum(2 * (seconds / i + 2) for i in intervals.values())
    assert all(0 < n <= budget for n in statements.values()), (statements, budget)
    for store in stores:
        store.dispose()


def test_a_task_whose_worker_died_after_claiming_it_is_due_one_interval_later(database_url, tmp_path):
    store = Store(database_url)
    store.upgrade()
    interval = 1.0
    # w1 claims the task and dies before it runs it: it never gives the claim back
    dead = make_worker(store, tmp_path, "w1", [])
    claimed_at, due = dead.claim_periodic("sweep", interval)
    claimed = time.monotonic()
    assert claimed_at is not None and (due - claimed_at).total_seconds() == interval
    assert dead.claim_periodic("sweep", interval)[0] is None  # not due again for anyone, w1 included

    runs = Runs()
    survivor = make_worker(store, tmp_path, "w2", [(interval, "sweep", runs.task("sweep", "w2"))])
    deadline = claimed + 3 * interval
    while not runs.rows and time.monotonic() < deadline:
        survivor.run_periodic()
        time.sleep(0.02)
    assert runs.rows, "the survivor never ran the task"
    late = runs.rows[0][2] - claimed
    assert interval * 0.9 <= late <= interval + 0.5, late
    with store.session() as s:
        assert s.get(PeriodicClaim, "sweep").holder == "w2"
    store.dispose()


def test_a_run_that_outlasts_its_interval_is_not_started_again_meanwhile(database_url, tmp_path):
    interval, takes, seconds = 0.4, 1.0, 4.0
    runs, stores, workers = Runs(), [], []
    for wid in ("w1", "w2"):
        store = Store(database_url)
        store.upgrade()
        stores.append(store)
        # the run beats its claim forward (next_due_at at least stale_seconds ahead) while it lasts
        workers.append(make_worker(store, tmp_path, wid, [(interval, "slow", runs.task("slow", wid, takes))],
                                   heartbeat_seconds=0.1, stale_seconds=3.0))
    run_for(workers, seconds)

    done = runs.of("slow")
    assert seconds / takes - 2 <= len(done) <= seconds / takes + 1, done
    for before, after in zip(done, done[1:]):
        assert after[2] >= before[3], ("two runs at once", before, after)
        # given back at its end, due at once (its interval has long passed): the next run follows promptly
        assert after[2] - before[3] < 1.0, (before, after)  # not after stale_seconds (3 s)
    with stores[0].session() as s:
        claim = s.get(PeriodicClaim, "slow")
        assert (aware(claim.next_due_at) - aware(claim.claimed_at)).total_seconds() == interval
    for store in stores:
        store.dispose()


# -- two real `pgaas worker` processes ------------------------------------------------------------------------
def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout} s")


def test_two_worker_processes_sample_once_per_interval(metadata_pg, tmp_path):
    url = metadata_pg.new_database()  # empty: the two workers migrate it as they start together
    env = {**os.environ, "PGAAS_DATABASE_URL": url, "PGAAS_INSTANCE_PATH": str(tmp_path / "instance"),
           "PGAAS_ENCRYPTION_KEY": Fernet.generate_key().decode(), "PGAAS_SECRET_KEY": "s" * 48,
           "PGAAS_SAMPLE_SECONDS": "1", "PGAAS_QUOTA_CHECK_SECONDS": "1", "PGAAS_REBUILD_AFTER_SECONDS": "0",
           "PGAAS_FAST_FAILOVER": "false", "PGAAS_WORKER_POLL_SECONDS": "0.05", "PGAAS_LOG_LEVEL": "INFO"}
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    outs = [log.open("w") for log in logs]
    procs = [subprocess.Popen([str(PGAAS), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT) for out in outs]
    store = Store(url)
    try:
        wait_for(lambda: all("pgaas worker:" in log.read_text() for log in logs), 90, "both workers started")
        assert [p.poll() for p in procs] == [None, None], [log.read_text()[-2000:] for log in logs]
        upgrades = migrations_run("".join(log.read_text() for log in logs))
        assert sorted(upgrades) == sorted(r.revision for r in scripts(url).walk_revisions())  # once, by either
        with store.session() as s:
            # an available instance with no members: each sampling cycle stores one (unhealthy) row for it
            s.add(Instance(name="main", status="available", provider="local", admin_user="dbadmin", secrets_enc="x"))

        claims: set[tuple[str, datetime, str]] = set()

        def watch(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                with store.session() as s:
                    claims.update((c.name, aware(c.claimed_at), c.holder) for c in s.scalars(select(PeriodicClaim)))
                time.sleep(0.1)

        def samples() -> list[datetime]:
            with store.session() as s:
                return [aware(t) for t in s.scalars(select(InstanceSample.at).where(
                    InstanceSample.instance_name == "main").order_by(InstanceSample.at))]

        watch(6.0)
        before = samples()
        assert 4 <= len(before) <= 7, before  # one per second over about 6 s: two samplers would make twice as many
        with store.session() as s:
            sampler = s.get(PeriodicClaim, "metrics sampling").holder
        pid = int(sampler.split(":")[1])
        assert pid in [p.pid for p in procs]
        os.kill(pid, signal.SIGKILL)  # the worker that sampled last dies; the other takes the task over
        killed = utcnow()
        watch(4.0)
        after = samples()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, out in zip(procs, outs):
            p.wait(timeout=30)
            out.close()
        store.dispose()

    at = [t.timestamp() for t in after]
    assert min(gaps(at)) >= 0.6, gaps(at)
    assert max(gaps(at)) <= 2.5, gaps(at)  # about an interval without a sample at the most, the kill included
    assert len([t for t in after if t > killed]) >= 2
    by_task: dict[str, list[float]] = {}
    for name, claimed_at, _holder in claims:
        by_task.setdefault(name, []).append(claimed_at.timestamp())
    # the real maintenance list, each task claimed once per interval in all (roll-up and the prunings once)
    assert set(by_task) == {"quota check", "metrics sampling", "alerts", "metrics roll-up", "dump pruning",
                            "rate limit pruning", "job pruning", "standby rebuild", "certificate renewal",
                            "instance states"}
    for name in ("metrics roll-up", "dump pruning", "rate limit pruning", "job pruning"):
        assert len(by_task[name]) == 1, (name, by_task[name])
    for name in ("quota check", "metrics sampling", "alerts", "standby rebuild",
                 "instance states"):  # every 1 s, for about 10 s
        times = sorted(by_task[name])
        assert min(gaps(times)) >= 0.99 and 6 <= len(times) <= 12, (name, gaps(times))
    survivor = next(p for p in procs if p.pid != pid)
    assert {int(h.split(":")[1]) for n, t, h in claims if n == "metrics sampling" and t > killed} == {survivor.pid}

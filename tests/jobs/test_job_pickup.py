"""Job pickup: an idle worker starts a queued job at once, not at its next poll. The workers here poll every 30 s
and sweep every 30 s, so a start within a second can only come from a wake-up (webapp/store/wakeup.py): on
PostgreSQL the NOTIFY of the transaction that queued the job, heard by the worker process's LISTEN connection,
which survives being killed; on SQLite an event set after the commit (a worker in the queuing process) or the probe
of the highest job id (a job queued by another process). The jobs are queued through the real service
(services/jobs.enqueue) on a store of their own, as another process would, and run by a real Worker whose
handler refuses them at once (no playbook: only the start is measured)."""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import psycopg
import pytest

from webapp.jobs.types import NotRunnable
from webapp.jobs.worker import Worker
from webapp.services import jobs as jobsvc
from webapp.services.handlers.base import JobHandler
from webapp.store import Store
from webapp.store.models import Job, aware, utcnow
from webapp.store.wakeup import LISTENER_NAME

KIND = "pickup_test"
POLL = 30.0  # the fallback poll, and the stale-job sweep: far longer than any start asserted below
BOUND = 1.0  # a generous bound on a woken start (measured: a few ms; bench/pickup.py)


class Refuse(JobHandler):
    """The trivial handler: the job fails at once with this message, no playbook runs."""

    def prepare(self, s, job):
        raise NotRunnable("pickup test: nothing to run")


@pytest.fixture
def run_worker(tmp_path):
    started: list[tuple[threading.Event, threading.Thread]] = []

    def start(store: Store) -> Worker:
        w = Worker(store, {KIND: Refuse()}, jobs_dir=str(tmp_path / "jobs"), project_dir=str(tmp_path),
                   inventory="unused", poll_seconds=POLL, heartbeat_seconds=POLL, stale_seconds=2 * POLL)
        stop = threading.Event()
        t = threading.Thread(target=w.run_forever, args=(stop,), daemon=True)
        t.start()
        started.append((stop, t))
        return w

    yield start
    for stop, t in started:
        stop.set()
        t.join(timeout=10)
        assert not t.is_alive(), "the worker did not stop at once"


def enqueue(store: Store) -> tuple[int, datetime]:
    before = utcnow()
    with store.session() as s:
        job = jobsvc.enqueue(s, KIND, None, "pickup-test")
    return job.id, before


def seconds_to_start(store: Store, job_id: int, since: datetime, timeout: float) -> float:
    """From `since` to the job's start (its claim), once it has ended; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session() as s:
            job = s.get(Job, job_id)
            if job.status == "failed":
                assert job.error == "pickup test: nothing to run"
                return (aware(job.started_at) - since).total_seconds()
            assert job.status in ("queued", "running"), (job.status, job.error)
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not start and end within {timeout} s")


def listener_pid(admin_url: str, database: str) -> int | None:
    with psycopg.connect(admin_url, autocommit=True) as c:
        row = c.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s",
                        (LISTENER_NAME, database)).fetchone()
    return row[0] if row else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def test_postgresql_notify_starts_a_job_at_once_and_the_listener_survives_being_killed(
        metadata_pg, run_worker, caplog):
    url = metadata_pg.new_database()
    database = url.rsplit("/", 1)[1]
    admin = metadata_pg.url().replace("+psycopg", "")
    worker_store, other = Store(url), Store(url)  # an engine each, as the web process and a worker process have
    worker_store.upgrade()
    try:
        run_worker(worker_store)
        first = wait_for(lambda: listener_pid(admin, database), 10, "the worker process listens")
        latencies = []
        for _ in range(3):
            latencies.append(seconds_to_start(other, *enqueue(other), timeout=10))
            time.sleep(0.1)  # the worker is idle again
        assert max(latencies) < BOUND, latencies

        # the listen connection is killed, and cannot come back for 3 s: it tries again, with growing pauses
        caplog.set_level(logging.WARNING, logger="webapp.store.wakeup")
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            assert c.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0]
        try:
            queued_meanwhile = enqueue(other)  # on a connection already open: it commits, nobody hears it
            time.sleep(3.0)
        finally:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        failures = [r for r in caplog.records if "listening for queued jobs failed" in r.getMessage()]
        # the kill, then attempts after 0.5, 1 and 2 s of pause: no busy loop
        assert 2 <= len(failures) <= 4, [r.getMessage() for r in failures]
        assert "OperationalError" in failures[0].getMessage() and "not currently accepting" in failures[1].getMessage()

        second = wait_for(lambda: listener_pid(admin, database), 15, "the listener is back")
        assert second != first
        # what was queued while nobody listened starts when the listener is back (after the next pause: 2 or 4 s
        # past the 3 s), not at the 30 s poll
        assert seconds_to_start(other, *queued_meanwhile, timeout=20) < 15.0
        after = seconds_to_start(other, *enqueue(other), timeout=10)
        assert after < BOUND, after
    finally:
        other.dispose()
        worker_store.dispose()


def test_sqlite_a_job_queued_in_the_workers_own_process_starts_at_once(tmp_path, run_worker):
    store = Store(f"sqlite:///{tmp_path / 'pgaas.sqlite'}")
    store.upgrade()
    store.wakeup.probe_seconds = 3600  # no probe: only the event set after the commit can wake the worker
    try:
        run_worker(store)
        time.sleep(0.2)
        latencies = [seconds_to_start(store, *enqueue(store), timeout=10) for _ in range(3)]
        assert max(latencies) < BOUND, latencies
    finally:
        store.dispose()


def test_sqlite_a_job_queued_by_another_process_starts_within_the_probe(tmp_path, run_worker):
    url = f"sqlite:///{tmp_path / 'pgaas.sqlite'}"
    worker_store, other = Store(url), Store(url)
    worker_store.upgrade()
    try:
        run_worker(worker_store)
        time.sleep(0.2)
        latencies = []
        for _ in range(3):
            latencies.append(seconds_to_start(other, *enqueue(other), timeout=10))
            time.sleep(0.1)
        assert max(latencies) < BOUND, latencies
    finally:
        other.dispose()
        worker_store.dispose()

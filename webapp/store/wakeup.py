"""Waking idle job workers when a job is queued, instead of leaving the job to their next poll.

- The transaction that queues a job calls job_queued(s). On PostgreSQL that sends `NOTIFY pgaas_jobs`, which the
  server delivers to every listening session when, and only if, the transaction commits. On every store it also marks
  the session, and the store wakes the idle workers of its own process right after the commit (JobWakeup.notify):
  a worker in the web process (`pgaas run`) starts the job about a millisecond after the POST's commit.
- A process whose workers wait watches for jobs queued by other processes, in one thread for all its workers, only
  while at least one of them waits (JobWakeup.subscribe):
  - PostgreSQL: one connection (application_name pgaas-jobs-listener) that LISTENs on pgaas_jobs. If it drops, it is
    opened again after a pause that doubles from 0.5 s to 30 s while connecting fails; after every (re)connect the
    workers look once for what was queued meanwhile, and until then their own poll finds it.
  - SQLite, which has no notifications: a connection of its own reads the highest job id every PROBE_SECONDS (one
    step down the primary key's index, about 7 us of CPU) and wakes the workers when it changed. Jobs are only ever
    queued by an insert, and a job row is never deleted, so a new queued job always raises it.
- The workers' own poll (WORKER_POLL_SECONDS, webapp.jobs.worker) stays as the fallback.

Nothing here knows of Flask, HTTP or the job kinds.
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "pgaas_jobs"
LISTENER_NAME = "pgaas-jobs-listener"
# SQLite: how often the highest job id is read (a job queued by another process starts within about this long)
PROBE_SECONDS = 0.05
# PostgreSQL: how long one wait for notifications lasts before the listener checks whether it should stop
LISTEN_TICK = 1.0
FIRST_PAUSE, MAX_PAUSE = 0.5, 30.0
# a listen connection whose peer vanished without a word (a cut network) is found dead in about 25 s
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
_QUEUED = "pgaas_job_queued"  # the session's info key: this transaction queued a job


def job_queued(s: Session) -> None:
    """Called in the transaction that queues a job: its commit wakes idle workers, here and (PostgreSQL) elsewhere."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text(f"NOTIFY {CHANNEL}"))
    s.info[_QUEUED] = True


class JobWakeup:
    """The idle workers of one process (one per Store) and what wakes them."""

    def __init__(self, engine, probe_seconds: float = PROBE_SECONDS):
        self.engine = engine
        self.probe_seconds = probe_seconds
        self._lock = threading.Lock()
        self._waiting: set[threading.Event] = set()
        self._stop: threading.Event | None = None

    def wake_after_commit(self, sessionmaker) -> None:
        """Wake this process's workers after each commit of a session that queued a job."""
        event.listen(sessionmaker, "after_commit", self._committed)
        event.listen(sessionmaker, "after_rollback", lambda s: s.info.pop(_QUEUED, None))

    def _committed(self, s: Session) -> None:
        if s.info.pop(_QUEUED, False):
            self.notify()

    def notify(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for ev in waiting:
            ev.set()

    def subscribe(self) -> threading.Event:
        """An event that is set whenever a job may have been queued; the watcher runs while anyone holds one."""
        ev = threading.Event()
        with self._lock:
            self._waiting.add(ev)
            watch = self._watcher()
            if self._stop is None and watch is not None:
                self._stop = threading.Event()
                threading.Thread(target=watch, args=(self._stop,), name="pgaas-job-wakeup", daemon=True).start()
        return ev

    def unsubscribe(self, ev: threading.Event) -> None:
        with self._lock:
            self._waiting.discard(ev)
            if not self._waiting:
                self._halt()

    def close(self) -> None:
        with self._lock:
            self._waiting.clear()
            self._halt()

    def _halt(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    def _watcher(self):
        dialect, database = self.engine.dialect.name, self.engine.url.database
        if dialect == "postgresql":
            return self._listen
        if dialect == "sqlite" and database and database != ":memory:":
            return self._probe
        return None  # an in-memory database has no other process to hear from

    # -- PostgreSQL --------------------------------------------------------------------------------------------
    def _listen(self, stop: threading.Event) -> None:
        import psycopg

        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        params.pop("context", None)  # SQLAlchemy's type adapters: not needed to hear a notification
        params.update(KEEPALIVES, application_name=LISTENER_NAME, autocommit=True, connect_timeout=10)
        pause = FIRST_PAUSE
        while not stop.is_set():
            try:
                with psycopg.connect(**params) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    pause = FIRST_PAUSE
                    self.notify()  # what was queued while nobody here listened
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=LISTEN_TICK):
                            self.notify()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any failure; the poll covers the gap
                if stop.is_set():
                    return
                log.warning("listening for queued jobs failed (%s: %s); the workers poll meanwhile; connecting "
                            "again in %.1f s", type(exc).__name__, " ".join(str(exc).split()), pause)
                stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE)

    # -- SQLite ------------------------------------------------------------------------------------------------
    def _probe(self, stop: threading.Event) -> None:
        import sqlite3

        from webapp.store.models import Job

        query = f"SELECT max(id) FROM {Job.__tablename__}"
        conn, last, pause = None, None, FIRST_PAUSE
        try:
            while not stop.wait(self.probe_seconds):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.engine.url.database, timeout=5, isolation_level=None,
                                               check_same_thread=False)
                    top = conn.execute(query).fetchone()[0]
                except sqlite3.Error as exc:
                    log.warning("watching for queued jobs failed (%s); the workers poll meanwhile; trying again in "
                                "%.1f s", exc, pause)
                    if conn is not None:
                        conn.close()
                    conn = None
                    stop.wait(pause)
                    pause = min(pause * 2, MAX_PAUSE)
                    continue
                pause = FIRST_PAUSE
                if top != last:
                    last = top
                    self.notify()
        finally:
            if conn is not None:
                conn.close()

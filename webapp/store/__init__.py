"""The metadata store: an engine and a session factory, built from a URL (SQLite or PostgreSQL)."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from webapp.store.wakeup import JobWakeup

HERE = Path(__file__).resolve().parent
# The PostgreSQL advisory lock key that serializes migrations (advisory locks are per database): "pgaasmig".
MIGRATION_LOCK_KEY = int.from_bytes(b"pgaasmig", "big")


def normalize_url(url: str) -> str:
    """postgresql:// means psycopg 3 here."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


class Store:
    """Engine + session factory. One per process (the app keeps it in app.extensions)."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        kwargs: dict = {"future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # idle job workers of this process, and what wakes them when a job is queued (store/wakeup.py)
        self.wakeup = JobWakeup(self.engine)
        self.wakeup.wake_after_commit(self.sessionmaker)

    @contextmanager
    def session(self):
        s: Session = self.sessionmaker()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision, under a lock: of several processes starting together,
        one migrates and the others wait for it, then find the schema current."""
        from alembic import command

        with self.migration_lock():
            command.upgrade(alembic_config(self.url), "head")

    @contextmanager
    def migration_lock(self):
        """PostgreSQL: a session advisory lock on a connection of its own (released with the connection if the
        process dies); SQLite: flock on a file beside the database (none for an in-memory database)."""
        if not self.url.startswith("sqlite"):
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            return
        database = make_url(self.url).database
        if not database or database == ":memory:":
            yield
            return
        fd = os.open(f"{database}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock; the file stays (removing it would race with the next taker)

    def dispose(self) -> None:
        self.wakeup.close()
        self.engine.dispose()


def dialect_insert(s: Session):
    """INSERT with ON CONFLICT support (on_conflict_do_nothing/_update) for the session's dialect: SQLite or
    PostgreSQL."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg

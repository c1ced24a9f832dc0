"""Rate limit counters in the metadata store: a `limits` storage (scheme pgaas://) for Flask-Limiter's fixed-window
strategy. Every process on one store (several `pgaas serve`, `pgaas run`) counts against the same limits, with no
other service to run; a counter is one row, bumped by one INSERT ... ON CONFLICT DO UPDATE (SQLite and PostgreSQL
alike), so two processes never lose a hit."""
from __future__ import annotations

import hashlib
import time

from limits.storage import Storage
from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from webapp.store import dialect_insert
from webapp.store.models import RateLimit


def _key(key: str) -> str:
    return key if len(key) <= 255 else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class StoreStorage(Storage):
    STORAGE_SCHEME = ["pgaas"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, store=None, **options):
        if store is None:
            raise ValueError("the pgaas:// rate limit storage needs the metadata store (storage option 'store')")
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.store = store

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self.store.session() as s:
            insert = dialect_insert(s)
            stmt = insert(RateLimit).values(key=_key(key), count=amount, expires_at=now + expiry)
            expired = RateLimit.expires_at <= now
            stmt = stmt.on_conflict_do_update(index_elements=[RateLimit.key], set_={
                "count": case((expired, amount), else_=RateLimit.count + amount),
                "expires_at": case((expired, now + expiry), else_=RateLimit.expires_at)})
            return s.scalar(stmt.returning(RateLimit.count))

    def get(self, key: str) -> int:
        with self.store.session() as s:
            row = s.get(RateLimit, _key(key))
            return row.count if row is not None and row.expires_at > time.time() else 0

    def get_expiry(self, key: str) -> float:
        with self.store.session() as s:
            row = s.get(RateLimit, _key(key))
            now = time.time()
            return row.expires_at if row is not None and row.expires_at > now else now

    def check(self) -> bool:
        try:
            with self.store.session() as s:
                s.scalar(select(func.count()).select_from(RateLimit).where(RateLimit.key == ""))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self.store.session() as s:
            return s.execute(delete(RateLimit)).rowcount

    def clear(self, key: str) -> None:
        with self.store.session() as s:
            s.execute(delete(RateLimit).where(RateLimit.key == _key(key)))


def prune(s) -> int:
    """Remove counters whose window has ended (a worker's periodic work)."""
    return s.execute(delete(RateLimit).where(RateLimit.expires_at <= time.time())).rowcount

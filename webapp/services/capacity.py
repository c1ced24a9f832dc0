"""Capacity allowances: how much quota (MB, summed over their databases) and how many databases a user may have.

An admin sets a user's allowance; unset, the configured default applies (administrators: no limit). The owner's
allowance binds whoever acts on their databases, admins included: an admin raises the allowance first.

A database's quota is its claim on the storage allowance: the quotas of a user's databases add up to at most the
allowance. A database with no quota would claim without bound, so under a storage allowance every database has a
quota: it cannot be removed, and while one of them has none (made before allowances), nothing else may grow.
Lowering a quota, or an admin lowering an allowance below what is given out, is always allowed: nothing is taken
from a database, the owner just cannot grow until there is room again."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.schemas import limits as L
from webapp.services import Invalid, audit
from webapp.services.audit import Actor
from webapp.store.models import Database, User

MAX_STORAGE_ALLOWANCE_MB = L.STORAGE_ALLOWANCE_MB_MAX
MAX_DATABASES = L.MAX_DATABASES_MAX
ALLOWANCE_FIELDS = ("storage_allowance_mb", "max_databases")


@dataclass(frozen=True)
class Defaults:
    """The configured allowance of users who are not administrators (None: no limit)."""

    storage_allowance_mb: int | None = None
    max_databases: int | None = None

    @classmethod
    def from_config(cls, config) -> Defaults:
        def limit(key):
            value = int(config.get(key) or 0)
            return value if value > 0 else None

        return cls(limit("DEFAULT_STORAGE_ALLOWANCE_MB"), limit("DEFAULT_MAX_DATABASES"))


@dataclass(frozen=True)
class Allowance:
    storage_allowance_mb: int | None  # None: no limit
    max_databases: int | None
    storage_is_default: bool
    databases_is_default: bool


def allowance(user: User, defaults: Defaults) -> Allowance:
    storage, count = user.storage_allowance_mb, user.max_databases
    return Allowance(
        storage if storage is not None else (None if user.is_admin else defaults.storage_allowance_mb),
        count if count is not None else (None if user.is_admin else defaults.max_databases),
        storage is None, count is None)


@dataclass
class Capacity:
    allowance: Allowance
    allocated_mb: int  # the quotas of their databases, added up
    databases: int
    unquoted: list[str]  # their databases without a quota ("instance/name")
    used_bytes: int | None = None  # their databases' sizes, added up (when measured; None: not asked or unknown)

    @property
    def storage_left_mb(self) -> int | None:
        """What new or larger quotas may still take (None: no limit)."""
        if self.allowance.storage_allowance_mb is None:
            return None
        return 0 if self.unquoted else max(0, self.allowance.storage_allowance_mb - self.allocated_mb)

    @property
    def databases_left(self) -> int | None:
        if self.allowance.max_databases is None:
            return None
        return max(0, self.allowance.max_databases - self.databases)


def _owned(s: Session, user_id: int, exclude_id: int | None = None) -> list[Database]:
    q = select(Database).where(Database.owner_id == user_id).order_by(Database.id)
    return [d for d in s.scalars(q) if d.id != exclude_id]


def capacity(s: Session, user: User, defaults: Defaults, *, exclude: Database | None = None,
             live_stats: Callable[[list[Database]], dict[int, dict]] | None = None) -> Capacity:
    """The user's allowance and what their databases (but `exclude`) take of it; with live_stats (a function
    {database id: {"size_bytes": ...}} of databases, e.g. databases.live_stats), what they use."""
    owned = _owned(s, user.id, exclude.id if exclude is not None else None)
    cap = Capacity(allowance(user, defaults), sum(d.quota_mb or 0 for d in owned), len(owned),
                   [f"{d.instance.name}/{d.name}" for d in owned if d.quota_mb is None])
    if live_stats is not None:
        stats = live_stats(owned)
        if all(d.id in stats for d in owned):
            cap.used_bytes = sum(stats[d.id]["size_bytes"] for d in owned)
    return cap


def _lock_owner(s: Session, owner_id: int) -> User | None:
    """The owner's row, locked until the transaction ends (PostgreSQL metadata; SQLite serializes writers anyway),
    so two changes at once cannot both take the last of an allowance."""
    return s.scalar(select(User).where(User.id == owner_id).with_for_update())


def _whose(actor: Actor, owner: User) -> tuple[str, str]:
    return ("you", "your") if actor.user_id == owner.id else (owner.username, f"{owner.username}'s")


def _room(cap: Capacity, whose: str, field: str = "quota_mb") -> int:
    """MB left for one more quota; Invalid when a database without a quota holds it all."""
    if cap.unquoted:
        raise Invalid(f"{', '.join(cap.unquoted)} ha{'s' if len(cap.unquoted) == 1 else 've'} no quota, so nothing "
                      f"is left of {whose} storage allowance of {cap.allowance.storage_allowance_mb} MB: give "
                      f"{'it' if len(cap.unquoted) == 1 else 'each'} a quota first", field=field, left_mb=0)
    return cap.storage_left_mb


def check_new_database(s: Session, actor: Actor, owner_id: int | None, defaults: Defaults,
                       quota_mb: int | None) -> int | None:
    """Before a database is created for its owner: room for one more database, and its quota within what the
    storage allowance has left (none given: an equal share of the allowance, allowance / max_databases, or what
    is left if less). Returns the quota to give it."""
    owner = _lock_owner(s, owner_id) if owner_id is not None else None
    if owner is None:
        return quota_mb
    cap = capacity(s, owner, defaults)
    who, whose = _whose(actor, owner)
    limit = cap.allowance.max_databases
    if limit is not None and cap.databases >= limit:
        raise Invalid(f"{who} may own at most {limit} database{'s' if limit != 1 else ''} and already own "
                      f"{cap.databases}: delete one, or ask an administrator to raise max_databases", field="name",
                      max_databases=limit)
    storage = cap.allowance.storage_allowance_mb
    if storage is None:
        return quota_mb
    left = _room(cap, whose)
    if quota_mb is None:
        share = storage // limit if limit else storage
        quota_mb = min(share, left)
        if quota_mb < 1:
            raise Invalid(f"no storage is left: 0 MB left of {whose} storage allowance of {storage} MB (the quotas "
                          f"of {whose} databases take {cap.allocated_mb} MB)", field="quota_mb", left_mb=0)
    elif quota_mb > left:
        raise Invalid(f"quota_mb {quota_mb} is more than is left of {whose} storage allowance: {left} MB left of "
                      f"{storage} MB (the quotas of {whose} databases take {cap.allocated_mb} MB)",
                      field="quota_mb", left_mb=left)
    return quota_mb


def check_quota(s: Session, actor: Actor, db: Database, defaults: Defaults, quota_mb: int | None) -> None:
    """A new quota for db (None: no quota) within its owner's storage allowance. Lowering one is always allowed."""
    owner = _lock_owner(s, db.owner_id)
    if owner is None:
        return
    cap = capacity(s, owner, defaults, exclude=db)
    storage = cap.allowance.storage_allowance_mb
    if storage is None or (quota_mb is not None and db.quota_mb is not None and quota_mb <= db.quota_mb):
        return
    who, whose = _whose(actor, owner)
    left = _room(cap, whose)
    if quota_mb is None:
        raise Invalid(f"{db.name} needs a quota: {who} ha{'ve' if who == 'you' else 's'} a storage allowance "
                      f"({storage} MB over all {whose} databases); its quota may be at most {left} MB",
                      field="quota_mb", left_mb=left)
    if quota_mb > left:
        raise Invalid(f"quota_mb {quota_mb} is more than is left of {whose} storage allowance: {left} MB left of "
                      f"{storage} MB for {db.name} (the quotas of {whose} other databases take "
                      f"{cap.allocated_mb} MB)", field="quota_mb", left_mb=left)


def _limit(value, field: str, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise Invalid(f"{field} must be a whole number from 0 to {hi}, or null for the configured default",
                      field=field)
    return value


def set_allowance(s: Session, actor: Actor, user: User, **changes) -> list[str]:
    """Set storage_allowance_mb and/or max_databases (None: back to the configured default). Returns what changed;
    audited."""
    if unknown := sorted(set(changes) - set(ALLOWANCE_FIELDS)):
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    if not changes:
        raise Invalid("nothing to change: give storage_allowance_mb and/or max_databases")
    highest = {"storage_allowance_mb": MAX_STORAGE_ALLOWANCE_MB, "max_databases": MAX_DATABASES}
    checked = {field: _limit(value, field, highest[field]) for field, value in changes.items()}
    for field, value in checked.items():
        setattr(user, field, value)
    changed = [f"{field}={'default' if value is None else value}" for field, value in checked.items()]
    audit.record(s, actor, "user.allowance", "user", user.username, detail=", ".join(changed))
    return changed

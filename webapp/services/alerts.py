"""Alerts from the newest samples: a database at 80% of its quota, replication lag over a threshold, an instance
degraded, a member's volume over 85% full. The worker's Notifier keeps which alerts fire in the store
(alert_states) and POSTs a JSON message to a webhook when one starts or ends (a failed post is logged, never
raised)."""
from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from webapp.services import backup_health, metrics
from webapp.services.audit import Actor
from webapp.store import dialect_insert
from webapp.store.models import AlertState, Database, Instance, aware, utcnow

log = logging.getLogger(__name__)
MIB, GIB = 1024 ** 2, 1024 ** 3
STALE = timedelta(minutes=10)  # an instance sample older than this says nothing about now


@dataclass
class Thresholds:
    quota_ratio: float = 0.80
    lag_bytes: int = 16 * MIB
    lag_seconds: float = 30.0
    volume_ratio: float = 0.85
    archive_timeout: float = 60.0  # the members' (BACKUP_ARCHIVE_TIMEOUT): archiving alerts allow it + 60 s

    @classmethod
    def from_config(cls, c) -> "Thresholds":
        return cls(lag_bytes=int(c["ALERT_LAG_BYTES"]), lag_seconds=float(c["ALERT_LAG_SECONDS"]),
                   archive_timeout=float(c.get("BACKUP_ARCHIVE_TIMEOUT", 60)))


def _alert(kind: str, severity: str, instance: str, message: str, at, subject: str | None = None,
           **extra) -> dict:
    return {"id": "/".join(x for x in (kind, instance, subject) if x), "kind": kind, "severity": severity,
            "instance": instance, "message": message, "at": aware(at).isoformat(), **extra}


def evaluate(s: Session, th: Thresholds, provider=None, databases_only: bool = False) -> list[dict]:
    """Every alert firing now. Database alerts carry `_owner` (the owner's user id) for filtering."""
    out = []
    dbs = {(inst_name, d.name): d for d, inst_name in s.execute(
        select(Database, Instance.name).join(Instance, Database.instance_id == Instance.id))}
    for pair in metrics.latest_database_samples(s):
        r = pair[0]
        db = dbs.get((r.instance_name, r.database_name))
        if db is None or not db.quota_mb:
            continue
        ratio = r.size_bytes / (db.quota_mb * MIB)
        if ratio >= th.quota_ratio:
            out.append(_alert("quota", "critical" if ratio >= 1 else "warning", r.instance_name,
                              f"database {r.database_name} uses {100 * ratio:.1f}% of its {db.quota_mb} MiB quota",
                              r.at, r.database_name, database=r.database_name, percent=round(100 * ratio, 2),
                              size_bytes=r.size_bytes, quota_mb=db.quota_mb, _owner=db.owner_id))
    if databases_only:
        return out
    insts = {i.name: i for i in s.scalars(select(Instance).where(Instance.status == "available"))}
    latest = {n: r for n, r in metrics.latest_instance_samples(s).items()
              if n in insts and utcnow() - aware(r.at) <= STALE}
    fs_members = [m for n, r in latest.items() if not insts[n].storage_gb
                  for m, st in ((r.detail or {}).get("members") or {}).items() if st.get("volume_bytes") is not None]
    filesystems = volume_filesystems(provider, fs_members) if fs_members else {}
    for name, r in sorted(latest.items()):
        detail = r.detail or {}
        if not r.healthy:
            states = ", ".join(f"{m} {st.get('role', '?')} {st.get('state', '?')}"
                               for m, st in sorted((detail.get("members") or {}).items()))
            out.append(_alert("degraded", "critical", name, f"instance {name} is degraded ({states or 'no members'})"
                              + (f": {'; '.join(detail['errors'])}" if detail.get("errors") else ""), r.at))
        for member, st in sorted((detail.get("members") or {}).items()):
            lag_b, lag_s = st.get("lag_bytes"), st.get("lag_seconds")
            if st.get("role") != "primary" and ((lag_b or 0) > th.lag_bytes or (lag_s or 0) > th.lag_seconds):
                out.append(_alert("replication_lag", "warning", name,
                                  f"standby {member} lags {lag_b or 0} bytes, {lag_s or 0:.1f} s behind the primary",
                                  r.at, member, member=member, lag_bytes=lag_b, lag_seconds=lag_s,
                                  threshold_bytes=th.lag_bytes, threshold_seconds=th.lag_seconds))
            used = st.get("volume_bytes")
            if used is None:
                continue
            if insts[name].storage_gb:
                basis, capacity, ratio = "storage_gb", insts[name].storage_gb * GIB, used / (insts[name].storage_gb
                                                                                           * GIB)
            elif member in filesystems:
                # no size of its own: the volume is full when the filesystem holding it is
                fs_used, fs_size = filesystems[member]
                basis, capacity, ratio = "filesystem", fs_size, fs_used / fs_size if fs_size else 0.0
            else:
                continue
            if ratio >= th.volume_ratio:
                out.append(_alert("volume", "critical" if ratio >= 0.95 else "warning", name,
                                  f"volume of {member} is {100 * ratio:.1f}% full ({basis})", r.at, member,
                                  member=member, percent=round(100 * ratio, 2), volume_bytes=used,
                                  capacity_bytes=capacity, basis=basis))
    out += backup_health.alerts(s, th.archive_timeout)  # last good backup too old, archiving failing or behind
    return out


def volume_filesystems(provider, members: list[str]) -> dict[str, tuple[int, int]]:
    """(used, size) in bytes, as df counts them, of the filesystem holding each member's data volume, when the
    provider can tell (the local provider can: the volumes are on this machine)."""
    if provider is not None:
        return provider.volume_filesystems(members)
    return {}


def public(alert: dict) -> dict:
    return {k: v for k, v in alert.items() if not k.startswith("_")}


def visible(s: Session, actor: Actor, th: Thresholds, provider=None) -> list[dict]:
    """Admins see every alert; a user sees the alerts of their own databases."""
    if actor.is_admin:
        return [public(a) for a in evaluate(s, th, provider)]
    return [public(a) for a in evaluate(s, th, databases_only=True) if a.get("_owner") == actor.user_id]


def post(url: str, message: dict, timeout: float = 5.0) -> bool:
    req = urllib.request.Request(url, data=json.dumps(message).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "pgaas-alerts"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
        return True
    except Exception as exc:  # the receiver's trouble is never the worker's
        log.warning("alert webhook %s failed: %s", url, exc)
        return False


def record(s: Session, alerts: list[dict], now=None) -> tuple[list[dict], list[dict]]:
    """Bring the stored state to the alerts firing now; return (started, ended): the changes THIS caller made.
    A start is a conditional insert (or the update of a resolved row), an end a conditional update of a firing
    row, each committed at once: when two workers (or a restarted one) see the same change, one wins it."""
    now = now or utcnow()
    current = {a["id"]: a for a in alerts}
    stored = {r.id: r for r in s.scalars(select(AlertState).where(AlertState.resolved_at.is_(None)))}
    insert = dialect_insert(s)
    started, ended = [], []
    for aid, a in sorted(current.items()):
        body = public(a)
        if aid in stored:
            s.execute(update(AlertState).where(AlertState.id == aid, AlertState.resolved_at.is_(None))
                      .values(last_seen_at=now, alert=body, severity=a["severity"])
                      .execution_options(synchronize_session=False))
            s.commit()
            continue
        values = dict(kind=a["kind"], instance_name=a["instance"], owner_id=a.get("_owner"), severity=a["severity"],
                      alert=body, started_at=now, last_seen_at=now, resolved_at=None)
        won = len(s.execute(insert(AlertState).values(id=aid, **values).on_conflict_do_nothing(
            index_elements=["id"]).returning(AlertState.id)).all())  # (psycopg gives no rowcount here)
        if won != 1:  # the row exists: it fires again if it was resolved (and nobody else restarted it)
            won = s.execute(update(AlertState).where(AlertState.id == aid, AlertState.resolved_at.is_not(None))
                            .values(**values).execution_options(synchronize_session=False)).rowcount
        s.commit()
        if won == 1:
            started.append(body)
    for aid in sorted(stored.keys() - current.keys()):
        won = s.execute(update(AlertState).where(AlertState.id == aid, AlertState.resolved_at.is_(None))
                        .values(resolved_at=now).execution_options(synchronize_session=False)).rowcount
        s.commit()
        if won == 1:
            ended.append(stored[aid].alert)
    return started, ended


def prune(s: Session, keep_seconds: float, now=None) -> int:
    """Forget alerts resolved longer ago than keep_seconds."""
    horizon = (now or utcnow()) - timedelta(seconds=keep_seconds)
    return s.execute(delete(AlertState).where(AlertState.resolved_at.is_not(None), AlertState.resolved_at < horizon)
                     .execution_options(synchronize_session=False)).rowcount or 0


def firing(s: Session, actor: Actor) -> list[AlertState]:
    """The stored firing alerts (as the workers last saw them): all for admins, own databases' for a user."""
    q = select(AlertState).where(AlertState.resolved_at.is_(None)).order_by(AlertState.started_at.desc())
    if not actor.is_admin:
        q = q.where(AlertState.owner_id == actor.user_id)
    return list(s.scalars(q))


def firing_count(s: Session, actor: Actor) -> int:
    q = select(func.count()).select_from(AlertState).where(AlertState.resolved_at.is_(None))
    if not actor.is_admin:
        q = q.where(AlertState.owner_id == actor.user_id)
    return s.scalar(q) or 0


class Notifier:
    """Called by a worker with a session at every sampling interval: evaluates the alerts, records the firing
    state in the store (alert_states) and POSTs only the changes it won to the webhook. Nothing is kept in
    memory, so a restarted worker neither announces again what already fires nor forgets to announce its end,
    and two workers do not announce one change twice."""

    def __init__(self, config, provider=None):
        self.config = config  # read at each call, so a changed webhook URL applies at once
        self.provider = provider

    def __call__(self, s: Session) -> dict:
        started, ended = record(s, evaluate(s, Thresholds.from_config(self.config), self.provider))
        prune(s, float(self.config.get("METRICS_ROLLUP_SECONDS", 30 * 24 * 3600)))
        s.commit()
        url = self.config.get("ALERT_WEBHOOK_URL")
        if url:
            at = utcnow().isoformat()
            for status, alerts in (("firing", started), ("resolved", ended)):
                for a in alerts:
                    post(url, {"status": status, "at": at, "alert": a})
        return {"started": [a["id"] for a in started], "ended": [a["id"] for a in ended]}

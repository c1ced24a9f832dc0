"""Alerts from the newest samples: a database at 80% of its quota, replication lag over a threshold, an instance
degraded, a member's volume over 85% full. The worker's Notifier remembers which alerts fire and POSTs a JSON
message to a webhook when one starts or ends (a failed post is logged, never raised)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.services import metrics
from webapp.services.audit import Actor
from webapp.store.models import Database, Instance, utcnow

log = logging.getLogger(__name__)
MIB, GIB = 1024 ** 2, 1024 ** 3
STALE = timedelta(minutes=10)  # an instance sample older than this says nothing about now


@dataclass
class Thresholds:
    quota_ratio: float = 0.80
    lag_bytes: int = 16 * MIB
    lag_seconds: float = 30.0
    volume_ratio: float = 0.85

    @classmethod
    def from_config(cls, c) -> "Thresholds":
        return cls(lag_bytes=int(c["ALERT_LAG_BYTES"]), lag_seconds=float(c["ALERT_LAG_SECONDS"]))


def _alert(kind: str, severity: str, instance: str, message: str, at, subject: str | None = None,
           **extra) -> dict:
    return {"id": "/".join(x for x in (kind, instance, subject) if x), "kind": kind, "severity": severity,
            "instance": instance, "message": message, "at": metrics._aware(at).isoformat(), **extra}


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
              if n in insts and utcnow() - metrics._aware(r.at) <= STALE}
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
    return out


def volume_filesystems(provider, members: list[str]) -> dict[str, tuple[int, int]]:
    """(used, size) in bytes, as df counts them, of the filesystem holding each member's data volume. A provider
    may answer itself (`volume_filesystems`); for local podman the volumes are on this machine."""
    if provider is not None and hasattr(provider, "volume_filesystems"):
        return provider.volume_filesystems(members)
    conf = getattr(provider, "containers_conf", None)
    if getattr(provider, "name", None) != "local" or not conf:
        return {}
    try:
        r = subprocess.run(["podman", "volume", "inspect", "--format", "{{.Name}}|{{.Mountpoint}}",
                            *[f"{m}-data" for m in members]], capture_output=True, text=True, timeout=10,
                           env={**os.environ, "CONTAINERS_CONF": conf})
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out = {}
    for line in r.stdout.splitlines():
        name, _, mount = line.partition("|")
        try:
            st = os.statvfs(mount)
        except OSError:
            continue
        used, avail = (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize
        out[name.removesuffix("-data")] = (used, used + avail)
    return out


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


class Notifier:
    """A worker's memory of the alerts that fire (kept in memory: a restarted worker announces what fires then as
    started). Called with a session at every sampling interval; posts only changes."""

    def __init__(self, config, provider=None):
        self.config = config  # read at each call, so a changed webhook URL applies at once
        self.provider = provider
        self.firing: dict[str, dict] = {}

    def __call__(self, s: Session) -> dict:
        now = {a["id"]: public(a) for a in evaluate(s, Thresholds.from_config(self.config), self.provider)}
        started = [now[k] for k in sorted(now.keys() - self.firing.keys())]
        ended = [self.firing[k] for k in sorted(self.firing.keys() - now.keys())]
        self.firing = now
        url = self.config.get("ALERT_WEBHOOK_URL")
        if url:
            at = utcnow().isoformat()
            for status, alerts in (("firing", started), ("resolved", ended)):
                for a in alerts:
                    post(url, {"status": status, "at": at, "alert": a})
        return {"started": [a["id"] for a in started], "ended": [a["id"] for a in ended]}

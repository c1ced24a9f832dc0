"""Charts of a database or an instance over a period, drawn as SVG by reports.svg_chart (server side, no script),
and the admin dashboard's current view of every instance and host. No HTTP here."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.services import NotFound, metrics
from webapp.services.reports import MIB, Chart, svg_chart
from webapp.store.models import Instance, InstanceSample, aware, utcnow

PERIODS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MAX_POINTS = 480  # a chart is 576 px wide: more points than this only cost bytes

DATABASE_CHARTS = {"size": "Size", "connections": "Connections", "tps": "Transactions per second",
                   "cache": "Cache hit ratio", "quota": "Quota use"}
INSTANCE_CHARTS = {"connections": "Connections", "tps": "Transactions per second", "lag": "Replication lag",
                   "cpu": "CPU", "memory": "Memory", "disk": "Disk"}


def period(name: str | None) -> tuple[str, datetime, datetime]:
    """A known period name (default 1h) and its bounds ending now."""
    name = name if name in PERIODS else "1h"
    end = utcnow()
    return name, end - timedelta(seconds=PERIODS[name]), end


def _ts(p: dict) -> float:
    return datetime.fromisoformat(p["at"]).timestamp()


def _thin(values: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    """At most MAX_POINTS points: runs of consecutive points become their mean (a gap stays a gap)."""
    if len(values) <= MAX_POINTS:
        return values
    k = -(-len(values) // MAX_POINTS)
    out = []
    for i in range(0, len(values), k):
        run = values[i:i + k]
        known = [v for _, v in run if v is not None]
        out.append((run[len(run) // 2][0], sum(known) / len(known) if known else None))
    return out


def _chart(title, unit, pts, value, start, end, label="", more=()) -> Chart:
    return Chart(title, unit, _thin([(_ts(p), value(p)) for p in pts]), label=label,
                 more=[(lb, _thin(v)) for lb, v in more], span=(start.timestamp(), end.timestamp()))


def database_chart(s: Session, instance: str, database: str, chart: str, start: datetime, end: datetime) -> str:
    if chart not in DATABASE_CHARTS:
        raise NotFound(f"no chart {chart!r}: one of {', '.join(DATABASE_CHARTS)}")
    pts = metrics.database_series(s, instance, database, start, end)
    title = DATABASE_CHARTS[chart]
    pick = {
        "size": ("MiB", lambda p: p["size_bytes"] / MIB),
        "connections": ("sessions", lambda p: p["connections"]),
        "tps": ("tps", lambda p: p.get("tps")),
        "cache": ("%", lambda p: None if p.get("cache_hit_ratio") is None else 100 * p["cache_hit_ratio"]),
        "quota": ("%", lambda p: None if p["quota_used"] is None else 100 * p["quota_used"]),
    }[chart]
    return svg_chart(_chart(title, pick[0], pts, pick[1], start, end))


def instance_chart(s: Session, instance: str, chart: str, start: datetime, end: datetime) -> str:
    if chart not in INSTANCE_CHARTS:
        raise NotFound(f"no chart {chart!r}: one of {', '.join(INSTANCE_CHARTS)}")
    pts = metrics.instance_series(s, instance, start, end)
    title = INSTANCE_CHARTS[chart]
    if chart == "connections":
        return svg_chart(_chart(title, "sessions", pts, lambda p: p["connections"], start, end))
    if chart == "tps":
        return svg_chart(_chart(title, "tps, all databases", pts, lambda p: p.get("tps"), start, end))
    if chart == "lag":
        return svg_chart(_chart(title, "KiB, the furthest standby", pts,
                                lambda p: None if p["max_lag_bytes"] is None else p["max_lag_bytes"] / 1024,
                                start, end))
    key, unit, scale = {"cpu": ("cpu_percent", "%", 1), "memory": ("memory_bytes", "MiB", MIB),
                        "disk": ("volume_bytes", "MiB, data volume", MIB)}[chart]
    names = sorted({m for p in pts for m, st in (p.get("members") or {}).items() if st.get(key) is not None})
    series = [(m, [(_ts(p), None if ((p.get("members") or {}).get(m) or {}).get(key) is None
                    else p["members"][m][key] / scale) for p in pts]) for m in names]
    first = series[0] if series else ("", [])
    return svg_chart(Chart(title, unit, _thin(first[1]), label=first[0],
                           more=[(lb, _thin(v)) for lb, v in series[1:]], span=(start.timestamp(), end.timestamp())))


# -- the admin dashboard ----------------------------------------------------------------------------------------
def _two_newest(s: Session) -> dict[str, list[InstanceSample]]:
    out: dict[str, list[InstanceSample]] = {}
    cutoff = utcnow() - timedelta(minutes=10)
    for r in s.scalars(select(InstanceSample).where(InstanceSample.resolution == 0, InstanceSample.at >= cutoff)
                       .order_by(InstanceSample.at.desc())):
        lst = out.setdefault(r.instance_name, [])
        if len(lst) < 2:
            lst.append(r)
    return out


def dashboard(s: Session, provider=None) -> dict:
    """Every instance (health, members with role, state, lag, CPU, memory, disk; connections, TPS) from its
    newest sample, and every host with what runs on it. Instances with no recent sample say so."""
    now = utcnow()
    newest = _two_newest(s)
    instances, hosts = [], {}
    for h in (provider.hosts() if provider is not None else []):
        hosts[h] = {"host": h, "members": [], "cpu_percent": 0.0, "memory_bytes": 0, "volume_bytes": 0}
    volume_fs = {}
    for inst in s.scalars(select(Instance).order_by(Instance.name)):
        pair = newest.get(inst.name, [])
        r = pair[0] if pair else None
        detail = (r.detail or {}) if r else {}
        sampled = detail.get("members") or {}
        tps = None
        if len(pair) == 2:
            x1, x0 = detail.get("xact_total"), (pair[1].detail or {}).get("xact_total")
            dt = (aware(pair[0].at) - aware(pair[1].at)).total_seconds()
            if x1 is not None and x0 is not None and x1 >= x0 and dt > 0:
                tps = (x1 - x0) / dt
        members = []
        for m in inst.members:
            st = sampled.get(m.name, {})
            row = {"name": m.name, "host": m.host, "role": st.get("role") or "unknown",
                   "state": st.get("state") or "unknown", "lag_bytes": st.get("lag_bytes"),
                   "lag_seconds": st.get("lag_seconds"), "sync_state": st.get("sync_state"),
                   "cpu_percent": st.get("cpu_percent"), "memory_bytes": st.get("memory_bytes"),
                   "volume_bytes": st.get("volume_bytes")}
            members.append(row)
            h = hosts.setdefault(m.host, {"host": m.host, "members": [], "cpu_percent": 0.0, "memory_bytes": 0,
                                          "volume_bytes": 0})
            h["members"].append(m.name)
            for key in ("cpu_percent", "memory_bytes", "volume_bytes"):
                if row[key] is not None:
                    h[key] += row[key]
            if row["volume_bytes"] is not None:
                volume_fs.setdefault(m.host, m.name)
        if inst.status != "available":
            health = inst.status
        elif r is None or (now - aware(r.at)).total_seconds() > 120:
            health = "no recent sample"
        else:
            health = "healthy" if r.healthy else "degraded"
        instances.append({
            "name": inst.name, "status": inst.status, "health": health,
            "sampled_at": aware(r.at).isoformat() if r else None,
            "connections": r.connections if r else None, "max_connections": r.max_connections if r else None,
            "tps": tps, "max_lag_bytes": r.max_lag_bytes if r else None,
            "max_lag_seconds": r.max_lag_seconds if r else None, "timeline": r.timeline if r else None,
            "errors": detail.get("errors", []), "members": members})
    if provider is not None and volume_fs:
        fs = provider.volume_filesystems(list(volume_fs.values()))
        for host, member in volume_fs.items():
            if member in fs:
                hosts[host]["fs_used_bytes"], hosts[host]["fs_size_bytes"] = fs[member]
    for h in hosts.values():
        h["cpu_percent"] = round(h["cpu_percent"], 2)
    return {"generated_at": now.isoformat(), "instances": instances,
            "hosts": sorted(hosts.values(), key=lambda h: h["host"])}

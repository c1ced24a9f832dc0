"""The health of an instance's backups: the archiver's state read from the primary (pg_stat_archiver, by the
worker's periodic `backups.archiver`), and the alerts it raises (services/alerts.py): the last good backup older
than the policy allows, archiving failing (the last attempt failed), archiving behind (WAL waits while the last
archived segment is older than archive_timeout + 60 s). No HTTP here."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.services import Conflict
from webapp.services.crypto import SecretBox
from webapp.services.pgconn import connect_primary
from webapp.store.models import BackupStanza, Instance, aware, utcnow

log = logging.getLogger(__name__)
ARCHIVER_SQL = ("SELECT last_archived_wal, last_archived_time, failed_count, last_failed_time, "
                "pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver")
GRACE = timedelta(hours=1)  # a backup may take this long beyond its interval before the age alert fires


def live(s: Session):
    """(stanza, instance) of every available instance with backups."""
    return s.execute(select(BackupStanza, Instance).join(Instance, BackupStanza.instance_id == Instance.id)
                     .where(BackupStanza.deleted_at.is_(None), Instance.status == "available")).all()


def refresh_archivers(s: Session, box: SecretBox) -> int:
    """Read pg_stat_archiver on each primary into its stanza's row; an instance that does not answer keeps its
    last state (its own alert is the degraded one). Returns how many answered."""
    done = 0
    for st, inst in live(s):
        try:
            with connect_primary(inst, box) as conn:
                wal, at, failed, failed_at, current = conn.execute(ARCHIVER_SQL).fetchone()
        except (Conflict, psycopg.Error) as exc:
            log.info("backups: the archiver of %s was not read: %s", inst.name, exc)
            continue
        st.last_archived_wal, st.last_archived_time = wal or st.last_archived_wal, at or st.last_archived_time
        st.archive_failed_count, st.last_failed_time = failed, failed_at
        st.current_wal, st.archiver_checked_at = current, utcnow()
        done += 1
    return done


def segment(name: str | None) -> tuple[int, int] | None:
    """(timeline, segment number) of a WAL file name (16 MB segments), None for anything else (a .history or
    .backup file counts as the segment it names)."""
    if not name or len(name) < 24:
        return None
    try:
        tl, log_id, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:24], 16)
    except ValueError:
        return None
    return tl, log_id * 0x100 + seg


def alerts(s: Session, archive_timeout: float, now: datetime | None = None) -> list[dict]:
    """The backup alerts firing now, as services/alerts.py shapes them."""
    from webapp.services.backups import due

    now = now or utcnow()
    out = []
    for st, inst in live(s):
        good = [b for b in st.backups if not b.error]
        # a full is due, and overdue by more than GRACE: the schedule's backups are failing (or not taken)
        fulls = [aware(b.stopped_at) for b in good if b.type == "full"]
        allowed = timedelta(days=st.full_every_days) + GRACE
        newest = max(fulls) if fulls else aware(st.created_at)
        if due(st, good, now) == "full" and now - newest > allowed:
            what = f"the last good full backup ended {newest:%Y-%m-%d %H:%M} UTC" if fulls else \
                f"no good full backup since backups began ({newest:%Y-%m-%d %H:%M} UTC)"
            out.append(alert("backup_age", "critical", inst.name, f"{what}; the policy asks for one every "
                             f"{st.full_every_days} day(s)", now))
        elif good and st.diff_every_days and \
                now - max(aware(b.stopped_at) for b in good) > timedelta(days=st.diff_every_days) + GRACE:
            last = max(aware(b.stopped_at) for b in good)
            out.append(alert("backup_age", "warning", inst.name, f"the last good backup ended {last:%Y-%m-%d %H:%M} "
                             f"UTC; the policy asks for one every {st.diff_every_days} day(s)", now))
        last_ok, last_failed = aware(st.last_archived_time), aware(st.last_failed_time)
        if last_failed and (last_ok is None or last_failed > last_ok):
            out.append(alert("archiving", "critical", inst.name,
                             f"WAL archiving fails ({st.archive_failed_count} failures, the last at "
                             f"{last_failed:%H:%M:%S} UTC); point-in-time recovery stops at {last_ok or 'nothing'}",
                             now, subject="failing"))
            continue
        cur, done = segment(st.current_wal), segment(st.last_archived_wal)
        waiting = cur is not None and done is not None and cur[0] == done[0] and cur[1] - done[1] > 1
        if waiting and last_ok and now - last_ok > timedelta(seconds=archive_timeout + 60):
            out.append(alert("archiving", "warning", inst.name,
                             f"WAL archiving is behind: {cur[1] - done[1] - 1} segment(s) wait, the last archived at "
                             f"{last_ok:%H:%M:%S} UTC (archive_timeout {int(archive_timeout)} s)", now,
                             subject="behind"))
    return out


def alert(kind: str, severity: str, instance: str, message: str, at: datetime, subject: str | None = None) -> dict:
    return {"id": "/".join(x for x in (kind, instance, subject) if x), "kind": kind, "severity": severity,
            "instance": instance, "message": message, "at": aware(at).isoformat()}

"""Backups with pgBackRest (issue 15): one repository per control plane, a stanza per instance, each instance's
policy, the cached list of its backups and what it can be restored to (the recoverable window).

The repository is a pgBackRest TLS server container on the control plane's host (playbooks/backup_repo.yml); the
members run pgBackRest's TLS server too (playbooks/instance_deploy.yml with pgaas_backup), and reach the repository
with a certificate of the control plane's backup CA (CN = member name), which the repository maps to the stanzas it
may use. The repository's configuration is written from the store by a `backup_repo` job (handlers/backups.py):
queued when an instance with backups is created or deleted and, as a safety net, by the schedule whenever what the
repository last applied differs from the store; a backup job runs it first when its instance is not applied yet.

Stanza names are <instance name>-<instance id>: a deleted instance's stanza stays beside a new one of the same name
("deleted, restorable"), with its rows here. No HTTP and no Flask here.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.services import Conflict, Invalid, NotFound, audit, certificates, check_int
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services.crypto import SecretBox
from webapp.store.models import Backup, BackupRepo, BackupStanza, Instance, Job, JobEvent, aware, utcnow

REPO_CN = "pgaas-backup-repo"
REPO_JOB_NAME = "_backup_repo"  # the backup_repo job's instance_name: not a valid instance name, so one at a time
BACKUP_TYPES = ("full", "diff", "incr")
RETENTION_TYPES = ("count", "time")
CERT_DAYS = certificates.CA_DAYS  # backup certificates: no renewal yet, so they last as long as the CA
LIMITS = {"full_every_days": (1, 365), "diff_every_days": (0, 365)}
RETENTION_LIMITS = {"count": (1, 100), "time": (1, 3650)}


@dataclass(frozen=True)
class BackupSettings:
    enabled: bool = False
    repo_dir: str = ""
    repo_port: int = 8432
    repo_host: str = "host.containers.internal"
    image: str = ""
    archive_timeout: int = 60
    repo_name: str = ""  # the container's; empty: the play's default (pgaas-backup-repo)

    @classmethod
    def from_config(cls, c) -> "BackupSettings":
        host = c.get("BACKUP_REPO_HOST") or c.get("SSH_CONTROL_PLANE_ADDRESS") or "host.containers.internal"
        return cls(bool(c.get("BACKUPS_ENABLED")), str(c.get("BACKUP_REPO_DIR") or ""),
                   int(c.get("BACKUP_REPO_PORT") or 8432), host, str(c.get("IMAGE") or ""),
                   int(c.get("BACKUP_ARCHIVE_TIMEOUT") or 60), str(c.get("BACKUP_REPO_NAME") or ""))


def iso(dt: datetime | None) -> str | None:
    return aware(dt).isoformat() if dt is not None else None


# -- the repository ------------------------------------------------------------------------------------------
def repo_secrets(s: Session, box: SecretBox, settings: BackupSettings) -> dict:
    """The control plane's backup secrets, made on first use: the repository's cipher pass (48 random bytes,
    base64), the backup CA and the repository host's certificate (CN pgaas-backup-repo, named by the address the
    members use). Sealed in backup_repo; the certificate is issued again when that address changed."""
    row = s.get(BackupRepo, 1)
    sec = box.open(row.secrets_enc) if row is not None else {}
    changed = False
    if not sec:
        ca_cert, ca_key = certificates.new_ca("backups")
        sec = {"cipher_pass": base64.b64encode(os.urandom(48)).decode(), "ca_cert": ca_cert, "ca_key": ca_key}
        changed = True
    names = [REPO_CN, settings.repo_host, "localhost", "127.0.0.1"]
    if sec.get("names") != names:
        sec["cert"], sec["key"] = certificates.issue(sec["ca_cert"], sec["ca_key"], REPO_CN, names, CERT_DAYS,
                                                     ip_as_dns=True)
        sec["names"], changed = names, True
    if changed:
        if row is None:
            row = BackupRepo(id=1, secrets_enc=box.seal(sec))
            s.add(row)
        row.secrets_enc = box.seal(sec)
        s.flush()
    return sec


def export_key(s: Session, box: SecretBox, actor: audit.Actor, settings: BackupSettings) -> dict:
    """The repository's cipher pass, for the administrator to keep offline: with a copy of the repository
    directory it opens every backup on another machine (pgBackRest's repo1-cipher-type/-pass). Audited; never
    made here (no repository yet: nothing to export)."""
    row = s.get(BackupRepo, 1)
    if row is None:
        raise Conflict("there is no backup repository yet: it is made with the first instance that has backups")
    sec = box.open(row.secrets_enc)
    audit.record(s, actor, "backup.export_key", "backup_repo", REPO_CN)
    return {"repo_path": settings.repo_dir, "repo_cipher_type": "aes-256-cbc", "repo_cipher_pass": sec["cipher_pass"],
            "note": "keep this offline and apart from the repository: anyone holding both reads every backup"}


def clients(s: Session) -> list[dict]:
    """Who the repository lets in: each member of each instance with a live stanza (its certificate's CN) and the
    stanzas it may use."""
    out = []
    for st, inst in s.execute(select(BackupStanza, Instance).join(Instance, BackupStanza.instance_id == Instance.id)
                              .where(BackupStanza.deleted_at.is_(None)).order_by(BackupStanza.stanza)):
        out += [{"cn": m.name, "stanzas": [st.stanza]} for m in inst.members]
    return sorted(out, key=lambda c: c["cn"])


def repo_current(s: Session) -> bool:
    row = s.get(BackupRepo, 1)
    return row is not None and row.applied_clients == clients(s)


def repo_run(s: Session, box: SecretBox, settings: BackupSettings, job: Job):
    """The run that configures the repository (and starts its container), from the store as it is now; the
    clients it applies are kept in the job's params for repo_applied."""
    from webapp.jobs.types import RunSpec

    sec = repo_secrets(s, box, settings)
    wanted = clients(s)
    job.params = {**(job.params or {}), "repo_clients": wanted}
    return RunSpec("playbooks/backup_repo.yml",
                   {"pgaas_backup_repo": {"dir": settings.repo_dir, "port": settings.repo_port,
                                          "image": settings.image,
                                          **({"name": settings.repo_name} if settings.repo_name else {})},
                    "pgaas_backup_clients": wanted},
                   secrets={"pgaas_backup_repo_secrets": {k: sec[k] for k in ("cipher_pass", "ca_cert", "cert",
                                                                              "key")}},
                   label="Configure the backup repository (container, certificates, clients)")


def repo_applied(s: Session, job: Job) -> None:
    row = s.get(BackupRepo, 1)
    if row is not None:
        row.applied_clients, row.applied_at = (job.params or {}).get("repo_clients"), utcnow()


def request_repo(s: Session, created_by: str) -> Job | None:
    """Queue a backup_repo job unless one is queued or running (a queued one reads the store when it runs). In a
    savepoint: losing the race for the one active job to another worker leaves the caller's changes alone."""
    if jobsvc.active_job(s, REPO_JOB_NAME):
        return None
    job = Job(kind="backup_repo", instance_name=REPO_JOB_NAME, created_by=created_by, params={})
    try:
        with s.begin_nested():
            s.add(job)
            s.flush()
    except IntegrityError:  # uq_jobs_one_active_per_instance: another one was queued a moment ago
        return None
    s.add(JobEvent(job_id=job.id, event="pgaas_queued", status="queued",
                   message=f"backup_repo queued by {created_by}"))
    return job


# -- an instance's stanza ------------------------------------------------------------------------------------
def stanza_of(s: Session, inst: Instance) -> BackupStanza | None:
    return s.scalar(select(BackupStanza).where(BackupStanza.instance_id == inst.id,
                                               BackupStanza.deleted_at.is_(None)))


def setup_instance(s: Session, box: SecretBox, inst: Instance, provider, settings: BackupSettings) -> bool:
    """Give a new instance backups (when they are on and it has none): its stanza and policy, a third port per
    member (its pgBackRest TLS server), a certificate per member from the backup CA (sealed with the instance's
    secrets, as pgaas_backup_tls), and meta["backup"], from which deploy_vars passes pgaas_backup. True when the
    instance has backups."""
    if not settings.enabled or inst.id is None:
        return stanza_of(s, inst) is not None if inst.id is not None else False
    if stanza_of(s, inst) is not None:
        return True
    sec = repo_secrets(s, box, settings)
    used = isvc.used_ports(s, exclude=inst.name)
    used |= {(m.host, p) for m in inst.members for p in (m.pg_port, m.api_port)}
    members = {}
    for m in inst.members:
        if m.backup_port is None:
            m.backup_port = provider.free_ports(m.host, 1, used)[0]
        used.add((m.host, m.backup_port))
        cert, key = certificates.issue(sec["ca_cert"], sec["ca_key"], m.name,
                                       [m.name, m.address, "localhost", "127.0.0.1"], CERT_DAYS, ip_as_dns=True)
        members[m.name] = {"cert": cert, "key": key}
    secrets = box.open(inst.secrets_enc)
    secrets["pgaas_backup_tls"] = {"ca_cert": sec["ca_cert"], "members": members}
    inst.secrets_enc = box.seal(secrets)
    stanza = f"{inst.name}-{inst.id}"
    inst.meta = {**(inst.meta or {}), "backup": {"stanza": stanza, "repo_host": settings.repo_host,
                                                 "repo_port": settings.repo_port}}
    s.add(BackupStanza(stanza=stanza, instance_id=inst.id, instance_name=inst.name))
    s.flush()
    return True


def instance_deleted(s: Session, inst: Instance, created_by: str) -> None:
    """The instance is gone: its stanza and backups stay (deleted, restorable); the repository stops letting its
    members' names in (a new instance of the same name gets the same member names)."""
    st = stanza_of(s, inst)
    if st is None:
        return
    st.deleted_at, st.instance_id = utcnow(), None
    s.flush()
    request_repo(s, created_by)


# -- policy --------------------------------------------------------------------------------------------------
def policy(st: BackupStanza) -> dict:
    return {"full_every_days": st.full_every_days, "diff_every_days": st.diff_every_days,
            "retention_type": st.retention_type, "retention_full": st.retention_full}


def live_stanza(s: Session, name: str) -> tuple[Instance, BackupStanza]:
    inst = isvc.get(s, name)
    st = stanza_of(s, inst)
    if st is None:
        raise Conflict(f"instance {name!r} has no backups: it was made while backups were off (BACKUPS_ENABLED)")
    return inst, st


def update_policy(s: Session, actor: audit.Actor, name: str, data: dict) -> dict:
    """Change an instance's schedule and retention; fields not given stay. Audited."""
    _, st = live_stanza(s, name)
    if not isinstance(data, dict):
        raise Invalid("the policy must be an object")
    unknown = sorted(set(data) - {*LIMITS, "retention_type", "retention_full"})
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    new = {**policy(st), **{k: v for k, v in data.items() if v is not None}}
    if new["retention_type"] not in RETENTION_TYPES:
        raise Invalid("retention_type must be count (full backups kept) or time (days kept)", field="retention_type")
    for key, (lo, hi) in LIMITS.items():
        check_int(new[key], key, lo, hi)
    lo, hi = RETENTION_LIMITS[new["retention_type"]]
    what = "full backups kept" if new["retention_type"] == "count" else "days kept"
    if check_int(new["retention_full"], "retention_full", lo, hi) is None:
        raise Invalid(f"retention_full ({what}) is required", field="retention_full")
    if new["diff_every_days"] and new["diff_every_days"] >= new["full_every_days"]:
        raise Invalid("diff_every_days must be less than full_every_days (or 0: no differential backups)",
                      field="diff_every_days")
    for key, value in new.items():
        setattr(st, key, value)
    audit.record(s, actor, "instance.backup_policy", "instance", name,
                 detail=", ".join(f"{k}={v}" for k, v in new.items()))
    return policy(st)


# -- backups -------------------------------------------------------------------------------------------------
def start_backup(s: Session, actor: audit.Actor, name: str, type_: str | None = "full",
                 scheduled: bool = False) -> Job:
    """Queue a backup of the instance now; 409 while another job acts on it. Audited."""
    type_ = "full" if type_ is None else type_
    if type_ not in BACKUP_TYPES:
        raise Invalid(f"type must be one of {', '.join(BACKUP_TYPES)}", field="type")
    inst, st = live_stanza(s, name)
    if inst.status != "available":
        raise Conflict(f"instance {name!r} is {inst.status}; only an available instance can be backed up")
    job = jobsvc.enqueue(s, "instance_backup", name, actor.username,
                         params={"type": type_, "stanza": st.stanza, "scheduled": scheduled})
    audit.record(s, actor, "instance.backup", "instance", name, detail=f"job {job.id}, {type_}")
    return job


def start_restore(s: Session, actor: audit.Actor, name: str, target_time, confirm) -> tuple[Job, dict]:
    """Queue an in-place restore of the instance to target_time (an ISO 8601 string with an offset; None: the end
    of the archive). Everything committed after it is lost, so confirm must be the instance's name. The target lies
    between the end of the oldest backup and now (the job archives the current WAL first). 422 naming the window
    otherwise, 409 while another job acts on the instance or before its first backup. Audited."""
    inst, st = live_stanza(s, name)
    if confirm != inst.name:
        raise Invalid(f"a restore in place loses everything committed after its target: give \"confirm\": "
                      f"\"{inst.name}\"", field="confirm")
    if inst.status != "available":
        raise Conflict(f"instance {name!r} is {inst.status}; only an available instance can be restored in place")
    win = window(st, list(st.backups))
    if win is None:
        raise Conflict(f"instance {name!r} has no backup yet: nothing to restore from (take one first)")
    now = utcnow()
    target = None
    if target_time is not None:
        target = _target(target_time)
        start = datetime.fromisoformat(win["from"])
        if not start <= target <= now:
            raise Invalid(f"target_time must lie in the recoverable window: from {win['from']} to now "
                          f"({now.isoformat(timespec='seconds')})", field="target_time", window=win)
    at = target.isoformat() if target else None
    job = jobsvc.enqueue(s, "instance_restore", name, actor.username, params={"stanza": st.stanza, "target_time": at})
    to = at or "the end of the archive"
    inst.status, inst.status_reason = "restoring", f"job {job.id} restores it to {to}"
    audit.record(s, actor, "instance.restore", "instance", name, detail=f"job {job.id}, to {to}")
    lost = (f"every transaction committed after {at}" if at else
            "nothing archived (a transaction committed while the members stop may be)")
    return job, {"target_time": at, "lost": lost}


def retry_restore(s: Session, job: Job, actor: audit.Actor) -> Job:
    """A failed restore again, only when the restore itself failed (the members are stopped; the instance is
    failed): once it succeeded, another would lose what was written since."""
    if (job.result or {}).get("restore"):
        raise Conflict(f"job {job.id} restored the instance; a retry would restore it again and lose what was "
                       "written since: take a backup, then rebuild the other members")
    inst = isvc.get(s, job.instance_name)
    if inst.status not in ("failed", "available"):
        raise Conflict(f"instance {inst.name!r} is {inst.status}")
    new = jobsvc.enqueue(s, "instance_restore", inst.name, actor.username, params=dict(job.params or {}))
    inst.status, inst.status_reason = "restoring", f"job {new.id} restores it again (a retry of job {job.id})"
    return new


def _target(value) -> datetime:
    if isinstance(value, str) and len(value) <= 64:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            dt = None
        if dt is not None and dt.tzinfo is not None:
            return dt.astimezone(timezone.utc)
    raise Invalid("target_time must be a date and time in ISO 8601 with its offset, e.g. 2026-12-02T06:30:00Z",
                  field="target_time")


def restore_target(iso_time: str | None) -> str:
    """The playbook's pgaas_restore_target: '' or PostgreSQL's timestamp text in UTC."""
    if not iso_time:
        return ""
    return datetime.fromisoformat(iso_time).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def window(st: BackupStanza, rows: list[Backup]) -> dict | None:
    """What the stanza can be restored to: from the end of its oldest good backup to the last archived WAL (or the
    end of its newest backup, if that is later or nothing was archived since)."""
    good = [b for b in rows if not b.error]
    if not good:
        return None
    start = min(aware(b.stopped_at) for b in good)
    end = max([aware(b.stopped_at) for b in good] + [aware(st.last_archived_time)] * bool(st.last_archived_time))
    return {"from": start.isoformat(), "to": end.isoformat()}


def backup_row(b: Backup) -> dict:
    return {"label": b.label, "type": b.type, "started_at": iso(b.started_at), "stopped_at": iso(b.stopped_at),
            "size_bytes": b.size_bytes, "repo_size_bytes": b.repo_size_bytes,
            "wal": {"start": b.wal_start, "stop": b.wal_stop}, "error": b.error}


def describe(s: Session, st: BackupStanza) -> dict:
    rows = list(st.backups)
    return {"stanza": st.stanza, "deleted": st.deleted_at is not None, "deleted_at": iso(st.deleted_at),
            "backups": [backup_row(b) for b in rows], "window": window(st, rows), "policy": policy(st),
            "archiver": {"last_archived_wal": st.last_archived_wal, "last_archived_time": iso(st.last_archived_time),
                         "failed_count": st.archive_failed_count, "last_failed_time": iso(st.last_failed_time),
                         "current_wal": st.current_wal, "checked_at": iso(st.archiver_checked_at)},
            "next": due(st, rows)}


def list_backups(s: Session, name: str) -> dict:
    """The instance's backups, window, policy and archiver state; earlier instances of the same name that were
    deleted with backups kept ("deleted, restorable") under previous."""
    inst, st = live_stanza(s, name)
    old = s.scalars(select(BackupStanza).where(BackupStanza.instance_name == inst.name,
                                               BackupStanza.deleted_at.is_not(None)).order_by(BackupStanza.stanza))
    return {"instance": inst.name, **describe(s, st), "previous": [describe(s, o) for o in old]}


def _when(ts) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(ts), tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _stamp(value) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        return None
    return aware(dt) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def record_result(s: Session, st: BackupStanza, result: dict) -> None:
    """The cache from a backup job's result (pgaas_result): `info` is the stanza object of `pgbackrest info
    --output=json` (backups the retention expired disappear from it, and from here), `archiver` the primary's
    pg_stat_archiver."""
    info = result.get("info") or {}
    seen = {}
    for b in info.get("backup") or []:
        start, stop = _when((b.get("timestamp") or {}).get("start")), _when((b.get("timestamp") or {}).get("stop"))
        if not b.get("label") or start is None or stop is None:
            continue
        seen[b["label"]] = dict(type=str(b.get("type") or ""), started_at=start, stopped_at=stop,
                                size_bytes=(b.get("info") or {}).get("size"),
                                repo_size_bytes=((b.get("info") or {}).get("repository") or {}).get("size"),
                                wal_start=(b.get("archive") or {}).get("start"),
                                wal_stop=(b.get("archive") or {}).get("stop"), error=bool(b.get("error")))
    if "backup" in info:
        current = {b.label: b for b in st.backups}
        for label, row in current.items():
            if label not in seen:
                st.backups.remove(row)
        for label, values in seen.items():
            row = current.get(label) or Backup(label=label)
            for k, v in values.items():
                setattr(row, k, v)
            if label not in current:
                st.backups.append(row)
    arch = result.get("archiver") or {}
    if arch:
        st.last_archived_wal = arch.get("last_archived_wal") or st.last_archived_wal
        st.last_archived_time = _stamp(arch.get("last_archived_time")) or st.last_archived_time
        failed = arch.get("failed_count")
        st.archive_failed_count = int(failed) if str(failed).isdigit() else st.archive_failed_count
        st.last_failed_time = _stamp(arch.get("last_failed_time")) or st.last_failed_time
        st.archiver_checked_at = utcnow()


# -- the schedule --------------------------------------------------------------------------------------------
def due(st: BackupStanza, rows: list[Backup], now: datetime | None = None) -> str | None:
    """Which backup the policy asks for now: full when the newest good full is older than full_every_days (or
    there is none), diff when the newest good backup is older than diff_every_days, else None."""
    now = now or utcnow()
    good = [b for b in rows if not b.error]
    fulls = [aware(b.started_at) for b in good if b.type == "full"]
    if not fulls or now - max(fulls) >= timedelta(days=st.full_every_days):
        return "full"
    if st.diff_every_days and now - max(aware(b.started_at) for b in good) >= timedelta(days=st.diff_every_days):
        return "diff"
    return None


def schedule(s: Session, now: datetime | None = None) -> list[Job]:
    """The worker's periodic task `backups.schedule` (once per cluster): a backup job for each available, idle
    instance whose policy asks for one; a backup_repo job when the repository's clients are not the store's."""
    queued = []
    rows = s.execute(select(BackupStanza, Instance).join(Instance, BackupStanza.instance_id == Instance.id)
                     .where(BackupStanza.deleted_at.is_(None), Instance.status == "available"))
    for st, inst in rows.all():
        kind = due(st, list(st.backups), now)
        if kind is None or jobsvc.active_job(s, inst.name):
            continue
        try:
            queued.append(start_backup(s, audit.MAINTENANCE_ACTOR, inst.name, kind, scheduled=True))
        except Conflict:
            continue
    if s.scalar(select(BackupStanza.stanza).limit(1)) is not None and not repo_current(s):
        request_repo(s, audit.MAINTENANCE_ACTOR.username)
    return queued

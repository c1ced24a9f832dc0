"""Dumps and restores of tenant databases, as jobs.

A request only checks, queues a job and answers 202; the worker runs pg_dump or pg_restore through a playbook
(playbooks/database_dump.yml, database_restore.yml: on the control plane, connected to the instance's primary), so a
dump of an hour holds no web thread and shows its events live like every other long operation.

- database_dump: an archive (pg_dump custom format) for the user to download, kept DUMP_RETENTION_SECONDS.
- database_delete: the final dump, then the drop; if the dump fails nothing is dropped. The final dump is kept for
  the grace period (DUMP_GRACE_SECONDS) for a restore.
- database_restore: an uploaded archive into an existing database, or a deleted database's final dump into the
  database created again for it. pg_restore runs in one transaction as a temporary login role that may only SET ROLE
  to the database's own role (never as the superuser: an archive is user data, and may hold any SQL), so a failed
  or canceled restore leaves the database as it was.

The jobs' handlers are services/handlers/dumps.py. Archives live under DUMPS_DIR (0700 folders, 0600 files), never in
a job's ansible artifacts. User text (database names) reaches the play as data through the job's vars file, never as
a template.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.services import Conflict, Invalid, NotFound
from webapp.services import audit, capacity
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services.audit import Actor
from webapp.services.crypto import SecretBox
from webapp.store.models import ACTIVE_JOB_STATES, Database, Job, utcnow

KINDS = ("database_dump", "database_delete", "database_restore")
ARCHIVE_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
_EXPORTS, _UPLOADS = "_exports", "_uploads"


# -- files ----------------------------------------------------------------------------------------------------
def private_dir(cfg: dbsvc.DumpSettings, *parts: str) -> Path:
    folder = Path(cfg.dumps_dir).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    for d in [Path(cfg.dumps_dir), *[Path(cfg.dumps_dir).joinpath(*parts[:i + 1]) for i in range(len(parts))]]:
        os.chmod(d, 0o700)
    return folder


def new_file(path: Path) -> Path:
    """An empty 0600 file (an earlier attempt's leftover is replaced)."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def export_path(cfg: dbsvc.DumpSettings, job_id: int) -> Path:
    return Path(cfg.dumps_dir) / _EXPORTS / f"{job_id}.dump"


def new_upload(cfg: dbsvc.DumpSettings) -> Path:
    """Where an uploaded archive is stored before its restore job runs: a new, empty 0600 file."""
    return new_file(private_dir(cfg, _UPLOADS) / f"{uuid.uuid4().hex}.dump")


def check_archive(path: Path) -> None:
    """Refuse (Invalid) a file that is not a pg_dump custom-format archive; the upload is removed."""
    with open(path, "rb") as f:
        head = f.read(len(ARCHIVE_MAGIC))
    if head != ARCHIVE_MAGIC:
        path.unlink(missing_ok=True)
        raise Invalid("the file is not a pg_dump archive in custom format (it must start with PGDMP; make one with "
                      "pg_dump --format=custom, or download a dump from pgaas)", field="file")


# -- starting jobs (the requests) -----------------------------------------------------------------------------
def _check_free(s: Session, instance: str, name: str) -> None:
    """One dump, delete or restore at a time per database."""
    for job in s.scalars(select(Job).where(Job.kind.in_(KINDS), Job.status.in_(ACTIVE_JOB_STATES))):
        p = job.params or {}
        if p.get("instance") == instance and p.get("database") == name:
            raise Conflict(f"database {name!r} on instance {instance!r} is busy with job {job.id} ({job.kind}, "
                           f"{job.status}); wait for it or cancel it", job_id=job.id)


def _target(s: Session, actor: Actor, instance: str, name: str) -> Database:
    """The actor's database (another user's is a 404), on an available instance, with no dump job running."""
    db = dbsvc.get(s, actor, instance, name)
    if db.instance.status != "available":
        raise Conflict(f"instance {instance!r} is {db.instance.status}, not available")
    _check_free(s, instance, name)
    return db


def _enqueue(s: Session, actor: Actor, kind: str, instance: str, name: str, **params) -> Job:
    job = jobsvc.enqueue(s, kind, None, actor.username, params={"instance": instance, "database": name, **params})
    audit.record(s, actor, kind.replace("_", "."), "database", f"{instance}/{name}", detail=f"job {job.id}")
    return job


def start_dump(s: Session, actor: Actor, instance: str, name: str) -> Job:
    _target(s, actor, instance, name)
    return _enqueue(s, actor, "database_dump", instance, name)


def start_delete(s: Session, actor: Actor, instance: str, name: str) -> Job:
    """The final dump, then the drop (a delete without a final dump needs no job: databases.drop)."""
    _target(s, actor, instance, name)
    return _enqueue(s, actor, "database_delete", instance, name)


def check_restore_target(s: Session, actor: Actor, instance: str, name: str) -> None:
    """Before an upload is stored: the target is the actor's and free (so nobody else's database takes a file)."""
    _target(s, actor, instance, name)


def start_restore(s: Session, actor: Actor, instance: str, name: str, upload: Path, clean: bool = False) -> Job:
    """Restore an uploaded archive (stored by the caller at new_upload()) into an existing database."""
    if not isinstance(clean, bool):
        raise Invalid("clean must be true or false", field="clean")
    try:
        _target(s, actor, instance, name)
        check_archive(upload)
    except Exception:
        upload.unlink(missing_ok=True)
        raise
    return _enqueue(s, actor, "database_restore", instance, name, source="upload", file=str(upload), clean=clean)


def start_final_restore(s: Session, box: SecretBox, actor: Actor, instance: str, name: str, *,
                        limits: capacity.Defaults | None = None) -> tuple[Database, str, Job]:
    """Bring a deleted database back from its final dump: the database is created again now (with its limits and
    a new password, shown once; it must fit in its owner's allowance, limits: the configured defaults), the job
    restores the dump into it and sets its parameters."""
    inst = isvc.get(s, instance)
    existing = s.scalar(select(Database).where(Database.instance_id == inst.id, Database.name == name))
    if existing is not None and (actor.is_admin or existing.owner_id == actor.user_id):
        raise Conflict(f"database {name!r} exists on instance {instance!r}; delete it first to restore its dump")
    dump = dbsvc.latest_dump(s, actor, instance, name)  # only the actor's own: another's is a 404
    if existing is not None:
        raise Conflict(f"a database named {name!r} exists on instance {instance!r} now; its dump cannot come back "
                       "under that name")
    settings = dump.settings or {}
    owner = Actor(actor.username, actor.is_admin, dump.owner_id or actor.user_id, actor.remote_addr)
    db, password = dbsvc.create(s, box, owner, instance, name, settings.get("quota_mb"),
                                settings.get("connection_limit"), limits=limits)
    job = _enqueue(s, actor, "database_restore", instance, name, source="final", file=dump.path, dump_id=dump.id,
                   clean=False)
    return db, password, job


def retry(s: Session, old: Job, by: str) -> Job:
    """Queue a failed or canceled dump, delete or restore again, with the same parameters."""
    p = old.params or {}
    inst = isvc.get(s, p.get("instance"))
    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    _check_free(s, inst.name, p.get("database"))
    if old.kind == "database_restore" and not Path(p.get("file", "")).exists():
        raise Conflict(f"the archive of job {old.id} is gone (removed after the retention period); start a new "
                       "restore")
    params = {k: v for k, v in p.items() if k != "retry_of"}
    return jobsvc.enqueue(s, old.kind, None, by, params=params)


def download(s: Session, job: Job) -> tuple[Path, str]:
    """The archive of a succeeded dump job, and the file name to offer."""
    if job.kind != "database_dump":
        raise NotFound(f"job {job.id} is a {job.kind}, not a dump")
    if job.status != "succeeded":
        raise Conflict(f"job {job.id} is {job.status}: the dump can be downloaded once the job succeeded",
                       job_id=job.id)
    path = Path((job.result or {}).get("file") or "")
    if (job.result or {}).get("removed") or not path.is_file():
        raise NotFound(f"the dump of job {job.id} was removed after its retention period; start a new dump")
    p = job.params or {}
    stamp = (job.finished_at or utcnow()).strftime("%Y%m%dT%H%M%SZ")
    return path, f"{p.get('instance')}-{p.get('database')}-{stamp}.dump"


# -- retention ------------------------------------------------------------------------------------------------
def prune(s: Session, cfg: dbsvc.DumpSettings) -> int:
    """Remove the downloadable dumps past their retention, and uploads that waited as long (a restore that
    succeeded removes its upload at once). Final dumps are databases.prune_dumps'."""
    gone = 0
    now = utcnow()
    for job in s.scalars(select(Job).where(Job.kind == "database_dump", Job.status == "succeeded")):
        r = job.result or {}
        if r.get("removed") or not r.get("expires_at") or r["expires_at"] > now.isoformat():
            continue
        Path(r.get("file", "")).unlink(missing_ok=True)
        job.result = {**r, "removed": True}
        gone += 1
    cutoff = now.timestamp() - cfg.retention_seconds
    uploads = Path(cfg.dumps_dir) / _UPLOADS
    active = {(j.params or {}).get("file") for j in s.scalars(
        select(Job).where(Job.kind == "database_restore", Job.status.in_(ACTIVE_JOB_STATES)))}
    for f in uploads.glob("*.dump") if uploads.is_dir() else []:
        if str(f) not in active and f.stat().st_mtime < cutoff:
            f.unlink(missing_ok=True)
            gone += 1
    return gone

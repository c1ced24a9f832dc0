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

Archives live under DUMPS_DIR (0700 folders, 0600 files), never in a job's ansible artifacts. User text (database
names) reaches the play as data through the job's vars file, never as a template.
"""
from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.jobs.spec import NotRunnable, Outcome, RunSpec
from webapp.services import Conflict, Invalid, NotFound
from webapp.services import audit, capacity
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services.audit import Actor
from webapp.services.crypto import SecretBox, generate_password
from webapp.services.pgconn import connect_primary, conninfo, scram_verifier
from webapp.store.models import ACTIVE_JOB_STATES, Database, DatabaseDump, Instance, Job, utcnow

KINDS = ("database_dump", "database_delete", "database_restore")
ARCHIVE_MAGIC = b"PGDMP"  # the first bytes of every pg_dump custom-format archive
_EXPORTS, _UPLOADS = "_exports", "_uploads"


# -- files ----------------------------------------------------------------------------------------------------
def _private_dir(cfg: dbsvc.DumpSettings, *parts: str) -> Path:
    folder = Path(cfg.dumps_dir).joinpath(*parts)
    folder.mkdir(parents=True, exist_ok=True)
    for d in [Path(cfg.dumps_dir), *[Path(cfg.dumps_dir).joinpath(*parts[:i + 1]) for i in range(len(parts))]]:
        os.chmod(d, 0o700)
    return folder


def _new_file(path: Path) -> Path:
    """An empty 0600 file (an earlier attempt's leftover is replaced)."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def export_path(cfg: dbsvc.DumpSettings, job_id: int) -> Path:
    return Path(cfg.dumps_dir) / _EXPORTS / f"{job_id}.dump"


def new_upload(cfg: dbsvc.DumpSettings) -> Path:
    """Where an uploaded archive is stored before its restore job runs: a new, empty 0600 file."""
    return _new_file(_private_dir(cfg, _UPLOADS) / f"{uuid.uuid4().hex}.dump")


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


# -- job handlers (called by the worker) ---------------------------------------------------------------------
def _database(s, job: Job) -> Database:
    p = job.params or {}
    db = s.scalar(select(Database).join(Instance).where(Instance.name == p.get("instance"),
                                                       Database.name == p.get("database")))
    if db is None:
        raise NotRunnable(f"database {p.get('database')!r} on instance {p.get('instance')!r} no longer exists")
    if db.instance.status != "available":
        raise NotRunnable(f"instance {db.instance.name!r} is {db.instance.status}, not available")
    return db


def _dsn(inst: Instance, dbname: str) -> str:
    return " ".join(f"{k}={v}" for k, v in conninfo(inst, dbname).items())


def _spec(playbook: str, db: Database, cfg: dbsvc.DumpSettings, file: Path, user: str, password: str,
          label: str, **extra) -> RunSpec:
    return RunSpec(playbook, {"pgaas_transfer_dsn": _dsn(db.instance, db.name), "pgaas_transfer_file": str(file),
                              "pgaas_transfer_user": user, "pgaas_pg_bin": cfg.pg_bin, **extra},
                   secrets={"pgaas_transfer_password": password}, label=label)


class _Handler:
    def __init__(self, box: SecretBox, cfg: dbsvc.DumpSettings):
        self.box, self.cfg = box, cfg

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None  # a killed pg_dump leaves a partial file (removed by finish); a killed restore is rolled back


class DumpHandler(_Handler):
    """database_dump and database_delete: pg_dump into a file; a delete then drops the database."""

    def _file(self, job: Job) -> Path:
        p = job.params or {}
        if job.kind == "database_dump":
            return export_path(self.cfg, job.id)
        return Path(self.cfg.dumps_dir) / p["instance"] / p["database"] / f"job-{job.id}.dump"

    def prepare(self, s, job: Job) -> RunSpec:
        db = _database(s, job)
        file = self._file(job)
        _private_dir(self.cfg, *file.parent.relative_to(self.cfg.dumps_dir).parts)
        _new_file(file)
        what = "for download" if job.kind == "database_dump" else "as the final dump before the delete"
        return _spec("playbooks/database_dump.yml", db, self.cfg, file, "postgres",
                     self.box.open(db.instance.secrets_enc)["pgaas_superuser_password"],
                     f"pg_dump {db.name} on {db.instance.name} {what}")

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        p = job.params or {}
        file = self._file(job)
        if job.status != "succeeded":
            file.unlink(missing_ok=True)
            if job.kind == "database_delete":
                job.error = f"the final dump did not complete ({job.error}), so nothing was deleted: " \
                            f"{p.get('database')} is unchanged; retry the job or delete without a final dump"
            return
        size = file.stat().st_size
        db = s.scalar(select(Database).join(Instance).where(Instance.name == p["instance"],
                                                           Database.name == p["database"]))
        if job.kind == "database_dump":
            expires = utcnow() + timedelta(seconds=self.cfg.retention_seconds)
            job.result = {"instance": p["instance"], "database": p["database"], "file": str(file),
                          "size_bytes": size, "expires_at": expires.isoformat()}
            return
        expires = utcnow() + timedelta(seconds=self.cfg.grace_seconds)
        if db is None:  # deleted meanwhile without a final dump: keep this one all the same
            settings = {}
        else:
            settings = {"quota_mb": db.quota_mb, "connection_limit": db.connection_limit,
                        "parameters": db.parameters or {}}
        s.add(DatabaseDump(instance_name=p["instance"], database_name=p["database"],
                           owner_id=db.owner_id if db else None, path=str(file), size_bytes=size, settings=settings,
                           expires_at=expires))
        if db is not None:
            try:
                dbsvc.drop(s, self.box, Actor(job.created_by), db)
            except (Conflict, psycopg.Error) as exc:
                job.status = "failed"
                job.error = f"the final dump was taken (kept until {expires:%Y-%m-%d %H:%M} UTC), but the drop " \
                            f"failed: {exc}; {p['database']} is unchanged; retry the job"
                return
        job.result = {"instance": p["instance"], "database": p["database"], "deleted": True,
                      "final_dump_size_bytes": size, "final_dump_expires_at": expires.isoformat()}

    def lost(self, s, job: Job) -> None:
        self._file(job).unlink(missing_ok=True)


class RestoreHandler(_Handler):
    """database_restore: pg_restore in one transaction, as a temporary role that may only become the database's
    role."""

    @staticmethod
    def _login(job: Job) -> str:
        return f"pgaas_restore_{job.id}"

    def prepare(self, s, job: Job) -> RunSpec:
        p = job.params or {}
        db = _database(s, job)
        file = Path(p.get("file", ""))
        if not file.is_file():
            raise NotRunnable(f"the archive to restore is gone (removed after the retention period); {db.name} "
                              "is unchanged")
        login, password = self._login(job), generate_password(32)
        try:
            with connect_primary(db.instance, self.box, db.name) as conn:
                self._drop_login(conn, login, db.role_name)
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                     "CONNECTION LIMIT 2 PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(login), sql.Literal(scram_verifier(password)), sql.Identifier(db.role_name)))
        except (Conflict, psycopg.Error) as exc:
            raise NotRunnable(f"the restore could not start: {exc}") from None
        what = "the uploaded archive" if p.get("source") == "upload" else "its final dump"
        return _spec("playbooks/database_restore.yml", db, self.cfg, file, login, password,
                     f"pg_restore {what} into {db.name} on {db.instance.name}",
                     pgaas_transfer_role=db.role_name, pgaas_transfer_clean=bool(p.get("clean")))

    @staticmethod
    def _drop_login(conn, login: str, owner: str) -> None:
        """End the temporary role's sessions, give anything it made to the database's role, drop it."""
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
            return
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (login,))
        ident = sql.Identifier(login)
        # REASSIGN/DROP OWNED act on the current database: the connection's, the only one the role could reach
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(ident, sql.Identifier(owner)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))

    def _remove_login(self, s, job: Job) -> str:
        p = job.params or {}
        db = s.scalar(select(Database).join(Instance).where(Instance.name == p.get("instance"),
                                                           Database.name == p.get("database")))
        if db is None or db.instance.status != "available":
            return ""
        try:
            with connect_primary(db.instance, self.box, db.name) as conn:
                self._drop_login(conn, self._login(job), db.role_name)
        except (Conflict, psycopg.Error) as exc:
            return f"; the temporary role {self._login(job)} could not be dropped yet ({exc})"
        return ""

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        p = job.params or {}
        left = self._remove_login(s, job)
        name = p.get("database")
        if job.status != "succeeded":
            if p.get("source") == "final":
                state = f"{name} exists again but is empty (it was created for this restore); its final dump is kept"
            else:
                state = f"{name} is as it was before"
            how = "was canceled" if job.status == "canceled" else "failed"
            job.error = (f"the restore {how} and was rolled back (it runs in one transaction): {state}. Retry the "
                         f"job, or start a new restore. Cause: {job.error}{left}")
            return
        result = {"instance": p.get("instance"), "database": name, "restored_from": p.get("source")}
        if p.get("source") == "final":
            dump = s.get(DatabaseDump, p.get("dump_id"))
            db = s.scalar(select(Database).join(Instance).where(Instance.name == p.get("instance"),
                                                               Database.name == name))
            if dump is not None:
                dump.restored_at = utcnow()
                if db is not None and (dump.settings or {}).get("parameters"):
                    # only those a database may still have (a dump made before the allowlist may hold others)
                    params = {k: v for k, v in dump.settings["parameters"].items()
                              if k.lower() in dbsvc.TENANT_PARAMETERS}
                    dbsvc.update(s, self.box, Actor(job.created_by), db, parameters=params, record=False)
        else:
            Path(p.get("file", "")).unlink(missing_ok=True)
        job.result = result
        if left:
            job.result["warning"] = left.lstrip("; ")

    def lost(self, s, job: Job) -> None:
        self._remove_login(s, job)


def handlers(box: SecretBox, cfg: dbsvc.DumpSettings) -> dict:
    dump = DumpHandler(box, cfg)
    return {"database_dump": dump, "database_delete": dump, "database_restore": RestoreHandler(box, cfg)}

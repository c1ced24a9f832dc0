"""Handlers of database_dump, database_delete (the final dump, then the drop) and database_restore: pg_dump and
pg_restore through playbooks on the control plane. The requests that queue them: services/dumps.py."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import select

from webapp.jobs.types import NotRunnable, Outcome, RunSpec
from webapp.services import Conflict, dumps
from webapp.services import databases as dbsvc
from webapp.services.audit import Actor
from webapp.services.crypto import SecretBox, generate_password
from webapp.services.handlers.base import JobHandler
from webapp.services.pgconn import connect_primary, conninfo, scram_verifier
from webapp.store.models import Database, DatabaseDump, Instance, Job, utcnow


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


class TransferHandler(JobHandler):
    def __init__(self, box: SecretBox, cfg: dbsvc.DumpSettings):
        self.box, self.cfg = box, cfg

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None  # a killed pg_dump leaves a partial file (removed by finish); a killed restore is rolled back


class DumpHandler(TransferHandler):
    """database_dump and database_delete: pg_dump into a file; a delete then drops the database."""

    def _file(self, job: Job) -> Path:
        p = job.params or {}
        if job.kind == "database_dump":
            return dumps.export_path(self.cfg, job.id)
        return Path(self.cfg.dumps_dir) / p["instance"] / p["database"] / f"job-{job.id}.dump"

    def prepare(self, s, job: Job) -> RunSpec:
        db = _database(s, job)
        file = self._file(job)
        dumps.private_dir(self.cfg, *file.parent.relative_to(self.cfg.dumps_dir).parts)
        dumps.new_file(file)
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


class RestoreHandler(TransferHandler):
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

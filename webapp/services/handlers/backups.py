"""Handlers of instance_backup (a pgBackRest backup of one instance, run on the repository host) and backup_repo
(the repository's container and configuration). The requests that queue them, and the cache they fill:
services/backups.py."""
from __future__ import annotations

from webapp.jobs.types import NotRunnable, Outcome, RunSpec
from webapp.services import backups, certificates
from webapp.services.crypto import SecretBox
from webapp.services.handlers.base import JobHandler, PairHandler, RunningInstanceHandler, deploy_vars, instance_of
from webapp.services.handlers.failover import REBUILD_PLAYBOOK, rebuild_run
from webapp.store.models import BackupStanza, Instance, Job

REPO_PLAYBOOK = "playbooks/backup_repo.yml"
BACKUP_PLAYBOOK = "playbooks/instance_backup.yml"
RESTORE_PLAYBOOK = "playbooks/instance_restore.yml"


def backup_run(inst: Instance, st: BackupStanza, backup_type: str, repo_name: str = "") -> RunSpec:
    """The backup's run (playbooks/instance_backup.yml): the members (pgBackRest's pg1..pgN), the stanza, the type,
    the retention; repo_container when the repository container has a name of its own (BACKUP_REPO_NAME)."""
    vars_ = {
        "pgaas_instance_name": inst.name,
        "pgaas_members": [{"name": m.name, "host": m.host, "address": m.address, "pg_port": m.pg_port,
                           "api_port": m.api_port, "backup_port": m.backup_port} for m in inst.members],
        "pgaas_backup": {"enabled": True, **(inst.meta or {}).get("backup", {}), "stanza": st.stanza,
                         **({"repo_container": repo_name} if repo_name else {})},
        "pgaas_backup_type": backup_type,
        "pgaas_backup_retention": {"type": st.retention_type, "full": st.retention_full},
    }
    return RunSpec(BACKUP_PLAYBOOK, vars_, label=f"Take a {backup_type} backup with pgBackRest")


def live_target(s, job: Job) -> tuple[Instance, BackupStanza]:
    """The job's instance and its live stanza; NotRunnable when either is gone."""
    inst = instance_of(s, job)
    st = s.get(BackupStanza, (job.params or {}).get("stanza", ""))
    if inst is None or st is None or st.deleted_at is not None or st.instance_id != inst.id:
        raise NotRunnable(f"instance {job.instance_name!r} no longer exists or has no backups")
    return inst, st


class BackupHandler(RunningInstanceHandler):
    """instance_backup: the repository is configured first when it does not let this instance in yet (a new
    instance's first backup), then the backup; its result (pgbackrest info, the archiver) fills the cache. A failed
    backup keeps pgBackRest's message as the job's error; the instance keeps serving."""

    def __init__(self, box: SecretBox, settings: backups.BackupSettings):
        super().__init__(box)
        self.settings = settings

    def prepare(self, s, job: Job) -> RunSpec:
        inst, st = live_target(s, job)
        if inst.status != "available":
            raise NotRunnable(f"instance {inst.name!r} is {inst.status}, not available")
        if not backups.repo_current(s):
            return backups.repo_run(s, self.box, self.settings, job)
        return backup_run(inst, st, (job.params or {}).get("type", "full"), self.settings.repo_name)

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        if (job.runs or [{}])[-1].get("playbook") != REPO_PLAYBOOK:
            return None
        backups.repo_applied(s, job)
        inst, st = live_target(s, job)
        return backup_run(inst, st, (job.params or {}).get("type", "full"), self.settings.repo_name)

    def succeeded(self, inst: Instance, job: Job, meta: dict) -> None:
        meta["last_backup"] = {"job": job.id, "type": (job.params or {}).get("type")}

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        super().finish(s, job, outcome)
        result = outcome.artifact_data.get("pgaas_result") or {}
        st = s.get(BackupStanza, (job.params or {}).get("stanza", ""))
        if st is not None and result:
            backups.record_result(s, st, result)  # a failed run may still report the archiver
        # the whole info stays in the cache, not in the job (a new dict: the column sees only an assignment)
        out = {k: v for k, v in (job.result or {}).items() if k != "info"}
        if job.status == "succeeded" and st is not None and st.backups:
            out["backup"] = backups.backup_row(max(st.backups, key=lambda b: b.stopped_at))
        job.result = out


class RepoHandler(JobHandler):
    """backup_repo: the repository host's container and configuration (clients: every member of every instance
    with backups, from the store as it is when the job runs)."""

    def __init__(self, box: SecretBox, settings: backups.BackupSettings):
        self.box, self.settings = box, settings

    def prepare(self, s, job: Job) -> RunSpec:
        return backups.repo_run(s, self.box, self.settings, job)

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        if job.status == "succeeded":
            backups.repo_applied(s, job)
            job.result = {"clients": len((job.params or {}).get("repo_clients") or [])}


class InstanceRestoreHandler(PairHandler):
    """instance_restore (in place, services/backups.py start_restore): the restore onto the first member
    (playbooks/instance_restore.yml: it leads again on a new timeline, the others stopped), a full backup (the new
    timeline's first, so that a standby restored from the repository follows it), then each other member rebuilt
    (playbooks/instance_rebuild.yml: Patroni clones it from that backup). A failed restore leaves the members stopped
    and says so; a retry restores again. A failure after it leaves the instance serving from the first member."""

    def __init__(self, box: SecretBox, image: str, settings: backups.BackupSettings):
        super().__init__(box, image)
        self.settings = settings

    def prepare(self, s, job: Job) -> RunSpec:
        inst, _ = live_target(s, job)
        inst.status = "restoring"
        extravars = deploy_vars(inst, self.image)
        extravars["pgaas_restore_target"] = backups.restore_target((job.params or {}).get("target_time"))
        return RunSpec(RESTORE_PLAYBOOK, extravars,
                       label=f"Restore {inst.members[0].name} in place to "
                             f"{(job.params or {}).get('target_time') or 'the end of the archive'}")

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        inst, st = live_target(s, job)
        runs = [r.get("playbook") for r in job.runs or []]
        result = outcome.artifact_data.get("pgaas_result") or {}
        if runs[-1] == RESTORE_PLAYBOOK:
            job.result = {"instance": inst.name, "restore": result}
            return backup_run(inst, st, "full", self.settings.repo_name)
        if runs[-1] == BACKUP_PLAYBOOK and result:
            backups.record_result(s, st, result)
        rebuilt = runs.count(REBUILD_PLAYBOOK)
        if rebuilt >= len(inst.members) - 1:
            return None
        member = inst.members[rebuilt + 1]
        return rebuild_run(inst, self.image, member.name, member.host, certificates.playbook_secrets(self.box, inst),
                           f"Rebuild {member.name} from the new backup")

    def lost(self, s, job: Job) -> None:
        super().lost(s, job)
        inst = instance_of(s, job)
        if inst is not None and inst.status == "restoring":
            inst.status, inst.status_reason = "failed", (
                f"restore job {job.id} stopped with its worker; "
                + ("the first member was restored and serves: take a backup, then rebuild the others"
                   if (job.result or {}).get("restore") else "the members may be stopped: retry restores again"))

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        restore = (job.result or {}).get("restore")
        self.finish_pair(inst, job, outcome)
        runs = [r.get("playbook") for r in job.runs or []]
        stage = {
            RESTORE_PLAYBOOK: "the restore failed: the members are stopped, and a retry restores again",
            BACKUP_PLAYBOOK: "restored, and the first member serves; the backup after it failed, so the other "
                             "members are stopped: take a backup, then rebuild them (a retry would restore again)",
            REBUILD_PLAYBOOK: "restored, and the first member serves; a rebuild failed: rebuild that member from "
                              "the instance page"}.get(runs[-1] if runs else "", "")
        job.result = {"instance": inst.name, "restore": restore, "target_time": (job.params or {}).get("target_time"),
                      **({"stage": stage} if job.status != "succeeded" else {})}
        # members stopped by a failed restore: failed, from where a retry (restores again) or a delete works
        inst.status = "failed" if restore is None and job.status != "succeeded" else "available"
        inst.status_reason = "" if job.status == "succeeded" else f"restore job {job.id} {job.status}: {stage}"
        if job.status == "succeeded":
            inst.meta = {**(inst.meta or {}), "last_restore": {
                "job": job.id, "target_time": (job.params or {}).get("target_time"),
                "finished_at": job.finished_at.isoformat() if job.finished_at else None}}


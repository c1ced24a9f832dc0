"""The base class of every job handler, and what the handler families share."""
from __future__ import annotations

from sqlalchemy import select

from webapp.jobs.types import Outcome, RunSpec
from webapp.services.crypto import SecretBox
from webapp.services.instances import deploy_vars  # noqa: F401 (the handlers take it from here)
from webapp.store.models import Instance, Job


class JobHandler:
    """One job kind (or a family of kinds) for the worker (webapp.jobs.types.Handler): prepare is the one method
    every handler must have; the others do nothing unless a handler says otherwise."""

    def prepare(self, s, job: Job) -> RunSpec:
        raise NotImplementedError

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        return None

    def lost(self, s, job: Job) -> None:
        return None


# -- what handlers share -------------------------------------------------------------------------------------
def instance_of(s, job: Job) -> Instance | None:
    return s.scalar(select(Instance).where(Instance.name == job.instance_name))


def member_vars(inst: Instance) -> list[dict]:
    """pgaas_members for the plays that act on running members through Patroni."""
    return [{"name": m.name, "host": m.host, "pg_port": m.pg_port, "api_port": m.api_port} for m in inst.members]


def restapi_secrets(box: SecretBox, inst: Instance) -> dict:
    """Secrets of the plays that talk to Patroni's REST API (switchover, settings, restart)."""
    return {"pgaas_restapi_password": box.open(inst.secrets_enc)["pgaas_restapi_password"]}


def last_job(job: Job) -> dict:
    """meta["last_job"] of the instance a job ended on."""
    return {"id": job.id, "kind": job.kind, "status": job.status,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


class RunningInstanceHandler(JobHandler):
    """Jobs on a running instance: a failure leaves it available (Patroni keeps the pair consistent); the job
    says what happened."""

    def __init__(self, box: SecretBox):
        self.box = box

    def lost(self, s, job: Job) -> None:
        inst = instance_of(s, job)
        if inst is not None:
            inst.meta = {**(inst.meta or {}), "last_job": {"id": job.id, "kind": job.kind, "status": job.status}}

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        meta = self.finish_meta(inst, job, outcome)
        if job.status == "succeeded":
            self.succeeded(inst, job, meta)
        inst.meta = meta

    def succeeded(self, inst: Instance, job: Job, meta: dict) -> None:
        """What a job that succeeded changes on the instance; meta: its new meta, to change in place."""

    def finish_meta(self, inst: Instance, job: Job, outcome: Outcome) -> dict:
        """The instance's meta with this job as its last; the play's pgaas_result as the job's result."""
        meta = dict(inst.meta or {})
        meta["last_job"] = last_job(job)
        result = outcome.artifact_data.get("pgaas_result", {}) or {}
        job.result = {"instance": inst.name, **result}
        return meta


class PairHandler(RunningInstanceHandler):
    """Jobs that move or repair members of a running pair: a failure leaves it available, with the reason in the
    job's error; the status shows degraded for as long as the pair is not whole."""

    def __init__(self, box: SecretBox, image: str):
        super().__init__(box)
        self.image = image

    def finish_pair(self, inst: Instance, job: Job, outcome: Outcome) -> dict:
        """Record the job on the instance; the play's pgaas_result (its history is recorded as rows, too long
        for the job's result)."""
        inst.meta = self.finish_meta(inst, job, outcome)
        job.result.pop("history", None)
        return outcome.artifact_data.get("pgaas_result", {}) or {}

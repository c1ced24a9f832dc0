"""Retrying a job (`POST /jobs/{id}/retry`): above the services whose jobs it queues again, so that none of them
imports another for it."""
from __future__ import annotations

from sqlalchemy.orm import Session

from webapp.services import Conflict, audit, backups, dumps
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.store.models import Job


def retry_job(s: Session, job: Job, actor: audit.Actor) -> Job:
    """Run a failed or canceled job again. A create or delete goes through the instance's retry (it is failed
    then); a restore only when the restore itself failed (services/backups.py); any other job (settings, restart,
    ...) is queued again with the same, already validated, parameters, on an instance that is available. Audited
    as a job.retry of the old job."""
    jobsvc.check_retryable(s, job)
    if job.kind in dumps.KINDS:
        new = dumps.retry(s, job, actor.username)
    elif job.kind in isvc.LIFECYCLE_KINDS:
        new = isvc.retry(s, job.instance_name, actor, record=False)
    elif job.kind == "instance_restore":
        new = backups.retry_restore(s, job, actor)
    else:
        if job.instance_name:
            inst = isvc.get(s, job.instance_name)
            if inst.status != "available":
                raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
        new = jobsvc.enqueue(s, job.kind, job.instance_name, actor.username, params=dict(job.params or {}))
    audit.record(s, actor, "job.retry", "job", str(job.id),
                 detail=f"job {new.id} ({new.kind}{', ' + new.instance_name if new.instance_name else ''})")
    return jobsvc.mark_retry(s, new, job)

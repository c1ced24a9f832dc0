"""Job records: enqueue, read, list, cancel, retry, and the retention of finished jobs' events and artifacts.
Running them is the worker's (webapp.jobs.worker)."""
from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from webapp.services import Conflict, NotFound, audit, row_id
from webapp.store import wakeup
from webapp.store.models import ACTIVE_JOB_STATES, FINISHED_JOB_STATES, RETRYABLE_JOB_STATES, Job, JobEvent, utcnow

log = logging.getLogger(__name__)


def active_job(s: Session, instance_name: str) -> Job | None:
    return s.scalar(select(Job).where(Job.instance_name == instance_name, Job.status.in_(ACTIVE_JOB_STATES)))


def active_jobs(s: Session, instance_names: list[str]) -> dict[str, Job]:
    """instance name -> its active job, for a list of instances in one query."""
    if not instance_names:
        return {}
    return {j.instance_name: j for j in s.scalars(select(Job).where(Job.instance_name.in_(instance_names),
                                                                    Job.status.in_(ACTIVE_JOB_STATES)))}


def enqueue(s: Session, kind: str, instance_name: str | None, created_by: str, params: dict | None = None) -> Job:
    """Queue a job. Two jobs never act on one instance at once: the second is refused (Conflict)."""
    if instance_name and (busy := active_job(s, instance_name)):
        raise Conflict(f"instance {instance_name!r} is busy with job {busy.id} ({busy.kind}, {busy.status}); "
                       "wait for it or cancel it", job_id=busy.id)
    job = Job(kind=kind, instance_name=instance_name, created_by=created_by, params=params or {})
    s.add(job)
    try:
        s.flush()
    except IntegrityError as exc:  # lost a race with another request: the partial unique index said no
        s.rollback()
        raise Conflict(f"instance {instance_name!r} is busy with another job") from exc
    s.add(JobEvent(job_id=job.id, event="pgaas_queued", status="queued", message=f"{kind} queued by {created_by}"))
    wakeup.job_queued(s)  # idle workers start it as soon as this transaction commits
    return job


def get(s: Session, job_id) -> Job:
    if (number := row_id(job_id)) is None:
        raise NotFound(f"no job {job_id!r}")
    job = s.get(Job, number)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def list_jobs(s: Session, instance_name: str | None = None, limit: int | None = 100, offset: int = 0,
              created_by: str | None = None) -> list[Job]:
    """Newest first; created_by: only the jobs this user started."""
    q = select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)
    if instance_name:
        q = q.where(Job.instance_name == instance_name)
    if created_by is not None:
        q = q.where(Job.created_by == created_by)
    return list(s.scalars(q))


def events_after(s: Session, job_id: int, after_id: int = 0) -> list[JobEvent]:
    return list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                          .order_by(JobEvent.id)))


def cancel(s: Session, job: Job, actor: audit.Actor, on_queued_cancel=None) -> Job:
    """A queued job is canceled at once; a running one is flagged and its worker kills the run. Audited."""
    was = job.status
    if job.status == "queued":
        job.status, job.finished_at = "canceled", utcnow()
        job.error = f"canceled by {actor.username} before it started"
        s.add(JobEvent(job_id=job.id, event="pgaas_canceled", status="canceled", message=job.error))
        if on_queued_cancel:
            on_queued_cancel(s, job)
    elif job.status == "running":
        job.cancel_requested = True
        s.add(JobEvent(job_id=job.id, event="pgaas_cancel_requested", status="canceling",
                       message=f"cancel requested by {actor.username}"))
    else:
        raise Conflict(f"job {job.id} already ended ({job.status})")
    audit.record(s, actor, "job.cancel", "job", str(job.id), detail=f"{job.kind}, was {was}")
    return job


def newest_job(s: Session, instance_name: str) -> Job | None:
    return s.scalar(select(Job).where(Job.instance_name == instance_name).order_by(Job.id.desc()).limit(1))


def check_retryable(s: Session, job: Job) -> None:
    """A job can be retried once it failed or was canceled, and only while it is the newest job of its instance:
    retrying an older one would undo what came after it."""
    if job.status not in RETRYABLE_JOB_STATES:
        raise Conflict(f"job {job.id} is {job.status}; only a failed or canceled job can be retried")
    if job.instance_name and (newest := newest_job(s, job.instance_name)) is not None and newest.id != job.id:
        raise Conflict(f"job {job.id} is not the newest job of instance {job.instance_name!r} (job {newest.id} "
                       "came after it); start a new change instead", job_id=newest.id)


def mark_retry(s: Session, new: Job, old: Job) -> Job:
    new.params = {**(new.params or {}), "retry_of": old.id}
    s.add(JobEvent(job_id=new.id, event="pgaas_retry", status="queued", message=f"retry of job {old.id}"))
    return new


def prune(s: Session, jobs_dir: str, days: float, now: datetime | None = None, batch: int = 200) -> int:
    """The retention of finished jobs (a worker's periodic work): a job that ended more than `days` ago loses its
    artifact directory (JOBS_DIR/<id>, ansible-runner's private data dir) and its events; its row stays, with
    events_pruned_at set. A queued or running job is never touched. days <= 0: keep everything. Returns how many
    jobs were pruned. The directory goes first: a job whose directory cannot be removed keeps its events and is
    tried again at the next run."""
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    pruned, failed = 0, set()
    while True:
        q = (select(Job.id).where(Job.status.in_(FINISHED_JOB_STATES), Job.events_pruned_at.is_(None),
                                  func.coalesce(Job.finished_at, Job.created_at) < cutoff)
             .order_by(Job.id).limit(batch))
        if failed:
            q = q.where(Job.id.not_in(failed))
        ids = list(s.scalars(q))
        if not ids:
            return pruned
        done = []
        for job_id in ids:
            try:
                shutil.rmtree(Path(jobs_dir) / str(job_id))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("job %s: its artifact directory was not removed (%s); its events are kept", job_id, exc)
                failed.add(job_id)
                continue
            done.append(job_id)
        if done:
            s.execute(delete(JobEvent).where(JobEvent.job_id.in_(done)).execution_options(synchronize_session=False))
            s.execute(update(Job).where(Job.id.in_(done), Job.status.in_(FINISHED_JOB_STATES))
                      .values(events_pruned_at=utcnow()).execution_options(synchronize_session=False))
            s.commit()
            pruned += len(done)

"""Retention of finished jobs (JOB_RETENTION_DAYS): a job that ended longer ago than the retention loses its
artifact directory and its events, and keeps its row (kind, status, error, times); a recent job, and a queued or
running one however old, keep everything. On SQLite and PostgreSQL, through the worker's real maintenance task."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import make_app
from webapp.services import jobs as jobsvc
from webapp.store.models import Job, JobEvent, utcnow


def add_job(s, jobs_dir: Path, status: str, age_days: float, finished: bool = True, error: str = "") -> int:
    """A job that ended (or, unfinished, started) age_days ago, with three events and an artifact directory like
    ansible-runner's: artifacts, a private 0700 folder, a fact cache."""
    at = utcnow() - timedelta(days=age_days)
    job = Job(kind="instance_create", status=status, instance_name=None, created_by="root", params={"x": 1},
              result={"done": True} if status == "succeeded" else {}, error=error, created_at=at - timedelta(minutes=5),
              started_at=at - timedelta(minutes=4), finished_at=at if finished else None,
              heartbeat_at=at if status == "running" else None)
    s.add(job)
    s.flush()
    for i in range(3):
        s.add(JobEvent(job_id=job.id, event=f"runner_on_ok_{i}", task=f"task {i}", status="ok", created_at=at))
    d = jobs_dir / str(job.id)
    (d / "artifacts" / str(job.id) / "job_events").mkdir(parents=True)
    (d / "artifacts" / str(job.id) / "job_events" / "1-start.json").write_text("{}")
    (d / "private" / "fact_cache").mkdir(parents=True)
    (d / "private").chmod(0o700)
    (d / "private" / "fact_cache" / "localhost").write_text("{}")
    return job.id


def events_of(s, job_id: int) -> int:
    return s.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == job_id))


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance", JOB_RETENTION_DAYS=30)
    yield app
    app.extensions["pgaas"].store.dispose()


def run_task(app, name: str) -> None:
    svc = app.extensions["pgaas"]
    fn = next(fn for _interval, task, fn in svc.maintenance() if task == name)
    with svc.store.session() as s:
        fn(s)


def test_old_finished_jobs_lose_events_and_artifacts_and_keep_their_rows(app):
    svc = app.extensions["pgaas"]
    jobs_dir = Path(app.config["JOBS_DIR"])
    with svc.store.session() as s:
        old = {st: add_job(s, jobs_dir, st, 40, error="" if st == "succeeded" else f"it {st}")
               for st in ("succeeded", "failed", "canceled", "error")}
        recent = add_job(s, jobs_dir, "failed", 29, error="recent")
        running = add_job(s, jobs_dir, "running", 40, finished=False)
        queued = add_job(s, jobs_dir, "queued", 40, finished=False)
        before = {j.id: (j.kind, j.status, j.error, j.created_at, j.started_at, j.finished_at, j.params, j.result)
                  for j in s.scalars(select(Job))}

    run_task(app, "job pruning")

    with svc.store.session() as s:
        after = {j.id: (j.kind, j.status, j.error, j.created_at, j.started_at, j.finished_at, j.params, j.result)
                 for j in s.scalars(select(Job))}
        assert after == before  # every row stays, unchanged: the history of what happened
        for job_id in old.values():
            assert not (jobs_dir / str(job_id)).exists()
            assert events_of(s, job_id) == 0
            assert s.get(Job, job_id).events_pruned_at is not None
        for job_id in (recent, running, queued):
            assert (jobs_dir / str(job_id) / "private" / "fact_cache" / "localhost").is_file()
            assert events_of(s, job_id) == 3
            assert s.get(Job, job_id).events_pruned_at is None
        # a second run finds nothing more to do
        assert jobsvc.prune(s, str(jobs_dir), 30) == 0


def test_zero_keeps_everything_and_an_unremovable_directory_keeps_its_events(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance", JOB_RETENTION_DAYS=0)
    svc = app.extensions["pgaas"]
    jobs_dir = Path(app.config["JOBS_DIR"])
    try:
        with svc.store.session() as s:
            ancient = add_job(s, jobs_dir, "succeeded", 4000)
        run_task(app, "job pruning")
        with svc.store.session() as s:
            assert events_of(s, ancient) == 3 and (jobs_dir / str(ancient)).is_dir()
            # a job whose directory cannot go (here: a symlink, which rmtree refuses) keeps its events; others go
            blocked = add_job(s, jobs_dir, "failed", 40)
            target = tmp_path / "elsewhere"
            (jobs_dir / str(blocked)).rename(target)
            (jobs_dir / str(blocked)).symlink_to(target)
            s.commit()
            assert jobsvc.prune(s, str(jobs_dir), 30) == 1  # the ancient one
            assert events_of(s, blocked) == 3 and s.get(Job, blocked).events_pruned_at is None
            assert (target / "private" / "fact_cache" / "localhost").is_file()
            assert events_of(s, ancient) == 0 and not (jobs_dir / str(ancient)).exists()
    finally:
        svc.store.dispose()

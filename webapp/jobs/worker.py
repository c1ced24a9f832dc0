"""The job worker: claims queued jobs from the metadata store and runs them through ansible-runner, and between
jobs runs the periodic tasks it was given (metrics sampling, quota checks, ...) once per interval for the whole
control plane.

Several workers (threads of `pgaas run`, or `pgaas worker` processes sharing a PostgreSQL store) never take the same
job: a claim is a conditional UPDATE (status queued -> running) that only one of them can win. A running job's worker
beats a heartbeat; a job whose heartbeat went stale (its worker died) is failed with a reason at the next start or
sweep, and its handler puts the instance in a state from which a retry or a delete works.

Periodic tasks are claimed the same way, in `periodic_claims` (one row per task name): a conditional UPDATE moves
next_due_at from the past to now + interval, and only the worker that made it runs the task; the row is inserted at
the first claim ever, its primary key letting one of two first claims in. The others learn when the task is next due
and ask the store again only then. A worker that dies mid-run delays the task by one interval; a run that outlasts
its interval keeps its claim by beating (next_due_at at least stale_seconds ahead) and gives the task back, due at
once, when it ends, so runs of one task never overlap while their worker lives. Times are the workers' clocks, as
for job heartbeats: keep them synchronized (NTP).

An idle worker does not wait for its next poll to start a job: the store wakes it when one is queued, in this
process or another (webapp/store/wakeup.py: an in-process event after the commit; PostgreSQL's LISTEN/NOTIFY; on
SQLite a cheap probe of the highest job id). poll_seconds is the fallback when no wake-up comes.

Domain handlers and periodic tasks are passed in; this module knows nothing of Flask or HTTP.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from webapp.jobs.runner import Event, Heartbeat, run_playbook
from webapp.jobs.spec import Template
from webapp.jobs.types import Handler, NotRunnable, Outcome, RunSpec
from webapp.store import Store
from webapp.store.models import Job, JobEvent, PeriodicClaim, aware, utcnow

log = logging.getLogger(__name__)

MAX_RUNS = 12  # runs of one job: its first, then what the handler's then() chains (a restore: 2 + one per standby)
# ansible-runner's status of the last run -> the job's (webapp.store.models.JOB_STATUSES)
JOB_STATUS = {"successful": "succeeded", "failed": "failed", "canceled": "canceled", "timeout": "failed",
              "error": "error"}


def add_event(store: Store, job_id: int, ev: Event) -> None:
    with store.session() as s:
        s.add(JobEvent(job_id=job_id, event=ev.event, task=ev.task, host=ev.host, status=ev.status,
                       duration=ev.duration, message=ev.message))


def _worker_is_dead(worker_id: str | None) -> bool:
    """True when the worker ran on this machine and its process is gone (no need to wait for staleness)."""
    try:
        host, pid, _ = (worker_id or "").split(":")
        pid = int(pid)
    except ValueError:
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Worker:
    def __init__(self, store: Store, handlers: dict[str, Handler], *, jobs_dir: str, project_dir: str,
                 inventory, envvars: dict | None = None, heartbeat_seconds: float = 2.0,
                 stale_seconds: float = 30.0, poll_seconds: float = 2.0, worker_id: str | None = None,
                 periodic: list | None = None, background: list | None = None,
                 kinds: tuple[str, ...] | None = None, skip_kinds: tuple[str, ...] = (), wakeup: bool = True):
        self.store = store
        self.handlers = handlers
        self.jobs_dir = Path(jobs_dir)
        self.project_dir = project_dir
        self.inventory = inventory
        self.envvars = envvars or {}
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        # how long an idle worker waits at most before it looks for a queued job unasked: the fallback, since the
        # store wakes it when a job is queued (wakeup=False: it only polls, as before; bench/pickup.py's baseline)
        self.poll_seconds = poll_seconds
        self.wakeup = wakeup
        # (interval, name, fn(session)): maintenance run between jobs, each once per interval for all the workers
        # sharing the store (the name is its claim's key); the fourth item is when (time.monotonic()) this worker
        # next asks the store whether the task is due
        self.periodic = [[interval, name, fn, 0.0] for interval, name, fn in (periodic or [])]
        # fn(stop): long-running watchers started with the worker, in threads of their own (they must not wait
        # for a job to end), e.g. the leader guard
        self.background = list(background or [])
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        # which jobs this worker claims: only these kinds (None: any), never those (e.g. a pool of its own for the
        # long dumps and restores of tenant databases, so they never hold up the instances' jobs)
        self.kinds, self.skip_kinds = kinds, tuple(skip_kinds)

    # -- claiming -------------------------------------------------------------------------------------------
    def claim(self) -> int | None:
        with self.store.session() as s:
            q = select(Job.id).where(Job.status == "queued")
            if self.kinds is not None:
                q = q.where(Job.kind.in_(self.kinds))
            if self.skip_kinds:
                q = q.where(Job.kind.not_in(self.skip_kinds))
            candidates = s.scalars(q.order_by(Job.id).limit(5)).all()
            for job_id in candidates:
                now = utcnow()
                won = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(status="running", worker_id=self.worker_id, started_at=now, heartbeat_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount
                s.commit()
                if won == 1:
                    return job_id
        return None

    def recover_stale(self) -> list[int]:
        """Fail running jobs whose worker stopped beating; return their ids."""
        cutoff = utcnow() - timedelta(seconds=self.stale_seconds)
        failed = []
        with self.store.session() as s:
            for job in s.scalars(select(Job).where(Job.status == "running")).all():
                beat = aware(job.heartbeat_at) or aware(job.started_at)
                if beat is not None and beat >= cutoff and not _worker_is_dead(job.worker_id):
                    continue
                won = s.execute(
                    update(Job).where(Job.id == job.id, Job.status == "running", Job.worker_id == job.worker_id)
                    .values(status="failed", finished_at=utcnow(),
                            error=f"worker {job.worker_id} was lost mid-job (no heartbeat since "
                                  f"{beat.isoformat() if beat else 'start'}); retry or delete the instance")
                    .execution_options(synchronize_session=False)
                ).rowcount
                if won == 1:
                    s.refresh(job)
                    s.add(JobEvent(job_id=job.id, event="pgaas_worker_lost", status="failed", message=job.error))
                    handler = self.handlers.get(job.kind)
                    if handler:
                        handler.lost(s, job)
                    failed.append(job.id)
                s.commit()
        for job_id in failed:
            secrets_dir = self.jobs_dir / str(job_id) / "private"
            for f in secrets_dir.glob("secrets-*") if secrets_dir.exists() else []:
                f.unlink(missing_ok=True)
        return failed

    # -- running --------------------------------------------------------------------------------------------
    def run_one(self) -> int | None:
        job_id = self.claim()
        if job_id is None:
            return None
        try:
            self._run(job_id)
        except Exception as exc:  # a bug of ours: the job must still end, with the reason
            log.exception("job %s crashed", job_id)
            with self.store.session() as s:
                job = s.get(Job, job_id)
                job.status, job.finished_at = "error", utcnow()
                job.error = f"internal error in the worker: {type(exc).__name__}: {exc}"
                handler = self.handlers.get(job.kind)
                if handler:
                    handler.lost(s, job)
        return job_id

    def _cancel_requested(self, job_id: int) -> bool:
        with self.store.session() as s:
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def _beat(self, job_id: int) -> None:
        with self.store.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.worker_id == self.worker_id)
                      .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False))

    def _record_run(self, job_id: int, spec: RunSpec) -> None:
        """The run as an operator would replay it (services/replay.py): the playbook, its variables (our own
        templates apart), the names of its secrets (never a value) and the static inventory, if it has one."""
        inventory = None if callable(self.inventory) else os.path.relpath(self.inventory, self.project_dir)
        run = {"playbook": spec.playbook, "label": spec.label, "inventory": inventory,
               "vars": {k: v for k, v in spec.extravars.items() if not isinstance(v, Template)},
               "templates": {k: str(v) for k, v in spec.extravars.items() if isinstance(v, Template)},
               "secrets": sorted(spec.secrets)}
        with self.store.session() as s:
            job = s.get(Job, job_id)
            job.runs = [*(job.runs or []), run]

    def _play(self, job_id: int, spec: RunSpec, ident: str, cancellable: bool = True) -> Outcome:
        self._record_run(job_id, spec)
        add_event(self.store, job_id, Event("pgaas_run_start", task=spec.label or spec.playbook, status="start",
                                            message=f"ansible-runner: {spec.playbook}"))
        inventory, provider_dir = self.inventory, None
        if callable(inventory):
            # a provider's inventory for this run (it may hold key files): private, removed after the run
            provider_dir = self.jobs_dir / str(job_id) / "private" / f"provider-{ident}"
            provider_dir.mkdir(parents=True, exist_ok=True)
            for d in (provider_dir.parent.parent, provider_dir.parent, provider_dir):
                os.chmod(d, 0o700)
            inventory = inventory(provider_dir)
        try:
            return run_playbook(
                self.jobs_dir / str(job_id), ident, spec, project_dir=self.project_dir, inventory=inventory,
                envvars=self.envvars, on_event=lambda ev: add_event(self.store, job_id, ev),
                should_cancel=(lambda: self._cancel_requested(job_id)) if cancellable else None,
            )
        finally:
            if provider_dir is not None:
                shutil.rmtree(provider_dir, ignore_errors=True)

    def _run(self, job_id: int) -> None:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            handler = self.handlers[job.kind]
            try:
                spec = handler.prepare(s, job)
            except NotRunnable as exc:
                spec, refused = None, Outcome("failed", error=str(exc))
        if spec is None:
            add_event(self.store, job_id, Event("pgaas_not_runnable", status="failed", message=refused.error))
            self._end(job_id, handler, refused)
            return
        with Heartbeat(self.heartbeat_seconds, lambda: self._beat(job_id)):
            outcome = self._play(job_id, spec, f"{job_id}")
            runs = 1
            while outcome.status == "successful" and runs < MAX_RUNS:  # the handler may chain further runs
                try:
                    with self.store.session() as s:
                        spec = handler.then(s, s.get(Job, job_id), outcome)
                except NotRunnable as exc:  # finish still gets what the last run found
                    outcome = Outcome("failed", error=str(exc), artifact_data=outcome.artifact_data)
                    add_event(self.store, job_id, Event("pgaas_not_runnable", status="failed", message=outcome.error))
                    break
                if spec is None:
                    break
                runs += 1
                outcome = self._play(job_id, spec, f"{job_id}-{runs}")
            cleanup = None
            with self.store.session() as s:
                cleanup = handler.cleanup(s, s.get(Job, job_id), outcome)
            if cleanup is not None:
                # the cleanup of a canceled run must itself run to the end
                after = self._play(job_id, cleanup, f"{job_id}-cleanup", cancellable=False)
                if after.status != "successful":
                    outcome.error += f"; cleanup failed too: {after.error}"
                else:
                    add_event(self.store, job_id, Event("pgaas_cleanup", status="ok",
                                                        message="leftovers of the canceled run removed"))
        self._end(job_id, handler, outcome)

    def _end(self, job_id: int, handler: Handler, outcome: Outcome) -> None:
        with self.store.session() as s:
            job = s.get(Job, job_id)
            job.status = JOB_STATUS.get(outcome.status, "error")
            job.error = outcome.error
            job.finished_at = utcnow()
            handler.finish(s, job, outcome)

    def claim_periodic(self, name: str, interval: float) -> tuple[datetime | None, datetime]:
        """Claim the periodic task `name` if it is due: (claimed_at, next_due_at) when this worker won it,
        (None, next_due_at) when it is not due (another worker ran it, or runs it, this interval)."""
        now = utcnow()
        claim = dict(next_due_at=now + timedelta(seconds=interval), holder=self.worker_id, claimed_at=now)
        with self.store.session() as s:
            won = s.execute(
                update(PeriodicClaim).where(PeriodicClaim.name == name, PeriodicClaim.next_due_at <= now)
                .values(**claim).execution_options(synchronize_session=False)
            ).rowcount
            if won == 1:
                return now, claim["next_due_at"]
            due = s.scalar(select(PeriodicClaim.next_due_at).where(PeriodicClaim.name == name))
        if due is not None:
            return None, aware(due)
        try:
            with self.store.session() as s:  # the first claim ever: of two at once, the primary key takes one
                s.add(PeriodicClaim(name=name, **claim))
        except IntegrityError:
            return None, claim["next_due_at"]
        return now, claim["next_due_at"]

    def _hold_periodic(self, name: str, claimed_at: datetime, held: list) -> None:
        """A beat while a periodic task runs: keep it from falling due elsewhere (next_due_at at least
        stale_seconds ahead) as long as this claim is the task's latest."""
        until = utcnow() + timedelta(seconds=self.stale_seconds)
        with self.store.session() as s:
            if s.execute(
                update(PeriodicClaim)
                .where(PeriodicClaim.name == name, PeriodicClaim.holder == self.worker_id,
                       PeriodicClaim.claimed_at == claimed_at, PeriodicClaim.next_due_at < until)
                .values(next_due_at=until).execution_options(synchronize_session=False)
            ).rowcount:
                held.append(until)

    def _release_periodic(self, name: str, claimed_at: datetime, due: datetime) -> None:
        """After a run that held its claim: the task is due again one interval after the claim (at once if the run
        outlasted it), as if it had never been held."""
        with self.store.session() as s:
            s.execute(update(PeriodicClaim)
                      .where(PeriodicClaim.name == name, PeriodicClaim.holder == self.worker_id,
                             PeriodicClaim.claimed_at == claimed_at)
                      .values(next_due_at=due).execution_options(synchronize_session=False))

    def run_periodic(self) -> None:
        """Run each periodic task this worker wins the claim of. The store is asked about a task only when it is
        due as far as this worker knows (the next_due_at of its last answer), not at every loop."""
        for task in self.periodic:
            interval, name, fn, asked_next = task
            if time.monotonic() < asked_next:
                continue
            try:
                claimed_at, due = self.claim_periodic(name, interval)
            except Exception:
                log.exception("%s: the claim failed; trying again in %.0f s", name, interval)
                task[3] = time.monotonic() + interval
                continue
            task[3] = time.monotonic() + (due - utcnow()).total_seconds()
            if claimed_at is None:
                continue
            held: list = []
            try:
                # the first beat comes before the task falls due elsewhere, however short its interval
                with Heartbeat(min(self.heartbeat_seconds, interval / 2),
                               partial(self._hold_periodic, name, claimed_at, held)):
                    with self.store.session() as s:
                        fn(s)
            except Exception:
                log.exception("%s failed; due again in %.0f s", name, interval)
            if held:
                try:
                    self._release_periodic(name, claimed_at, due)
                except Exception:  # the hold then runs out by itself, stale_seconds after the last beat
                    log.exception("%s: giving the claim back failed", name)

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and run jobs until stop is set. An idle worker waits for the store's wake-up (store/wakeup.py: a
        job was queued, here or in another process), for its periodic work or its stale-job sweep to fall due, or
        for poll_seconds at most (the fallback), whichever comes first."""
        for fn in self.background:
            threading.Thread(target=fn, args=(stop,), name=f"{self.worker_id}-bg", daemon=True).start()
        wake = self.store.wakeup.subscribe() if self.wakeup else threading.Event()
        # a stop ends the wait at once too (the thread ends with it)
        threading.Thread(target=lambda: (stop.wait(), wake.set()), name=f"{self.worker_id}-stop", daemon=True).start()
        try:
            self.recover_stale()
            next_sweep = time.monotonic() + self.heartbeat_seconds
            while not stop.is_set():
                wake.clear()  # before the claim: a job queued from now on sets it again
                try:
                    if self.run_one() is not None:
                        continue
                    if time.monotonic() >= next_sweep:
                        next_sweep = time.monotonic() + self.heartbeat_seconds
                        self.recover_stale()
                    self.run_periodic()
                except Exception:
                    log.exception("worker loop error; continuing")
                wake.wait(self._idle_seconds(next_sweep))
        finally:
            if self.wakeup:
                self.store.wakeup.unsubscribe(wake)

    def _idle_seconds(self, next_sweep: float) -> float:
        """How long an idle worker may wait: until its next sweep or periodic ask, poll_seconds at most."""
        now = time.monotonic()
        due = min([next_sweep, *(task[3] for task in self.periodic)]) - now
        return min(self.poll_seconds, max(due, 0.01))

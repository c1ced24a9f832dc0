"""Jobs on the website: the list, each job's page with its events (polled as JSON with the session while it runs),
cancel and retry, and the download of a dump job's archive. A user who is not an administrator sees their own
jobs only."""
from __future__ import annotations

from flask import abort, redirect, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from webapp.extensions import services
from webapp.services import Conflict, NotFound, dumps, replay, retries, row_id
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.store.models import FINISHED_JOB_STATES
from webapp.ui import bp, forms
from webapp.ui.common import actor, admin_required, pop_reveal, record_failure

TERMINAL = FINISHED_JOB_STATES


def _visible_job(s, job_id):
    try:
        job = jobsvc.get(s, job_id)
    except NotFound:
        abort(404, f"There is no job {job_id}.")
    if not current_user.is_admin and job.created_by != current_user.username:
        abort(404, f"There is no job {job_id}.")
    return job


def _event_dict(e) -> dict:
    return {"id": e.id, "time": e.created_at.strftime("%H:%M:%S") if e.created_at else "", "event": e.event,
            "task": e.task, "host": e.host, "status": e.status,
            "duration": round(e.duration, 1) if e.duration is not None else None, "message": e.message}


def _failures(job, events) -> list[dict]:
    return [_event_dict(e) for e in events if e.status == "failed"]


@bp.get("/jobs")
@login_required
def jobs():
    with services().store.session() as s:
        rows = jobsvc.list_jobs(s, request.args.get("instance") or None,
                                created_by=None if current_user.is_admin else current_user.username)
    return render_template("ui/jobs.html", jobs=rows)


def _retryable(s, j) -> bool:
    if not current_user.is_admin:
        return False
    try:
        jobsvc.check_retryable(s, j)
    except Conflict:
        return False
    return True


@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id, status=200, action_error=None):
    revealed = pop_reveal("job", str(job_id))
    with services().store.session() as s:
        j = _visible_job(s, job_id)
        events = jobsvc.events_after(s, j.id, 0)
        retry_of = (j.params or {}).get("retry_of")
        page = render_template("ui/job.html", job=j, events=[_event_dict(e) for e in events],
                               failures=_failures(j, events), terminal=j.status in TERMINAL, revealed=revealed,
                               last_id=events[-1].id if events else 0, retryable=_retryable(s, j),
                               retry_of=retry_of if isinstance(retry_of, int) else None,
                               action_form=forms.EmptyForm(prefix="job"), action_error=action_error,
                               replay=replay.runs(j) if current_user.is_admin else [])
    return page, status


@bp.post("/jobs/<int:job_id>/cancel")
@login_required
def job_cancel(job_id):
    if not forms.EmptyForm(prefix="job").validate_on_submit():
        abort(400)
    try:
        with services().store.session() as s:
            j = _visible_job(s, job_id)
            jobsvc.cancel(s, j, actor(), on_queued_cancel=isvc.on_queued_cancel)
    except Conflict as exc:
        record_failure("job.cancel", "job", str(job_id), exc)
        return job(job_id, status=409, action_error=exc.message)
    return redirect(url_for("ui.job", job_id=job_id))


@bp.post("/jobs/<int:job_id>/retry")
@admin_required(operation=("job.retry", "job", "job_id"))
def job_retry(job_id):
    if not forms.EmptyForm(prefix="job").validate_on_submit():
        abort(400)
    try:
        with services().store.session() as s:
            new_id = retries.retry_job(s, _visible_job(s, job_id), actor()).id
    except (Conflict, NotFound) as exc:
        record_failure("job.retry", "job", str(job_id), exc)
        return job(job_id, status=409, action_error=exc.message)
    return redirect(url_for("ui.job", job_id=new_id))


@bp.get("/jobs/<int:job_id>/events")
@login_required
def job_events(job_id):
    """JSON for the job page's poller (session auth): the job's state and the events after ?after=N."""
    after = row_id(request.args.get("after")) or 0
    with services().store.session() as s:
        j = _visible_job(s, job_id)
        events = jobsvc.events_after(s, j.id, after)
        failures = _failures(j, jobsvc.events_after(s, j.id, 0)) if j.status in TERMINAL else []
        return {"id": j.id, "status": j.status, "terminal": j.status in TERMINAL, "error": j.error or "",
                "started": j.started_at.strftime("%H:%M:%S") if j.started_at else None,
                "finished": j.finished_at.strftime("%H:%M:%S") if j.finished_at else None,
                "events": [_event_dict(e) for e in events], "failures": failures,
                "cancel_requested": bool(j.cancel_requested),
                "download_url": url_for("ui.job_dump", job_id=j.id)
                if j.kind == "database_dump" and j.status == "succeeded" else None,
                "retryable": j.status in TERMINAL and _retryable(s, j),
                "instance_url": url_for("ui.instance", name=j.instance_name)
                if j.instance_name and current_user.is_admin else None}


@bp.get("/jobs/<int:job_id>/dump")
@login_required
def job_dump(job_id):
    """The archive a dump job made (pg_dump -Fc), for whoever may see the job."""
    try:
        with services().store.session() as s:
            path, filename = dumps.download(s, _visible_job(s, job_id))
    except (NotFound, Conflict) as exc:
        abort(404 if isinstance(exc, NotFound) else 409, exc.message)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=filename,
                     conditional=True, max_age=0)

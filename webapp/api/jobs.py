from flask import g, request, send_file, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.pagination import page, paged, whole_number
from webapp.extensions import services
from webapp.services import MAX_ROW_ID, Forbidden, NotFound
from webapp.services import dumps, replay, retries
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc


def _visible(job):
    if not g.is_admin and job.created_by != g.username:
        raise NotFound(f"no job {job.id}")
    return job


@bp.get("/jobs")
@auth_required()
def list_jobs():
    """Admins: every job; others: the jobs they started."""
    pg = page()
    with services().store.session() as s:
        jobs = jobsvc.list_jobs(s, request.args.get("instance") or None, pg.fetch, pg.offset,
                                created_by=None if g.is_admin else g.username)
        return paged("jobs", jobs, pg, ser.job)


@bp.get("/jobs/<job_id>")
@auth_required()
def get_job(job_id):
    after = whole_number("after", 0, 0, MAX_ROW_ID)  # an event id
    with services().store.session() as s:
        job = _visible(jobsvc.get(s, job_id))
        return ser.job(job, jobsvc.events_after(s, job.id, after), replay.runs(job) if g.is_admin else None)


@bp.post("/jobs/<job_id>/cancel")
@auth_required(operation=("job.cancel", "job", "job_id"))
def cancel_job(job_id):
    audited("job.cancel", "job", str(job_id))
    with services().store.session() as s:
        job = _visible(jobsvc.get(s, job_id))
        jobsvc.cancel(s, job, actor(), on_queued_cancel=isvc.on_queued_cancel)
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.get("/jobs/<job_id>/dump")
@auth_required()
def download_dump(job_id):
    """The archive of a succeeded dump job (pg_dump custom format), streamed from disk."""
    with services().store.session() as s:
        path, filename = dumps.download(s, _visible(jobsvc.get(s, job_id)))
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=filename,
                     conditional=True, max_age=0)


@bp.post("/jobs/<job_id>/retry")
@auth_required(operation=("job.retry", "job", "job_id"))
def retry_job(job_id):
    """Run a failed or canceled job again: 202 with the new job. Administrators retry any job; users their own
    dumps, deletes and restores of databases."""
    json_body(audit=("job.retry", "job", str(job_id)))
    with services().store.session() as s:
        old = jobsvc.get(s, job_id)
        if not g.is_admin:
            if old.kind not in dumps.KINDS:
                raise Forbidden("this needs an administrator (users retry their own database dumps, deletes and "
                                "restores)")
            _visible(old)
        job = retries.retry_job(s, old, actor())
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}

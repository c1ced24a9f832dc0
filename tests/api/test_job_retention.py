"""A job past JOB_RETENTION_DAYS, as the API shows it: its row stays (kind, status, error, times), its events are
gone and the answer says so (events_pruned), never a 500 or a silent empty list. And the serializers build their
URLs with no request at all (the CLI prints them), the same as url_for's in a request."""
from datetime import timedelta
from pathlib import Path

from flask import url_for

from tests.api.test_openapi import validator
from webapp.api import serializers as ser
from webapp.store.models import Instance, Job, utcnow


def prune_a_canceled_job(live) -> tuple[int, int]:
    """A create canceled before it ran, then made 40 days old (with an artifact directory), and a second job made
    now; the worker's real 'job pruning' task runs. Returns (old job id, new job id)."""
    created = live.admin.post("/api/v1/instances", json={"name": "main"})
    assert created.status_code == 202, created.text
    old = created.json()["job"]["id"]
    assert live.admin.post(f"/api/v1/jobs/{old}/cancel").status_code == 202
    svc = live.app.extensions["pgaas"]
    artifacts = Path(live.app.config["JOBS_DIR"]) / str(old) / "artifacts"
    artifacts.mkdir(parents=True)
    (artifacts / "stdout").write_text("the run's output")
    with svc.store.session() as s:
        job = s.get(Job, old)
        job.created_at, job.finished_at = (t - timedelta(days=40) for t in (job.created_at, job.finished_at))
    new = live.admin.post("/api/v1/instances/main/retry")
    assert new.status_code == 202, new.text
    fn = next(fn for _interval, name, fn in svc.maintenance() if name == "job pruning")
    with svc.store.session() as s:
        fn(s)
    assert not artifacts.parent.exists()
    return old, new.json()["job"]["id"]


def test_a_pruned_job_keeps_its_row_and_says_its_events_were_pruned(live):
    old, new = prune_a_canceled_job(live)
    r = live.admin.get(f"/api/v1/jobs/{old}")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["events"] == [] and job["events_pruned"] is True and job["events_pruned_at"]
    assert (job["kind"], job["status"], job["instance"], job["created_by"]) == ("instance_create", "canceled",
                                                                                "main", "root")
    assert "canceled by root" in job["error"] and job["finished_at"] and job["created_at"] < job["finished_at"]
    spec = live.anon.get("/api/v1/openapi.json").json()
    validator(spec, "#/components/schemas/Job").validate(job)
    assert "events_pruned" in spec["components"]["schemas"]["Job"]["properties"]
    # ?after= works the same on a pruned job; the list says which jobs were pruned
    assert live.admin.get(f"/api/v1/jobs/{old}?after=5").json()["events"] == []
    listed = {j["id"]: j["events_pruned"] for j in live.admin.get("/api/v1/jobs").json()["jobs"]}
    assert listed == {old: True, new: False}
    fresh = live.admin.get(f"/api/v1/jobs/{new}").json()
    assert fresh["events"] and fresh["events_pruned"] is False and fresh["events_pruned_at"] is None


def test_serializer_urls_need_no_request_and_match_url_for(live):
    inst = Instance(name="main", status="failed", provider="local", admin_user="dbadmin", secrets_enc="x",
                    meta={"tls": {"ca_cert": "-----BEGIN CERTIFICATE-----"}})
    job = Job(id=7, kind="database_dump", status="succeeded", instance_name="main", created_at=utcnow())
    outside = ser.instance(inst, None, admin=True), ser.job(job), ser.job_ref(job)
    for root in ("", "/pgaas"):  # a proxy's X-Forwarded-Prefix becomes the script root
        with live.app.test_request_context(base_url=f"http://localhost{root}/"):
            body, j = ser.instance(inst, None, admin=True), ser.job(job)
            assert body["url"] == url_for("api.get_instance", name="main") == f"{root}/api/v1/instances/main"
            assert body["tls"]["ca_cert_url"] == url_for("api.get_instance_ca", name="main")
            assert j["url"] == url_for("api.get_job", job_id=7)
            assert j["result"]["download"] == url_for("api.download_dump", job_id=7)
            if not root:
                assert (body, j, ser.job_ref(job)) == outside

"""Retrying a job through the API (POST /jobs/{id}/retry), with no worker running: the job states are driven by
cancel, so nothing needs a container. On SQLite and PostgreSQL metadata."""
from tests.api.test_api import error_of


def test_retry_a_canceled_create_then_refusals(live):
    r = live.admin.post("/api/v1/instances", json={"name": "retry-me"})
    assert r.status_code == 202, r.text
    first = r.json()["job"]["id"]
    # queued and never started: neither retryable, nor by a database user
    assert "only a failed or canceled job" in error_of(live.admin.post(f"/api/v1/jobs/{first}/retry"), 409)["message"]
    error_of(live.alice.post(f"/api/v1/jobs/{first}/retry"), 403)
    assert live.admin.post(f"/api/v1/jobs/{first}/cancel").status_code == 202
    assert live.admin.get("/api/v1/instances/retry-me").json()["status"] == "failed"

    r = live.admin.post(f"/api/v1/jobs/{first}/retry")
    assert r.status_code == 202, r.text
    second = r.json()["job"]
    assert second["id"] != first and second["kind"] == "instance_create" and second["status"] == "queued"
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{second['id']}")
    job = live.admin.get(f"/api/v1/jobs/{second['id']}").json()
    assert job["result"] == {} and any(e["message"] == f"retry of job {first}" for e in job["events"])
    assert live.admin.get("/api/v1/instances/retry-me").json()["status"] == "creating"
    # the first job is no longer the newest of its instance: retrying it would undo what came after
    assert "not the newest job" in error_of(live.admin.post(f"/api/v1/jobs/{first}/retry"), 409)["message"]
    error_of(live.admin.post("/api/v1/jobs/999999/retry"), 404)
    error_of(live.admin.post(f"/api/v1/jobs/{second['id']}/retry", json={"x": 1}), 400)
    events = live.admin.get("/api/v1/admin/audit?object=" + str(first)).json()["events"]
    assert [e["action"] for e in events if e["outcome"] == "ok"] == ["job.retry", "job.cancel"]  # newest first

"""API behaviour that needs no container: auth, validation, 404/409, on SQLite and PostgreSQL metadata."""
import pytest
from sqlalchemy import select


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return body["error"]


def test_every_endpoint_needs_a_token(live):
    for method, path in [("get", "/api/v1/instances"), ("post", "/api/v1/instances"),
                         ("get", "/api/v1/instances/main"), ("delete", "/api/v1/instances/main"),
                         ("get", "/api/v1/jobs"), ("get", "/api/v1/jobs/1"), ("post", "/api/v1/jobs/1/cancel"),
                         ("post", "/api/v1/instances/main/retry")]:
        err = error_of(getattr(live.anon, method)(path, json={}), 401)
        assert "token" in err["message"]
    bad = live.anon.__class__(live.base, "pgaas_not-a-real-token")
    error_of(bad.get("/api/v1/instances"), 401)


def test_tokens(live):
    error_of(live.anon.post("/api/v1/tokens", json={"username": "root", "password": "wrong-password"}), 401)
    error_of(live.anon.post("/api/v1/tokens", json={"username": "nobody", "password": "whatever-123"}), 401)
    error_of(live.anon.post("/api/v1/tokens", json={"username": "root"}), 400)
    error_of(live.anon.post("/api/v1/tokens", data="not json", headers={"Content-Type": "application/json"}), 400)
    r = live.anon.post("/api/v1/tokens", json={"username": "root", "password": "root-password-1"})
    assert r.status_code == 201 and r.json()["token"].startswith("pgaas_")
    # tokens are stored hashed, never as given
    from webapp.store.models import ApiToken

    with live.app.extensions["pgaas"].store.session() as s:
        stored = [t.token_hash for t in s.scalars(select(ApiToken))]
    assert r.json()["token"] not in stored and len(stored) == 3


def test_non_admin_cannot_create_or_delete_instances(live):
    error_of(live.alice.post("/api/v1/instances", json={"name": "main"}), 403)
    error_of(live.alice.delete("/api/v1/instances/main"), 403)


@pytest.mark.parametrize("body,field", [
    ({"name": "Main"}, "name"), ({"name": "ab"}, "name"), ({"name": "1abc"}, "name"), ({"name": "a" * 41}, "name"),
    ({"name": "bad_name"}, "name"), ({"name": "trailing-"}, "name"), ({"name": 42}, "name"),
    ({"name": "okname", "synchronous": "yes"}, "synchronous"), ({"name": "okname", "replicas": 0}, "replicas"),
    ({"name": "okname", "replicas": "1"}, "replicas"), ({"name": "okname", "memory_mb": 1}, "memory_mb"),
    ({"name": "okname", "cpus": -1}, "cpus"), ({"name": "okname", "storage_gb": 1.5}, "storage_gb"),
    ({"name": "okname", "admin_password": "short"}, "admin_password"),
    ({"name": "okname", "admin_password": "has'quote-in-it"}, "admin_password"),
])
def test_create_validation(live, body, field):
    err = error_of(live.admin.post("/api/v1/instances", json=body), 422)
    assert err["details"]["field"] == field


def test_create_rejects_malformed_bodies(live):
    error_of(live.admin.post("/api/v1/instances", json={}), 400)
    error_of(live.admin.post("/api/v1/instances", json=["main"]), 400)
    err = error_of(live.admin.post("/api/v1/instances", json={"name": "main", "colour": "red"}), 400)
    assert "colour" in err["message"]


def test_create_queues_a_job_and_duplicate_names_conflict(live):
    r = live.admin.post("/api/v1/instances", json={"name": "main", "admin_password": "A-good-password-1"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["Location"].endswith("/api/v1/instances/main")
    assert body["admin_password"] == "A-good-password-1" and body["admin_user"] == "dbadmin"
    assert body["job"]["status"] == "queued" and body["instance"]["status"] == "creating"
    inst = body["instance"]
    assert inst["same_host"] is True and "share one host" in inst["placement_note"]
    assert "target_session_attrs=read-write" in inst["uri"] and "A-good-password-1" not in inst["uri"]
    ports = {inst["primary"]["port"]} | {m["port"] for m in inst["replicas"]}
    assert len(ports) == 2 and inst["uri"].count("127.0.0.1:") == 2
    # the password never comes back again
    shown = live.admin.get("/api/v1/instances/main")
    assert shown.status_code == 200 and "A-good-password-1" not in shown.text
    # a second job on the same instance, or the same name again, is refused
    error_of(live.admin.post("/api/v1/instances", json={"name": "main"}), 409)
    err = error_of(live.admin.delete("/api/v1/instances/main"), 409)
    assert "busy" in err["message"]
    # a second instance gets other ports
    other = live.admin.post("/api/v1/instances", json={"name": "other"}).json()["instance"]
    assert not ports & ({other["primary"]["port"]} | {m["port"] for m in other["replicas"]})


def test_secrets_are_encrypted_at_rest(live):
    r = live.admin.post("/api/v1/instances", json={"name": "main", "admin_password": "A-good-password-1"})
    assert r.status_code == 202
    from webapp.store.models import Instance

    svc = live.app.extensions["pgaas"]
    with svc.store.session() as s:
        inst = s.scalar(select(Instance).where(Instance.name == "main"))
        assert "A-good-password-1" not in inst.secrets_enc
        secrets = svc.box.open(inst.secrets_enc)
    assert secrets["pgaas_admin_password"] == "A-good-password-1"
    assert len(secrets["pgaas_superuser_password"]) >= 32 and len(secrets["pgaas_replication_password"]) >= 32
    # and the control plane's own passwords are never returned
    tls = secrets.pop("tls")  # the instance's CA and certificates: only the certificates are public
    keys = [tls["ca_key"], tls["client"]["key"], *(c["key"] for c in tls["certs"].values())]
    assert all("PRIVATE KEY" in k and k.splitlines()[1] not in inst.secrets_enc for k in keys)
    for path in ("/api/v1/instances/main", "/api/v1/instances", "/api/v1/instances/main/ca.crt"):
        text = live.admin.get(path).text
        assert all(v not in text for v in secrets.values())
        assert all(k.splitlines()[1] not in text for k in keys)


def test_unknown_things_are_404(live):
    error_of(live.admin.get("/api/v1/instances/nope"), 404)
    error_of(live.admin.delete("/api/v1/instances/nope"), 404)
    error_of(live.admin.post("/api/v1/instances/nope/retry"), 404)
    error_of(live.admin.get("/api/v1/jobs/999999"), 404)
    error_of(live.admin.get("/api/v1/jobs/abc"), 404)
    error_of(live.admin.post("/api/v1/jobs/999999/cancel"), 404)
    error_of(live.admin.get("/api/v1/no-such-endpoint"), 404)
    error_of(live.admin.get("/api/v1/jobs/1?after=x"), 400)
    error_of(live.admin.put("/api/v1/instances"), 405)


def test_cancel_of_a_queued_create_fails_the_instance_and_retry_requeues(live):
    job = live.admin.post("/api/v1/instances", json={"name": "main"}).json()["job"]
    r = live.admin.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202
    got = live.admin.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["status"] == "canceled" and "before it started" in got["error"]
    assert [e["status"] for e in got["events"]] == ["queued", "canceled"]
    inst = live.admin.get("/api/v1/instances/main").json()
    assert inst["status"] == "failed" and "retry or delete" in inst["status_reason"]
    error_of(live.admin.post(f"/api/v1/jobs/{job['id']}/cancel"), 409)
    r = live.admin.post("/api/v1/instances/main/retry")
    assert r.status_code == 202
    assert live.admin.get("/api/v1/instances/main").json()["status"] == "creating"
    error_of(live.admin.post("/api/v1/instances/main/retry"), 409)


def test_users_see_their_own_jobs_only(live):
    job = live.admin.post("/api/v1/instances", json={"name": "main"}).json()["job"]
    error_of(live.alice.get(f"/api/v1/jobs/{job['id']}"), 404)
    assert live.alice.get("/api/v1/jobs").json()["jobs"] == []
    assert [j["id"] for j in live.admin.get("/api/v1/jobs?instance=main").json()["jobs"]] == [job["id"]]
    # non-admins see instances as their name, status and version only (tests/api/test_front_door.py)
    assert set(live.alice.get("/api/v1/instances/main").json()) == {"name", "status", "version", "url", "ca_cert_url"}
    assert "metadata" in live.admin.get("/api/v1/instances/main").json()

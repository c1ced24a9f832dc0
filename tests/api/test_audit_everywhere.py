"""One operation through the three edges, the JSON API, the website's forms (CSRF token and all) and the `pgaas`
console command, writes the same audit row: the same action, object and detail, the actor who asked, and the
outcome (ok, failed for a refused value or a conflict, denied for someone who may not). The success rows come from
the services themselves (webapp/services/audit.py), the failures and denials from each edge. Real HTTP to the app
on loopback, a real `pgaas` process on the same SQLite file, no worker: a create or delete only queues its job."""
from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Live, make_app
from tests.ui.conftest import csrf_token, web_session

PGAAS = str(Path(sys.executable).parent / "pgaas")
PORTS = {"PORT_RANGE_START": 34000, "PORT_RANGE_END": 34999}  # placement only: no member ever starts


@pytest.fixture
def edges(tmp_path):
    url = f"sqlite:///{tmp_path / 'pgaas.sqlite'}"
    srv = Live(make_app(url, tmp_path / "instance", **PORTS), workers=0)
    env = {**os.environ, "PGAAS_DATABASE_URL": url, "PGAAS_INSTANCE_PATH": str(tmp_path / "instance"),
           **{f"PGAAS_{k}": str(v) for k, v in PORTS.items()}}

    def cli(*args):
        return subprocess.run([PGAAS, *args], env=env, capture_output=True, text=True, timeout=120)

    yield srv, cli
    srv.close()


def form_post(web, base: str, page: str, path: str, fields: dict, prefix: str = "") -> object:
    """Post a website form the way a browser does: with the CSRF token of the page it is on."""
    token = csrf_token(web.get(base + page, timeout=30).text)
    name = f"{prefix}-csrf_token" if prefix else "csrf_token"
    return web.post(base + path, data={name: token, **fields}, allow_redirects=False, timeout=30)


def rows(srv, action: str) -> list[tuple]:
    """(actor, object, outcome, detail) of the action's audit rows, oldest first; the console's actor as cli."""
    events = srv.admin.get("/api/v1/admin/audit?limit=1000").json()["events"]
    return [("cli" if e["actor"] == CLI_ACTOR else e["actor"], e["object"], e["outcome"], e["detail"])
            for e in reversed(events) if e["action"] == action]


CLI_ACTOR = f"cli:{getpass.getuser()}"


def test_the_api_the_website_and_the_console_audit_alike(edges):
    srv, cli = edges
    base, web = srv.base, web_session(srv.base, "root", "root-password-1")
    alice_web = web_session(srv.base, "alice", "alice-password-1")

    # -- user.create: ok from each edge, then the same name again: failed, with the service's words -------------
    def create_user(api: int, ui: int, console_ok: bool):
        assert srv.admin.post("/api/v1/users", json={"username": "via-api", "password": "via-api-pass-1"}) \
            .status_code == api
        assert form_post(web, base, "/users", "/users", {"username": "via-ui", "password": "via-ui-pass-1"}) \
            .status_code == ui
        assert (cli("user", "create", "via-cli").returncode == 0) is console_ok

    create_user(201, 302, True)
    create_user(409, 200, False)  # the same names again
    assert rows(srv, "user.create") == [
        ("root", "via-api", "ok", "is_admin=False"), ("root", "via-ui", "ok", "is_admin=False"),
        ("cli", "via-cli", "ok", "is_admin=False"),
        ("root", "via-api", "failed", "user 'via-api' already exists"),
        ("root", "via-ui", "failed", "user 'via-ui' already exists"),
        ("cli", "via-cli", "failed", "user 'via-cli' already exists")]

    # -- instance.create: ok (the job is queued), a duplicate (failed), and alice, no administrator (denied) ----
    r = srv.admin.post("/api/v1/instances", json={"name": "audit-api"})
    assert r.status_code == 202, r.text
    jobs = {"audit-api": r.json()["job"]["id"]}
    r = form_post(web, base, "/instances/new", "/instances/new", {"name": "audit-ui", "replicas": "1"})
    assert r.status_code == 302 and "/jobs/" in r.headers["Location"], r.text
    jobs["audit-ui"] = int(r.headers["Location"].rsplit("/", 1)[1])
    created = cli("instance", "create", "audit-cli")
    assert created.returncode == 0, created.stderr
    jobs["audit-cli"] = int(created.stdout.split("job ")[1].split()[0])
    assert srv.admin.post("/api/v1/instances", json={"name": "audit-api"}).status_code == 409
    assert form_post(web, base, "/instances/new", "/instances/new", {"name": "audit-ui"}).status_code == 200
    assert cli("instance", "create", "audit-cli").returncode != 0
    assert srv.alice.post("/api/v1/instances", json={"name": "by-alice"}).status_code == 403
    assert form_post(alice_web, base, "/databases", "/instances/new", {"name": "by-alice-too"}).status_code == 403
    exists = "instance {!r} already exists"
    assert rows(srv, "instance.create") == [
        ("root", "audit-api", "ok", f"job {jobs['audit-api']}"), ("root", "audit-ui", "ok", f"job {jobs['audit-ui']}"),
        ("cli", "audit-cli", "ok", f"job {jobs['audit-cli']}"),
        ("root", "audit-api", "failed", exists.format("audit-api")),
        ("root", "audit-ui", "failed", exists.format("audit-ui")),
        ("cli", "audit-cli", "failed", exists.format("audit-cli")),
        ("alice", "by-alice", "denied", "this needs an administrator"),
        ("alice", "by-alice-too", "denied", "this needs an administrator")]

    # -- instance.delete while the create is queued: failed (busy) from each edge ------------------------------
    def delete_ui(name):
        return form_post(web, base, f"/instances/{name}", f"/instances/{name}/delete", {"del-confirm": name},
                         prefix="del")

    assert srv.admin.delete("/api/v1/instances/audit-api").status_code == 409
    assert delete_ui("audit-ui").status_code == 422
    assert cli("instance", "delete", "audit-cli").returncode != 0
    assert [(a, o, out) for a, o, out, _ in rows(srv, "instance.delete")] == [
        ("root", "audit-api", "failed"), ("root", "audit-ui", "failed"), ("cli", "audit-cli", "failed")]
    assert all("is busy with job" in d for *_, d in rows(srv, "instance.delete"))

    # -- job.cancel (the API and the website; the console has no cancel): the same row ------------------------
    assert srv.admin.post(f"/api/v1/jobs/{jobs['audit-api']}/cancel").status_code == 202
    for name in ("audit-ui", "audit-cli"):
        r = form_post(web, base, f"/jobs/{jobs[name]}", f"/jobs/{jobs[name]}/cancel", {}, prefix="job")
        assert r.status_code == 302, r.text
    assert srv.admin.post(f"/api/v1/jobs/{jobs['audit-api']}/cancel").status_code == 409  # it ended already
    assert rows(srv, "job.cancel") == [
        ("root", str(jobs["audit-api"]), "ok", "instance_create, was queued"),
        ("root", str(jobs["audit-ui"]), "ok", "instance_create, was queued"),
        ("root", str(jobs["audit-cli"]), "ok", "instance_create, was queued"),
        ("root", str(jobs["audit-api"]), "failed", f"job {jobs['audit-api']} already ended (canceled)")]

    # -- instance.delete of the failed instances: ok from each edge, the delete job named -----------------------
    r = srv.admin.delete("/api/v1/instances/audit-api")
    assert r.status_code == 202, r.text
    deleted = {"audit-api": r.json()["job"]["id"]}
    r = delete_ui("audit-ui")
    assert r.status_code == 302, r.text
    deleted["audit-ui"] = int(r.headers["Location"].rsplit("/", 1)[1])
    gone = cli("instance", "delete", "audit-cli")
    assert gone.returncode == 0, gone.stderr
    deleted["audit-cli"] = int(gone.stdout.split("delete job ")[1].split()[0])
    assert [row for row in rows(srv, "instance.delete") if row[2] == "ok"] == [
        ("root", name, "ok", f"job {deleted[name]}, force=False") for name in ("audit-api", "audit-ui")] + [
        ("cli", "audit-cli", "ok", f"job {deleted['audit-cli']}, force=False")]

    # -- job.retry by alice (no administrator): denied from the API and the website alike ------------------------
    assert srv.alice.post(f"/api/v1/jobs/{jobs['audit-api']}/retry").status_code == 403
    r = form_post(alice_web, base, "/databases", f"/jobs/{jobs['audit-ui']}/retry", {}, prefix="job")
    assert r.status_code == 403
    assert [(a, o, out) for a, o, out, _ in rows(srv, "job.retry")] == [
        ("alice", str(jobs["audit-api"]), "denied"), ("alice", str(jobs["audit-ui"]), "denied")]

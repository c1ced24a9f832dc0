"""Backups, the control plane's side (issue 15), on SQLite and PostgreSQL metadata, over real HTTP, with the real
job handlers and worker objects but no playbook run: the create handler's prepare (what the deploy gets for
backups), the policy and its refusals, 409 on a busy instance, the schedule claimed once by two workers, the window
from the cached rows, the alerts, who may do what, and the website's forms with their CSRF token.

Nothing here claims that a backup ran: the instance is marked available by hand after its create job's prepare
(no deploy runs), and the cache is filled through services.backups.record_result with the stanza object of
`pgbackrest info --output=json` as pgBackRest 2.45 printed it on this machine (the contract in the helper's brief),
to test the parsing and the window. The real backup runs in tests/e2e once playbooks/instance_backup.yml exists."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select

from tests.conftest import seeded_live
from tests.ui.conftest import csrf_token, web_session
from webapp.store.models import BackupRepo

# placement only: no member ever starts (the range of helper bkctl)
CONFIG = {"PORT_RANGE_START": 36100, "PORT_RANGE_END": 36199, "BACKUPS_ENABLED": True, "PROBE_TIMEOUT": 0.2,
          "BACKUP_REPO_HOST": "10.88.0.1", "BACKUP_REPO_PORT": 36190}
INFO = {"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1", "max": "000000010000000000000017",
                     "min": "000000010000000000000003"}],
        "backup": [{"archive": {"start": "000000010000000000000005", "stop": "000000010000000000000005"},
                    "backrest": {"format": 5, "version": "2.45"}, "database": {"id": 1, "repo-key": 1},
                    "error": False, "info": {"delta": 349510029, "repository": {"delta": 39912345, "size": 39912345},
                                             "size": 349510029},
                    "label": "20261201-202230F", "lsn": {"start": "0/5000028", "stop": "0/5000100"}, "prior": None,
                    "reference": None, "timestamp": {"start": 1764620550, "stop": 1764620558}, "type": "full"}],
        "cipher": "aes-256-cbc", "db": [{"id": 1, "repo-key": 1, "system-id": 7448, "version": "15"}],
        "name": "x-1", "repo": [{"cipher": "aes-256-cbc", "key": 1, "status": {"code": 0, "message": "ok"}}],
        "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"}}


@pytest.fixture
def srv(database_url, tmp_path, seeds):
    live = seeded_live(seeds, database_url, tmp_path / "instance", **CONFIG)
    yield live
    live.close()


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["message"], body
    return body["error"]


def fits(srv, model: str, body) -> None:
    """The answer fits its schema in the served OpenAPI document."""
    spec = srv.anon.get("/api/v1/openapi.json").json()
    registry = Registry().with_resource("urn:spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    jsonschema.Draft202012Validator({"$ref": f"urn:spec#/components/schemas/{model}"}, registry=registry) \
        .validate(body)


def backed_up(srv, name: str):
    """An instance created through the API whose create job was prepared by the real handler (the deploy's
    RunSpec is returned), then marked available as its deploy would leave it."""
    from webapp.services import instances as isvc
    from webapp.store.models import Job

    assert srv.admin.post("/api/v1/instances", json={"name": name}).status_code == 202
    svc = srv.app.extensions["pgaas"]
    worker = svc.make_worker(maintenance=False)
    with svc.store.session() as s:
        job = s.scalar(select(Job).where(Job.instance_name == name, Job.kind == "instance_create"))
        spec = worker.handlers["instance_create"].prepare(s, job)
        job.status = "succeeded"
        isvc.get(s, name).status = "available"
    return spec


def stanza(srv, name: str):
    from webapp.services import backups
    from webapp.services import instances as isvc

    with srv.app.extensions["pgaas"].store.session() as s:
        st = backups.stanza_of(s, isvc.get(s, name))
        s.expunge(st)
        return st


def test_create_gives_the_deploy_its_backup_vars_and_the_api_its_policy(srv):
    spec = backed_up(srv, "bkctl-a")
    st = stanza(srv, "bkctl-a")
    members = spec.extravars["pgaas_members"]
    assert spec.extravars["pgaas_backup"] == {"enabled": True, "stanza": st.stanza, "repo_host": "10.88.0.1",
                                              "repo_port": 36190}
    assert st.stanza.startswith("bkctl-a-") and st.stanza.removeprefix("bkctl-a-").isdigit()
    ports = [p for m in members for p in (m["pg_port"], m["api_port"], m["backup_port"])]
    assert len(set(ports)) == 6 and all(36100 <= p <= 36199 for p in ports), members
    tls = spec.secrets["pgaas_backup_tls"]
    assert set(tls["members"]) == {m["name"] for m in members} and "BEGIN CERTIFICATE" in tls["ca_cert"]
    assert "pgaas_backup_tls" not in spec.extravars and "BEGIN" not in str(spec.extravars)
    # the repository is configured by a job of its own, queued with the create
    jobs = srv.admin.get("/api/v1/jobs").json()["jobs"]
    assert [j["kind"] for j in jobs if j["kind"] == "backup_repo"] == ["backup_repo"]

    body = srv.admin.get("/api/v1/instances/bkctl-a/backups").json()
    assert body["stanza"] == st.stanza and body["backups"] == [] and body["window"] is None
    assert body["policy"] == {"full_every_days": 7, "diff_every_days": 1, "retention_type": "count",
                              "retention_full": 2} and body["next"] == "full"

    # the policy: refusals name the field, nothing changes; then a change
    for bad, field in (({"full_every_days": 0}, "full_every_days"), ({"retention_type": "weekly"}, "retention_type"),
                       ({"diff_every_days": 7}, "diff_every_days"), ({"retention_full": 101}, "retention_full"),
                       ({"full_every_days": "7"}, "full_every_days")):
        err = error_of(srv.admin.put("/api/v1/instances/bkctl-a/backup_policy", json=bad), 422)
        assert err["details"]["field"] == field, err
    error_of(srv.admin.put("/api/v1/instances/bkctl-a/backup_policy", json={"every": 3}), 400)
    r = srv.admin.put("/api/v1/instances/bkctl-a/backup_policy", json={"retention_type": "time",
                                                                        "retention_full": 30})
    assert r.status_code == 200, r.text
    assert srv.admin.get("/api/v1/instances/bkctl-a/backup_policy").json()["policy"] == {
        "full_every_days": 7, "diff_every_days": 1, "retention_type": "time", "retention_full": 30}

    # back up now: 202 and a job; again while it is queued: 409; a bad type: 422; an unknown instance: 404
    error_of(srv.admin.post("/api/v1/instances/bkctl-a/backups", json={"type": "weekly"}), 422)
    r = srv.admin.post("/api/v1/instances/bkctl-a/backups", json={"type": "diff"})
    assert r.status_code == 202 and r.json()["job"]["kind"] == "instance_backup", r.text
    assert "busy" in error_of(srv.admin.post("/api/v1/instances/bkctl-a/backups", json={}), 409)["message"]
    error_of(srv.admin.post("/api/v1/instances/nope/backups", json={}), 404)
    fits(srv, "BackupList", srv.admin.get("/api/v1/instances/bkctl-a/backups").json())
    fits(srv, "BackupPolicyOf", srv.admin.get("/api/v1/instances/bkctl-a/backup_policy").json())

    # the console: the same list, and the same refusal while the job waits (audited as the console's)
    if srv.app.config["DATABASE_URL"].startswith("sqlite"):
        env = {**os.environ, "PGAAS_DATABASE_URL": srv.app.config["DATABASE_URL"],
               "PGAAS_INSTANCE_PATH": srv.app.instance_path}
        pgaas = [os.path.join(os.path.dirname(sys.executable), "pgaas"), "backup"]
        out = subprocess.run([*pgaas, "list", "bkctl-a"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and f'"stanza": "{st.stanza}"' in out.stdout, out.stderr
        out = subprocess.run([*pgaas, "start", "bkctl-a", "--type", "incr"], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 1 and "busy" in out.stderr, (out.stdout, out.stderr)
        # the repository's key, for the administrator's safe: the sealed one, printed, audited
        out = subprocess.run([*pgaas, "export-key"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        exported = json.loads(out.stdout)
        svc = srv.app.extensions["pgaas"]
        with svc.store.session() as s:
            sealed = svc.box.open(s.get(BackupRepo, 1).secrets_enc)["cipher_pass"]
        assert exported["repo_cipher_pass"] == sealed and exported["repo_cipher_type"] == "aes-256-cbc"
        assert exported["repo_path"] == srv.app.config["BACKUP_REPO_DIR"]
        events = srv.admin.get("/api/v1/admin/audit?object=pgaas-backup-repo").json()["events"]
        assert [(e["action"], e["actor"].startswith("cli:")) for e in events] == [("backup.export_key", True)]
        assert sealed not in str(events)
        # the console's restore: the same refusals, audited as the console's; nothing queued
        restore = [pgaas[0], "restore", "bkctl-a"]
        out = subprocess.run([*restore, "--confirm", "bkctl-b"], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 1 and '"confirm": "bkctl-a"' in out.stderr and "Traceback" not in out.stderr, out
        out = subprocess.run([*restore, "--confirm", "bkctl-a", "--to", "noon"], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 1 and "no backup yet" in out.stderr, out  # before the time is even read
        refused = [e for e in srv.admin.get("/api/v1/admin/audit?object=bkctl-a").json()["events"]
                   if e["action"] == "instance.restore"]
        assert len(refused) == 2 and all(e["outcome"] != "ok" and e["actor"].startswith("cli:") for e in refused)

    # who may: admins; a read token reads only; alice (no admin) and nobody at all are refused
    read = srv.anon.post("/api/v1/tokens", json={"username": "root", "password": "root-password-1",
                                                 "scope": "read"}).json()["token"]
    ro = type(srv.admin)(srv.base, read)
    assert ro.get("/api/v1/instances/bkctl-a/backups").status_code == 200
    error_of(ro.post("/api/v1/instances/bkctl-a/backups", json={}), 403)
    error_of(ro.put("/api/v1/instances/bkctl-a/backup_policy", json={"full_every_days": 3}), 403)
    for path in ("backups", "backup_policy"):
        error_of(srv.alice.get(f"/api/v1/instances/bkctl-a/{path}"), 403)
        error_of(srv.anon.get(f"/api/v1/instances/bkctl-a/{path}"), 401)
    error_of(srv.alice.post("/api/v1/instances/bkctl-a/backups", json={}), 403)
    audit = srv.admin.get("/api/v1/admin/audit?object=bkctl-a").json()["events"]
    seen = {(e["action"], e["outcome"]) for e in audit}
    assert {("instance.backup", "ok"), ("instance.backup", "failed"), ("instance.backup", "denied"),
            ("instance.backup_policy", "ok"), ("instance.backup_policy", "failed")} <= seen, seen


def test_an_instance_made_while_backups_were_off_has_none(srv):
    srv.app.extensions["pgaas"].config["BACKUPS_ENABLED"] = False
    spec = backed_up(srv, "bkctl-off")
    assert "pgaas_backup" not in spec.extravars and "pgaas_backup_tls" not in spec.secrets
    assert all("backup_port" not in m for m in spec.extravars["pgaas_members"])
    assert "no backups" in error_of(srv.admin.post("/api/v1/instances/bkctl-off/backups", json={}), 409)["message"]


def test_window_cache_and_alerts(srv):
    from webapp.services import backups
    from webapp.store.models import Backup, BackupStanza

    backed_up(srv, "bkctl-w")
    st = stanza(srv, "bkctl-w")
    store = srv.app.extensions["pgaas"].store
    with store.session() as s:
        row = s.get(BackupStanza, st.stanza)
        backups.record_result(s, row, {"info": INFO, "archiver": {
            "last_archived_wal": "000000010000000000000017", "last_archived_time": "2026-12-01 20:40:00+00",
            "failed_count": "0", "last_failed_time": None}})
        # an older backup with page errors: listed, but not a start of the window
        row.backups.append(Backup(label="20261130-100000F", type="full", error=True,
                                  started_at=datetime(2026, 11, 30, 10, tzinfo=timezone.utc),
                                  stopped_at=datetime(2026, 11, 30, 10, 1, tzinfo=timezone.utc)))
    body = srv.admin.get("/api/v1/instances/bkctl-w/backups").json()
    fits(srv, "BackupList", body)
    good = next(b for b in body["backups"] if b["label"] == "20261201-202230F")
    assert good == {"label": "20261201-202230F", "type": "full", "started_at": "2025-12-01T20:22:30+00:00",
                    "stopped_at": "2025-12-01T20:22:38+00:00", "size_bytes": 349510029,
                    "repo_size_bytes": 39912345, "error": False,
                    "wal": {"start": "000000010000000000000005", "stop": "000000010000000000000005"}}
    assert body["window"] == {"from": "2025-12-01T20:22:38+00:00", "to": "2026-12-01T20:40:00+00:00"}
    assert body["archiver"]["last_archived_wal"] == "000000010000000000000017"
    assert body["next"] == "full"  # the only good full is a year old

    # a later info without them (expired by the retention): they leave the cache, the window with them
    with store.session() as s:
        backups.record_result(s, s.get(BackupStanza, st.stanza), {"info": {**INFO, "backup": []}})
    body = srv.admin.get("/api/v1/instances/bkctl-w/backups").json()
    assert body["backups"] == [] and body["window"] is None

    # alerts: no good full for longer than the policy allows; the last archive attempt failed
    now = datetime.now(timezone.utc)
    with store.session() as s:
        row = s.get(BackupStanza, st.stanza)
        row.created_at = now - timedelta(days=8)
        row.last_archived_time, row.last_failed_time, row.archive_failed_count = \
            now - timedelta(minutes=5), now - timedelta(minutes=1), 3
    kinds = {(a["kind"], a["severity"]) for a in srv.admin.get("/api/v1/alerts").json()["alerts"]
             if a["instance"] == "bkctl-w"}
    assert kinds == {("backup_age", "critical"), ("archiving", "critical")}, kinds
    for a in srv.admin.get("/api/v1/alerts").json()["alerts"]:
        fits(srv, "Alert", a)
    # archiving that works, but behind: three segments wait and the last archived one is 5 minutes old
    with store.session() as s:
        row = s.get(BackupStanza, st.stanza)
        row.last_failed_time, row.last_archived_wal, row.current_wal = \
            None, "000000010000000000000017", "00000001000000000000001B"
    alerts = [a for a in srv.admin.get("/api/v1/alerts").json()["alerts"] if a["kind"] == "archiving"]
    assert [(a["severity"], "3 segment(s) wait" in a["message"]) for a in alerts] == [("warning", True)], alerts


def test_a_restore_in_place_is_refused_until_it_is_safe_and_then_chains_its_runs(srv):
    """The refusals of POST .../restore (who, confirm, the window, busy, no backup yet), then the job's runs as the
    real handler chains them: the restore, a full backup, each other member rebuilt."""
    from webapp.jobs.types import Outcome
    from webapp.services import backups
    from webapp.store.models import BackupStanza, Job

    backed_up(srv, "bkctl-r")
    url = "/api/v1/instances/bkctl-r/restore"
    assert "no backup yet" in error_of(srv.admin.post(url, json={"confirm": "bkctl-r"}), 409)["message"]
    st = stanza(srv, "bkctl-r")
    store = srv.app.extensions["pgaas"].store
    with store.session() as s:
        backups.record_result(s, s.get(BackupStanza, st.stanza), {"info": INFO})  # a full ending 2025-12-01 20:22:38
    window_from = "2025-12-01T20:22:38+00:00"
    assert "confirm" in error_of(srv.admin.post(url, json={}), 400)["message"]
    err = error_of(srv.admin.post(url, json={"confirm": "bkctl-x"}), 422)
    assert err["details"]["field"] == "confirm" and '"confirm": "bkctl-r"' in err["message"], err
    for bad in ("yesterday", "2026-12-01T10:00:00", 1764620558, "2026-12-01T10:00:00+00:00" + "0" * 60):
        err = error_of(srv.admin.post(url, json={"confirm": "bkctl-r", "target_time": bad}), 422)
        assert err["details"]["field"] == "target_time", err
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    for outside in ("2025-12-01T20:22:00Z", future):
        err = error_of(srv.admin.post(url, json={"confirm": "bkctl-r", "target_time": outside}), 422)
        assert f"from {window_from} to now" in err["message"] and err["details"]["window"]["from"] == window_from
    tenant = srv.admin.post("/api/v1/users", json={"username": "rita", "password": "rita-password-1"})
    assert tenant.status_code == 201, tenant.text
    error_of(srv.anon.as_user("rita", "rita-password-1").post(url, json={"confirm": "bkctl-r"}), 403)
    error_of(srv.admin.post("/api/v1/instances/nope/restore", json={"confirm": "nope"}), 404)
    with store.session() as s:  # nothing was queued by any of these
        assert s.scalar(select(Job).where(Job.kind == "instance_restore")) is None

    r = srv.admin.post(url, json={"confirm": "bkctl-r", "target_time": "2026-01-02T03:04:05.5+01:00"})
    assert r.status_code == 202, r.text
    body = r.json()
    fits(srv, "RestoreStarted", body)
    assert body["target_time"] == "2026-01-02T02:04:05.500000+00:00" and "2026-01-02T02:04:05" in body["lost"]
    assert "is restoring" in error_of(srv.admin.post(url, json={"confirm": "bkctl-r"}), 409)["message"]
    audit = srv.admin.get("/api/v1/admin/audit?object=bkctl-r").json()["events"]
    assert any(e["action"] == "instance.restore" and e["outcome"] == "ok" for e in audit), audit

    # the handler's runs, as the worker chains them (no playbook runs here)
    handler = srv.app.extensions["pgaas"].make_worker(maintenance=False).handlers["instance_restore"]
    ok = Outcome("successful")
    with store.session() as s:
        job = s.get(Job, body["job"]["id"])
        specs = [handler.prepare(s, job)]
        while specs[-1] is not None:
            job.runs = [*(job.runs or []), {"playbook": specs[-1].playbook}]
            specs.append(handler.then(s, job, ok))
    assert [x.playbook for x in specs[:-1]] == ["playbooks/instance_restore.yml", "playbooks/instance_backup.yml",
                                               "playbooks/instance_rebuild.yml"]
    restore, backup, rebuild = specs[:3]
    assert restore.extravars["pgaas_restore_target"] == "2026-01-02 02:04:05.500000+00"
    assert restore.extravars["pgaas_backup"]["stanza"] == st.stanza and not restore.secrets
    assert backup.extravars["pgaas_backup_type"] == "full"
    assert rebuild.extravars["pgaas_rebuild_member"] == "pgaas-bkctl-r-1" and rebuild.secrets
    shown = srv.admin.get("/api/v1/instances/bkctl-r").json()
    assert shown["status"] == "restoring" and f"job {job.id} restores it" in shown["status_reason"], shown

    # the restore itself failed (the members are stopped): failed, and a retry restores again
    with store.session() as s:
        job = s.get(Job, body["job"]["id"])
        job.runs, job.result, job.status = [{"playbook": "playbooks/instance_restore.yml"}], {}, "failed"
        handler.finish(s, job, Outcome("failed", error="pgBackRest: unable to find backup"))
    shown = srv.admin.get("/api/v1/instances/bkctl-r").json()
    assert shown["status"] == "failed" and "a retry restores again" in shown["status_reason"], shown
    r = srv.admin.post(f"/api/v1/jobs/{body['job']['id']}/retry")
    assert r.status_code == 202, r.text
    again = r.json()["job"]["id"]
    assert srv.admin.get("/api/v1/instances/bkctl-r").json()["status"] == "restoring"
    # that one restored, then its backup failed: the first member serves (available); a retry would restore again
    # and lose what was written since, so it is refused
    with store.session() as s:
        job = s.get(Job, again)
        job.runs = [{"playbook": "playbooks/instance_restore.yml"}, {"playbook": "playbooks/instance_backup.yml"}]
        job.result, job.status = {"restore": {"restored_member": "pgaas-bkctl-r-0"}}, "failed"
        handler.finish(s, job, Outcome("failed", error="pgBackRest: repository full"))
    shown = srv.admin.get("/api/v1/instances/bkctl-r").json()
    assert shown["status"] in ("available", "degraded"), shown
    assert "take a backup, then rebuild" in shown["status_reason"], shown
    assert "would restore it again" in error_of(srv.admin.post(f"/api/v1/jobs/{again}/retry"), 409)["message"]
    # a restore that went through: available, no reason left, and the instance's metadata names it
    r = srv.admin.post(url, json={"confirm": "bkctl-r"})
    assert r.status_code == 202 and r.json()["target_time"] is None and "nothing archived" in r.json()["lost"], r.text
    with store.session() as s:
        job = s.get(Job, r.json()["job"]["id"])
        job.runs = [{"playbook": p} for p in ("playbooks/instance_restore.yml", "playbooks/instance_backup.yml",
                                             "playbooks/instance_rebuild.yml")]
        job.result, job.status = {"restore": {"restored_member": "pgaas-bkctl-r-0"}}, "succeeded"
        handler.finish(s, job, Outcome("successful"))
    shown = srv.admin.get("/api/v1/instances/bkctl-r").json()
    assert shown["status_reason"] in ("", None) or shown["status"] == "degraded", shown
    assert shown["metadata"]["last_restore"]["job"] == r.json()["job"]["id"], shown["metadata"]


def test_the_schedule_is_claimed_once_by_two_workers(srv):
    from webapp.jobs.worker import Worker
    from webapp.services import backups
    from webapp.store.models import Job

    backed_up(srv, "bkctl-s")
    svc = srv.app.extensions["pgaas"]
    handlers = svc.make_worker(maintenance=False).handlers
    workers = [Worker(svc.store, handlers, periodic=[(60.0, "backups.schedule", backups.schedule)],
                      **svc.worker_settings()) for _ in range(2)]
    gate = threading.Barrier(2)

    def tick(w):
        gate.wait()
        w.run_periodic()

    threads = [threading.Thread(target=tick, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for w in workers:  # and again at once: not due for another interval
        w.run_periodic()
    with svc.store.session() as s:
        jobs = list(s.scalars(select(Job).where(Job.kind == "instance_backup")))
        assert [(j.instance_name, j.params["type"], j.params["scheduled"], j.created_by) for j in jobs] == \
            [("bkctl-s", "full", True, "pgaas-maintenance")]
        # busy (that job is queued): the schedule itself queues nothing more
        assert backups.schedule(s) == []


def test_the_website_section_and_its_forms_need_the_csrf_token(srv):
    backed_up(srv, "bkctl-ui")
    web = web_session(srv.base, "root", "root-password-1")
    page = web.get(srv.base + "/instances/bkctl-ui", timeout=30)
    assert page.status_code == 200 and 'id="backups"' in page.text and "Back up now" in page.text
    token = csrf_token(page.text)  # the page's forms share the session's token

    def post(path, fields, with_token=True, prefix="bk"):
        data = {**fields, **({f"{prefix}-csrf_token": token} if with_token else {})}
        return web.post(srv.base + f"/instances/bkctl-ui/{path}", data=data, allow_redirects=False, timeout=30)

    assert post("backups", {"bk-type": "full"}, with_token=False).status_code == 400
    policy = {"bp-full_every_days": "7", "bp-diff_every_days": "9", "bp-retention_type": "count",
              "bp-retention_full": "2"}
    assert post("backup_policy", policy, with_token=False, prefix="bp").status_code == 400
    r = post("backup_policy", policy, prefix="bp")  # diff not less than full: the service's words on the page
    assert r.status_code == 422 and "diff_every_days must be less than full_every_days" in r.text
    assert post("backup_policy", {**policy, "bp-diff_every_days": "2"}, prefix="bp").status_code == 302
    assert srv.admin.get("/api/v1/instances/bkctl-ui/backup_policy").json()["policy"]["diff_every_days"] == 2
    # restore in place: no backup yet (409, the form says why); then with one, each refusal beside its field
    restore = {"rs-target_time": "", "rs-confirm": "bkctl-ui"}
    assert post("restore", restore, with_token=False, prefix="rs").status_code == 400
    r = post("restore", restore, prefix="rs")
    assert r.status_code == 409 and "no backup yet" in r.text, r.text[-2000:]
    from webapp.services import backups
    from webapp.store.models import BackupStanza
    with srv.app.extensions["pgaas"].store.session() as s:
        backups.record_result(s, s.get(BackupStanza, stanza(srv, "bkctl-ui").stanza), {"info": INFO})
    r = post("restore", {**restore, "rs-confirm": "bkctl-u"}, prefix="rs")
    assert r.status_code == 422 and 'id="rs-confirm-error"' in r.text and "confirm" in r.text
    r = post("restore", {**restore, "rs-target_time": "2020-01-01T00:00:00Z"}, prefix="rs")
    assert r.status_code == 422 and 'id="rs-target_time-error"' in r.text and "recoverable window" in r.text
    assert not [j for j in srv.admin.get("/api/v1/jobs").json()["jobs"] if j["kind"] == "instance_restore"]
    r = post("backups", {"bk-type": "incr"})
    assert r.status_code == 302 and "/jobs/" in r.headers["Location"]
    r = post("restore", restore, prefix="rs")  # busy now
    assert r.status_code == 409 and "busy" in r.text
    r = post("backups", {"bk-type": "full"})  # busy now
    assert r.status_code == 409 and "busy" in r.text
    repo_job = next(j for j in srv.admin.get("/api/v1/jobs").json()["jobs"] if j["kind"] == "backup_repo")
    page = web.get(srv.base + f"/jobs/{repo_job['id']}", timeout=30)  # the repository's job names no instance
    assert page.status_code == 200 and "/instances/_backup_repo" not in page.text
    alice = web_session(srv.base, "alice", "alice-password-1")
    assert alice.get(srv.base + "/instances/bkctl-ui", timeout=30).status_code in (403, 404)

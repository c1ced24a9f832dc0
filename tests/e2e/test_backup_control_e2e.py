"""A backup end to end through the control plane: a pair created through the API with backups on (its own
repository container and ports), a full backup through POST .../backups run by a real worker with the real
playbooks (backup_repo.yml first, as the instance is not in the repository yet, then instance_backup.yml), the list
and the recoverable window from what pgBackRest reported, a restore in place to a point in time (the first member
restored, a full backup, the standby rebuilt from it), then the delete, after which the stanza and its backups
stay ("deleted, restorable") and the repository stops letting the old members in."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from datetime import timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

from tests.conftest import REPO, Live, make_app

PROJECT = REPO
IMAGE = os.environ.get("PGAAS_IMAGE", "localhost/pgaas-postgres:15")  # the image setup.sh builds, with pgBackRest
REPO_NAME, REPO_PORT = "pgaas-backup-repo-bkctl", 36192
PASSWORD = "Restore-admin-password-1"


@pytest.fixture
def cp(metadata_pg, tmp_path):
    repo_dir = Path(tempfile.mkdtemp(prefix="pgaas-bkctl-e2e-repo-"))
    live = Live(make_app(metadata_pg.new_database(), tmp_path / "instance", PROJECT_DIR=str(PROJECT), IMAGE=IMAGE,
                         PORT_RANGE_START=36100, PORT_RANGE_END=36189, BACKUPS_ENABLED=True,
                         BACKUP_REPO_NAME=REPO_NAME, BACKUP_REPO_PORT=REPO_PORT, BACKUP_REPO_DIR=str(repo_dir),
                         SAMPLE_SECONDS=2, BACKUP_SCHEDULE_SECONDS=3600), workers=2)
    yield live
    r = live.admin.delete("/api/v1/instances/bkctl-e2e?force=true")
    if r.status_code == 202:
        live.admin.wait_job(r.json()["job"]["id"], timeout=180)
    live.close()
    subprocess.run(["podman", "rm", "-f", "-t", "0", REPO_NAME], capture_output=True, timeout=120,
                   env={**os.environ, "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")})
    shutil.rmtree(f"/var/lib/pgaas/{REPO_NAME}", ignore_errors=True)
    shutil.rmtree(repo_dir, ignore_errors=True)


def test_a_backup_and_a_restore_in_place_through_the_api_and_the_stanza_after_the_delete(cp):
    from webapp.services import backups
    from webapp.store.models import BackupStanza

    t0 = time.monotonic()
    r = cp.admin.post("/api/v1/instances", json={"name": "bkctl-e2e", "admin_password": PASSWORD})
    assert r.status_code == 202, r.text
    created = r.json()["instance"]
    cp.admin.wait_ok(r.json()["job"]["id"], timeout=300)
    t1 = time.monotonic()
    r = cp.admin.post("/api/v1/instances/bkctl-e2e/backups", json={"type": "full"})
    assert r.status_code == 202, r.text
    assert r.json()["job"]["kind"] == "instance_backup"
    assert cp.admin.post("/api/v1/instances/bkctl-e2e/backups", json={}).status_code == 409  # busy
    job = cp.admin.wait_ok(r.json()["job"]["id"], timeout=300)
    t2 = time.monotonic()
    print(f"create {t1 - t0:.1f} s, first backup (repository + stanza + full) {t2 - t1:.1f} s")
    assert job["result"]["backup"]["type"] == "full" and "info" not in job["result"]

    body = cp.admin.get("/api/v1/instances/bkctl-e2e/backups").json()
    assert [b["type"] for b in body["backups"]] == ["full"], body
    full = body["backups"][0]
    assert full["size_bytes"] > 0 and full["repo_size_bytes"] > 0 and full["wal"]["start"], full
    assert body["window"]["from"] == full["stopped_at"] and body["window"]["to"] >= body["window"]["from"]
    assert body["next"] is None  # a full just now: nothing due

    # a restore in place to T: the rows committed before T are back, so is a table dropped after T, and the rows
    # committed after T are gone; the standby, rebuilt from the full backup taken after the restore, has the same
    with psycopg.connect(created["uri"], password=PASSWORD, connect_timeout=10, autocommit=True) as c:
        c.execute("CREATE TABLE pitr (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        c.execute("CREATE TABLE dropped_later AS SELECT generate_series(1, 5) AS n")
        for i in range(1, 21):
            c.execute("INSERT INTO pitr (id) VALUES (%s)", (i,))
        time.sleep(1)
        target = c.execute("SELECT clock_timestamp()").fetchone()[0]
        time.sleep(1)
        for i in range(21, 31):
            c.execute("INSERT INTO pitr (id) VALUES (%s)", (i,))
        c.execute("DROP TABLE dropped_later")
    r = cp.admin.post("/api/v1/instances/bkctl-e2e/restore", json={"target_time": target.isoformat(),
                                                                   "confirm": "bkctl-e2e"})
    assert r.status_code == 202, r.text
    assert r.json()["target_time"] == target.astimezone(timezone.utc).isoformat(), r.json()
    t3 = time.monotonic()
    job = cp.admin.wait_ok(r.json()["job"]["id"], timeout=600)
    print(f"restore in place (archive, restore, recovery, full backup, standby rebuilt): {time.monotonic() - t3:.1f} s")
    assert [x["playbook"] for x in job["replay"]] == ["playbooks/instance_restore.yml", "playbooks/instance_backup.yml",
                                                      "playbooks/instance_rebuild.yml"], job["replay"]
    assert job["result"]["restore"]["archived_first"] is True, job["result"]
    for uri in (created["uri"], created["readonly_uri"]):
        with psycopg.connect(uri, password=PASSWORD, connect_timeout=10) as c:
            ids = c.execute("SELECT array_agg(id ORDER BY id), max(at) FROM pitr").fetchone()
            assert ids[0] == list(range(1, 21)) and ids[1] <= target, (uri, ids)
            assert c.execute("SELECT count(*) FROM dropped_later").fetchone()[0] == 5
            standby = c.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            assert standby is (uri == created["readonly_uri"]), uri
    body = cp.admin.get("/api/v1/instances/bkctl-e2e/backups").json()
    assert [b["type"] for b in body["backups"]] == ["full", "full"], body  # the new timeline's first backup
    labels = [b["label"] for b in body["backups"]]
    shown = cp.admin.get("/api/v1/instances/bkctl-e2e").json()
    assert shown["status"] == "available" and shown["metadata"]["last_restore"]["job"] == job["id"], shown

    r = cp.admin.delete("/api/v1/instances/bkctl-e2e?force=true")
    cp.admin.wait_ok(r.json()["job"]["id"], timeout=180)
    svc = cp.app.extensions["pgaas"]
    with svc.store.session() as s:
        st = s.scalar(select(BackupStanza).where(BackupStanza.instance_name == "bkctl-e2e"))
        assert st.deleted_at is not None and sorted(b.label for b in st.backups) == sorted(labels)
        assert backups.clients(s) == []  # the repository's next run lets nobody in for it

"""Dumps and restores of tenant databases as jobs, on the real pair: the request answers 202 at once, the worker runs
pg_dump/pg_restore through a playbook, the archive downloads from a separate GET and restores into another database
with every row; another tenant can neither dump, download nor restore into a database that is not theirs."""
from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import requests

from tests.api.test_api import error_of
from tests.e2e.helpers import INST, secrets_of

pytestmark = pytest.mark.slow
ROWS_SUM = "select count(*), md5(string_agg(v, ',' order by id)) from items"


@pytest.fixture(scope="module", autouse=True)
def ca_here(cp, pair, tmp_path_factory):
    """With TLS the URIs name the instance's CA file relative to the client's folder: run where it is."""
    where = tmp_path_factory.mktemp("client")
    r = cp.admin.get(f"/api/v1/instances/{INST}/ca.crt")
    if r.status_code == 200:
        (where / f"pgaas-{INST}-ca.crt").write_text(r.text)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(where)
        yield where


@pytest.fixture(scope="module")
def owners(cp, pair):
    for name in ("dora", "dave"):
        r = cp.admin.post("/api/v1/users", json={"username": name, "password": f"{name}-password-1"})
        assert r.status_code in (201, 409), r.text
    return cp.anon.as_user("dora", "dora-password-1"), cp.anon.as_user("dave", "dave-password-1")


def _db(api, name, fill=0):
    r = api.post(f"/api/v1/instances/{INST}/databases", json={"name": name})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    if fill:
        with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
            c.execute("create table items (id int primary key, v text)")
            c.execute("insert into items select i, md5(i::text) from generate_series(1, %s) i", (fill,))
    return db


def _rows(db):
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5) as c:
        return c.execute(ROWS_SUM).fetchone()


def _started(r):
    """A job-starting answer: 202, the job not ended yet (the request did not wait for it), a Location."""
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] in ("queued", "running"), job
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    return job


def _download(api, job):
    r = api.session.get(api.base + job["result"]["download"], timeout=60, stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in r.headers["Content-Disposition"] and ".dump" in r.headers["Content-Disposition"]
    return b"".join(r.iter_content(65536))


def _restore(api, name, archive: bytes, **query):
    return api.session.post(f"{api.base}/api/v1/instances/{INST}/databases/{name}/restore", params=query,
                            data=archive, headers={"Content-Type": "application/octet-stream"}, timeout=60)


@pytest.fixture(scope="module")
def exported(cp, owners):
    """dora's database with 20000 rows, dumped by a job; (source, job, archive)."""
    dora, _ = owners
    src = _db(dora, "dora_src", fill=20000)
    job = _started(dora.post(f"/api/v1/instances/{INST}/databases/dora_src/dump"))
    early = dora.get(f"/api/v1/jobs/{job['id']}/dump")  # before the job is done: refused, saying why
    if early.status_code != 200:
        assert "once the job succeeded" in error_of(early, 409)["message"]
    done = dora.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return src, done, _download(dora, done)


def test_dump_runs_as_a_job_with_live_events_and_downloads(cp, owners, exported):
    dora, _ = owners
    _src, job, archive = exported
    assert job["kind"] == "database_dump" and job["instance"] is None and job["created_by"] == "dora"
    tasks = [e["task"] for e in job["events"]]
    assert "Dump the database in pg_dump's custom format" in tasks
    assert any("database size" in e["message"] for e in job["events"])
    assert archive.startswith(b"PGDMP") and len(archive) == job["result"]["size_bytes"]
    assert "file" not in job["result"] and job["result"]["expires_at"]
    # kept where the control plane keeps dumps, 0600, never among the job's ansible artifacts
    svc = cp.app.extensions["pgaas"]
    path = Path(svc.config["DUMPS_DIR"]) / "_exports" / f"{job['id']}.dump"
    assert path.read_bytes() == archive and oct(path.stat().st_mode & 0o777) == "0o600"
    job_dir = Path(svc.config["JOBS_DIR"]) / str(job["id"])
    assert not list(job_dir.rglob("*.dump"))
    superuser = secrets_of(cp, INST)["pgaas_superuser_password"]
    for f in job_dir.rglob("*"):
        if f.is_file():
            assert superuser.encode() not in f.read_bytes(), f


def test_restore_into_another_database_brings_every_row(cp, owners, exported):
    dora, _ = owners
    src, _job, archive = exported
    dst = _db(dora, "dora_dst")
    job = _started(_restore(dora, "dora_dst", archive))
    done = dora.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert done["kind"] == "database_restore" and done["result"]["restored_from"] == "upload"
    assert _rows(dst) == _rows(src) == (20000, _rows(src)[1])
    with psycopg.connect(dst["uri"], password=dst["password"], connect_timeout=5) as c:
        assert c.execute("select tableowner from pg_tables where tablename = 'items'").fetchone()[0] == "dora_dst"
        assert c.execute("select count(*) from pg_roles where rolname like 'pgaas_restore_%'").fetchone()[0] == 0
    # a restore over the same objects fails, and leaves the database as it was; with clean=true it replaces them
    with psycopg.connect(dst["uri"], password=dst["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("delete from items where id > 10")
        c.execute("create table mine (x int)")
    failed = dora.wait_job(_started(_restore(dora, "dora_dst", archive))["id"], timeout=120)
    assert failed["status"] == "failed"
    assert "dora_dst is as it was before" in failed["error"] and "already exists" in failed["error"], failed["error"]
    assert _rows(dst)[0] == 10
    retried = dora.post(f"/api/v1/jobs/{failed['id']}/retry")  # the owner retries their own restore
    assert retried.status_code == 202, retried.text
    assert dora.wait_job(retried.json()["job"]["id"], timeout=120)["status"] == "failed"  # same cause, same end
    uploads = Path(cp.app.extensions["pgaas"].config["DUMPS_DIR"]) / "_uploads"
    waiting = set(uploads.glob("*"))  # the failed restore's upload waits for a retry
    done = dora.wait_job(_started(_restore(dora, "dora_dst", archive, clean="true"))["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert _rows(dst) == _rows(src)
    with psycopg.connect(dst["uri"], password=dst["password"], connect_timeout=5) as c:
        assert c.execute("select count(*) from mine").fetchone()[0] == 0  # not in the archive: kept
    assert set(uploads.glob("*")) <= waiting  # a restore that succeeded removed its upload


def test_another_tenant_cannot_dump_download_or_restore(cp, owners, exported):
    """The attack: dave, a tenant of the same instance, goes for dora's database and her dump."""
    _, dave = owners
    _src, job, archive = exported
    uploads = Path(cp.app.extensions["pgaas"].config["DUMPS_DIR"]) / "_uploads"
    before = set(uploads.glob("*")) if uploads.exists() else set()
    error_of(dave.post(f"/api/v1/instances/{INST}/databases/dora_src/dump"), 404)
    error_of(_restore(dave, "dora_dst", archive), 404)
    error_of(_restore(dave, "dora_dst", archive, clean="true"), 404)
    error_of(dave.post(f"/api/v1/instances/{INST}/databases/dora_src/restore"), 404)  # no final dump of his
    error_of(dave.get(f"/api/v1/jobs/{job['id']}/dump"), 404)
    error_of(dave.get(f"/api/v1/jobs/{job['id']}"), 404)
    error_of(dave.post(f"/api/v1/jobs/{job['id']}/retry"), 404)
    error_of(dave.delete(f"/api/v1/instances/{INST}/databases/dora_src"), 404)
    after = set(uploads.glob("*")) if uploads.exists() else set()
    assert after == before  # nothing of his was even stored
    # his own database takes dora's archive (it is data he was given), but only into his database
    mine = _db(dave, "dave_db")
    done = dave.wait_job(_started(_restore(dave, "dave_db", archive))["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert _rows(mine)[0] == 20000
    with psycopg.connect(mine["uri"], password=mine["password"], connect_timeout=5) as c:
        assert c.execute("select tableowner from pg_tables where tablename = 'items'").fetchone()[0] == "dave_db"


def test_bad_input_is_refused_with_a_clear_message(cp, owners):
    dora, _ = owners
    error_of(dora.post(f"/api/v1/instances/{INST}/databases/no_such_db/dump"), 404)
    error_of(_restore(dora, "no_such_db", b"PGDMP..."), 404)
    error_of(dora.get("/api/v1/jobs/999999/dump"), 404)
    target = _db(dora, "dora_bad", fill=5)
    err = error_of(_restore(dora, "dora_bad", b"SELECT 1;\n" * 100), 422)
    assert "not a pg_dump archive" in err["message"]
    err = error_of(_restore(dora, "dora_bad", b""), 409)  # no body: the deleted-database restore, and it exists
    assert "delete it first" in err["message"]
    # the right first bytes, then garbage: the job fails before touching the database, and says why
    failed = dora.wait_job(_started(_restore(dora, "dora_bad", b"PGDMP" + b"\x00garbage" * 64))["id"], timeout=120)
    assert failed["status"] == "failed"
    assert "Check that the file is a pg_dump archive" in failed["error"], failed["error"]
    assert "dora_bad is as it was before" in failed["error"]
    assert _rows(target)[0] == 5
    # a template in a target's name is a name like any other: no such database, nothing evaluated
    payload = "{{ lookup('pipe','touch /tmp/pgaas-dump-pwned') }}"
    r = dora.post(f"/api/v1/instances/{INST}/databases/{requests.utils.quote(payload, safe='')}/dump")
    assert r.status_code == 404 and not Path("/tmp/pgaas-dump-pwned").exists()
    # a dump of a database that is busy with another dump job: 409 naming it
    first = _started(dora.post(f"/api/v1/instances/{INST}/databases/dora_bad/dump"))
    err = error_of(dora.post(f"/api/v1/instances/{INST}/databases/dora_bad/dump"), 409)
    assert f"job {first['id']}" in err["message"]
    dora.wait_job(first["id"], timeout=120)


def test_upload_size_limit_is_its_own(cp, owners):
    """JSON bodies stay under MAX_CONTENT_LENGTH; a restore upload may be larger, up to DUMP_UPLOAD_MAX_BYTES."""
    dora, _ = owners
    cfg = cp.app.config
    big = b"PGDMP" + b"\x00" * (int(cfg["MAX_CONTENT_LENGTH"]) + 1024)
    error_of(dora.post(f"/api/v1/instances/{INST}/databases", data=big,
                       headers={"Content-Type": "application/json"}, timeout=60), 413)
    _db(dora, "dora_big")
    r = _restore(dora, "dora_big", big)
    assert r.status_code == 202, r.text  # past the JSON limit, within the upload limit
    failed = dora.wait_job(r.json()["job"]["id"], timeout=120)
    assert failed["status"] == "failed"  # zeros are no archive
    old = cfg["DUMP_UPLOAD_MAX_BYTES"]
    cfg["DUMP_UPLOAD_MAX_BYTES"] = len(big) - 1
    try:
        err = error_of(_restore(dora, "dora_big", big), 413)
        assert err["code"] == "request_entity_too_large"
    finally:
        cfg["DUMP_UPLOAD_MAX_BYTES"] = old


def test_delete_takes_a_final_dump_as_a_job_and_restore_brings_it_back(cp, owners):
    dora, dave = owners
    db = _db(dora, "dora_keep", fill=3000)
    dora.patch(f"/api/v1/instances/{INST}/databases/dora_keep", json={"parameters": {"work_mem": "6MB"}})
    job = _started(dora.delete(f"/api/v1/instances/{INST}/databases/dora_keep"))
    done = dora.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded" and done["result"]["deleted"] is True, done["error"]
    error_of(dora.get(f"/api/v1/instances/{INST}/databases/dora_keep"), 404)
    error_of(dave.post(f"/api/v1/instances/{INST}/databases/dora_keep/restore"), 404)  # not his dump
    r = dora.post(f"/api/v1/instances/{INST}/databases/dora_keep/restore")
    job = _started(r)
    back = r.json()["database"]
    done = dora.wait_job(job["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["restored_from"] == "final"
    with psycopg.connect(back["uri"], password=back["password"], connect_timeout=5) as c:
        assert c.execute("select count(*) from items").fetchone()[0] == 3000
        assert c.execute("show work_mem").fetchone()[0] == "6MB"
    error_of(dora.post(f"/api/v1/instances/{INST}/databases/dora_keep/restore"), 409)  # exists again
    assert dora.delete(f"/api/v1/instances/{INST}/databases/dora_keep?final_dump=false").status_code == 204
    error_of(dora.post(f"/api/v1/instances/{INST}/databases/dora_keep/restore"), 404)  # the dump was used


def test_dumps_past_their_retention_are_removed(cp, owners, exported):
    from webapp.services import dumps
    from webapp.store.models import Job, utcnow

    dora, _ = owners
    _src, job, _archive = exported
    svc = cp.app.extensions["pgaas"]
    path = Path(svc.config["DUMPS_DIR"]) / "_exports" / f"{job['id']}.dump"
    assert path.exists()
    with svc.store.session() as s:
        j = s.get(Job, job["id"])
        j.result = {**j.result, "expires_at": utcnow().isoformat()}
    with svc.store.session() as s:
        assert dumps.prune(s, svc.dump_settings()) >= 1
    assert not path.exists()
    err = error_of(dora.get(f"/api/v1/jobs/{job['id']}/dump"), 404)
    assert "retention" in err["message"]
    assert "download" not in dora.get(f"/api/v1/jobs/{job['id']}").json()["result"]


def test_a_canceled_restore_leaves_the_database_as_it_was_and_a_retry_completes_it(cp, owners, exported):
    import time

    dora, _ = owners
    _src, _job, archive = exported
    db = _db(dora, "dora_cancel")
    assert dora.wait_job(_started(_restore(dora, "dora_cancel", archive))["id"], timeout=120)["status"] == "succeeded"
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("delete from items where id > 10")
    superuser = secrets_of(cp, INST)["pgaas_superuser_password"]
    # a reader holds a lock on the table, so the restore (clean: DROP TABLE items first) waits inside its transaction
    blocker = psycopg.connect(db["uri"], password=db["password"], connect_timeout=5)
    blocker.execute("select count(*) from items")
    try:
        job = _started(_restore(dora, "dora_cancel", archive, clean="true"))
        login = f"pgaas_restore_{job['id']}"
        with psycopg.connect(db["uri"], user="postgres", password=superuser, connect_timeout=5,
                             autocommit=True) as su:
            deadline = time.monotonic() + 90
            while not su.execute("select 1 from pg_stat_activity where usename = %s and wait_event_type = 'Lock'",
                                 (login,)).fetchone():
                assert time.monotonic() < deadline, dora.get(f"/api/v1/jobs/{job['id']}").json()
                time.sleep(0.2)
            assert dora.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
            done = dora.wait_job(job["id"], timeout=60)
            assert done["status"] == "canceled", done
            assert "was canceled and was rolled back" in done["error"] and "dora_cancel is as it was before" in \
                done["error"], done["error"]
            assert not su.execute("select 1 from pg_roles where rolname = %s", (login,)).fetchone()
    finally:
        blocker.close()
    assert _rows(db)[0] == 10  # nothing of the canceled restore stayed
    retried = dora.post(f"/api/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert dora.wait_job(retried.json()["job"]["id"], timeout=120)["status"] == "succeeded"
    assert _rows(db)[0] == 20000

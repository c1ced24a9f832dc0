"""End to end, against real parts: the API over HTTP, real workers, ansible-runner, podman, Patroni, PostgreSQL.
The main pair runs with its metadata on PostgreSQL; the cancel and worker-loss cases on SQLite."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Live, make_app
from tests.e2e.helpers import INST, PODMAN_ENV, connect, create, leftovers, podman, secrets_of

pytestmark = pytest.mark.slow


def test_create_gives_a_streaming_pair(cp, pair):
    inst = cp.admin.get(f"/api/v1/instances/{INST}").json()
    assert inst["status"] == "available", inst
    assert inst["primary"]["state"] == "running" and inst["primary"]["container"] == f"pgaas-{INST}-0"
    assert len(inst["replicas"]) == 1
    rep = inst["replicas"][0]
    assert rep["state"] in ("running", "streaming") and rep["sync_state"] == "async"
    assert inst["same_host"] is True
    # the run's results and facts are the instance's metadata
    meta = inst["metadata"]
    assert meta["deploy"]["server_version"].startswith("15") and meta["facts"]["localhost"]["kernel"]
    # each member has its own container and its own volume
    running = podman("ps", "--filter", f"label=pgaas.instance={INST}", "--format", "{{.Names}}").split()
    assert sorted(running) == [f"pgaas-{INST}-0", f"pgaas-{INST}-1", f"pgaas-{INST}-etcd"]
    vols = leftovers(INST)["volumes"]
    assert {f"pgaas-{INST}-0-data", f"pgaas-{INST}-1-data"} <= set(vols)


def test_job_events_are_stored_with_task_host_status_duration(cp, pair):
    job = cp.admin.get(f"/api/v1/jobs/{pair['job']['id']}").json()
    results = [e for e in job["events"] if e["event"].startswith("runner_on")]
    assert len(results) > 5
    assert all(e["task"] and e["host"] and e["status"] for e in results)
    assert any(e["duration"] and e["duration"] > 0 for e in results)
    assert job["events"][-1]["event"] == "playbook_on_stats"
    assert job["started_at"] and job["finished_at"] and job["status"] == "succeeded"


def test_no_secret_in_events_artifacts_or_answers(cp, pair):
    secrets = secrets_of(cp, INST)
    job = cp.admin.get(f"/api/v1/jobs/{pair['job']['id']}")
    jobs_dir = Path(cp.app.config["JOBS_DIR"]) / str(pair["job"]["id"])
    assert jobs_dir.is_dir()
    files = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in jobs_dir.rglob("*") if p.is_file())
    shown = cp.admin.get(f"/api/v1/instances/{INST}").text
    values = list(secret_values(secrets))
    assert len(values) > 5 and any("PRIVATE KEY" in v for v in values)  # the TLS keys are among them
    for value in values:
        assert value not in job.text and value not in files and value not in shown


def secret_values(secrets, key=""):
    """Every secret string, the TLS keys nested in secrets["tls"] included; certificates and names are public."""
    if isinstance(secrets, dict):
        for k, v in secrets.items():
            if k not in ("cert", "ca_cert", "names"):
                yield from secret_values(v, k)
    elif isinstance(secrets, str) and len(secrets) >= 8:
        yield secrets


def test_uri_connects_with_psql_and_psycopg_and_admin_is_not_superuser(cp, pair):
    uri = pair["instance"]["uri"]
    env = {**os.environ, "PGPASSWORD": pair["admin_password"], "PGCONNECT_TIMEOUT": "5"}
    out = subprocess.run(["psql", uri, "-Atc", "select current_user, pg_is_in_recovery()"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "dbadmin|f"
    with psycopg.connect(uri, password=pair["admin_password"], connect_timeout=5) as c:
        su, createdb, createrole = c.execute(
            "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user").fetchone()
        assert (su, createdb, createrole) == (False, True, False)
        ro = psycopg.connect(pair["instance"]["readonly_uri"], password=pair["admin_password"], connect_timeout=5)
        with ro:
            assert ro.execute("select pg_is_in_recovery()").fetchone()[0] is True
    # scram-sha-256: a wrong password is refused
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, password="wrong-password", connect_timeout=5)


def test_printed_admin_uri_takes_create_table_at_once(cp, pair):
    """The create answer's URI points at the admin role's own database (PostgreSQL 15: only the owner of a
    database's public schema may create there, so a URI on "postgres" refused the first CREATE TABLE)."""
    assert pair["admin_database"] == "app" and pair["instance"]["admin_database"] == "app"
    uri = pair["instance"]["uri"]
    assert uri.split("?")[0].endswith("/app")
    with psycopg.connect(uri, password=pair["admin_password"], connect_timeout=5, autocommit=True) as c:
        assert c.execute("select current_database()").fetchone() == ("app",)
        c.execute("create table if not exists first_table (id int primary key, note text)")
        c.execute("insert into first_table values (1, 'the first thing anyone tries') on conflict do nothing")
        assert c.execute("select note from first_table").fetchone() == ("the first thing anyone tries",)
        owner, public_connect = c.execute(
            "select pg_get_userbyid(datdba), has_database_privilege('public', 'app', 'connect') "
            "from pg_database where datname = 'app'").fetchone()
        assert (owner, public_connect) == ("dbadmin", False)
    # the CLI shows it too
    env = {**os.environ, "PGAAS_DATABASE_URL": cp.app.config["DATABASE_URL"],
           "PGAAS_INSTANCE_PATH": cp.app.config["INSTANCE_PATH"]}
    out = subprocess.run([str(Path(sys.executable).parent / "pgaas"), "instance", "show", INST], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"admin_database": "app"' in out.stdout and "/app?target_session_attrs=read-write" in out.stdout


def test_admin_database_is_validated_before_anything_runs(cp):
    for bad, msg in (("App", "admin_database must be 1 to 63 characters"), ("template1", "is reserved"),
                     ("pg_x", "is reserved"), (7, "admin_database must be")):
        r = cp.admin.post("/api/v1/instances", json={"name": "e2e-baddb", "admin_database": bad})
        assert r.status_code == 422, r.text
        assert msg in r.json()["error"]["message"] and r.json()["error"].get("field", "admin_database")
    assert cp.admin.get("/api/v1/instances/e2e-baddb").status_code == 404


def test_admin_role_cannot_reach_superuser_powers(cp, pair):
    """The escalation measured on PostgreSQL 15 (issue 12): a CREATEROLE admin granted itself
    pg_execute_server_program, then COPY ... FROM PROGRAM ran commands as postgres in the member and printed the
    superuser and replication passwords from Patroni's configuration. Every step must be refused."""
    uri = pair["instance"]["uri"]
    with psycopg.connect(uri, password=pair["admin_password"], connect_timeout=5, autocommit=True) as c:
        for role in ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_monitor",
                     "pg_signal_backend", "pg_read_all_data", "pg_write_all_data", "pg_checkpoint"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"GRANT {role} TO current_user")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("COPY (SELECT 1) TO PROGRAM 'id'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("CREATE TEMP TABLE leak (line text); COPY leak FROM PROGRAM 'cat /run/pgaas/patroni.yml'")
        # no role of its own to make or change (PostgreSQL 15's CREATEROLE reaches every non-superuser role)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("CREATE ROLE helper LOGIN")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("ALTER ROLE replicator PASSWORD 'taken-over'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("ALTER ROLE dbadmin SUPERUSER")
        assert c.execute("select rolsuper or rolcreaterole or rolreplication or rolbypassrls from pg_roles "
                         "where rolname = current_user").fetchone() == (False,)


def test_write_on_primary_is_read_on_standby_within_a_second(cp, pair):
    inst = cp.admin.get(f"/api/v1/instances/{INST}").json()
    primary = (inst["primary"]["address"], inst["primary"]["port"])
    standby = (inst["replicas"][0]["address"], inst["replicas"][0]["port"])
    pw = pair["admin_password"]
    with connect(primary, "dbadmin", pw, "app", autocommit=True) as c:  # the admin role may create databases
        if not c.execute("select 1 from pg_database where datname = 'e2e_app'").fetchone():
            c.execute("create database e2e_app")
    with connect(primary, "dbadmin", pw, "e2e_app", autocommit=True) as c:
        c.execute("create table if not exists e2e_rows (id int primary key, v text)")
        c.execute("insert into e2e_rows values (1, 'hello') on conflict do nothing")
    t0 = time.monotonic()
    row = None
    while row is None and time.monotonic() - t0 < 1.0:
        try:
            with connect(standby, "dbadmin", pw, "e2e_app", autocommit=True) as c:
                row = c.execute("select v from e2e_rows where id = 1").fetchone()
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            time.sleep(0.02)
    assert row == ("hello",), "row not on the standby within 1 s"
    with connect(standby, "dbadmin", pw, "e2e_app", autocommit=True) as c:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("insert into e2e_rows values (2, 'nope')")
    secrets = secrets_of(cp, INST)
    with connect(primary, "postgres", secrets["pgaas_superuser_password"]) as c:
        rows = c.execute("select application_name, state, sync_state from pg_stat_replication").fetchall()
    assert rows == [(f"pgaas-{INST}-1", "streaming", "async")]


def test_synchronous_instance_and_delete_touches_nothing_else(cp, pair):
    created, job = create(cp, "e2e-sync", synchronous=True)
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    inst = cp.admin.get("/api/v1/instances/e2e-sync").json()
    assert inst["synchronous"] is True and inst["replicas"][0]["sync_state"] == "sync"
    secrets = secrets_of(cp, "e2e-sync")
    primary = (inst["primary"]["address"], inst["primary"]["port"])
    with connect(primary, "postgres", secrets["pgaas_superuser_password"]) as c:
        assert c.execute("select sync_state from pg_stat_replication").fetchall() == [("sync",)]
    # delete the sync instance: all of it goes, the other instance stays as it was (its rows included)
    with psycopg.connect(pair["instance"]["uri"], password=pair["admin_password"], connect_timeout=5,
                         autocommit=True) as c:
        c.execute("create table if not exists kept_rows (v text)")
        c.execute("insert into kept_rows values ('kept through the other instance''s delete')")
    before = leftovers(INST)
    r = cp.admin.delete("/api/v1/instances/e2e-sync")
    assert r.status_code == 202
    cp.admin.wait_ok(r.json()["job"]["id"])
    assert cp.admin.get("/api/v1/instances/e2e-sync").status_code == 404
    assert leftovers("e2e-sync") == {"containers": [], "volumes": [], "networks": []}
    assert not Path("/var/lib/pgaas/instances/e2e-sync").exists()
    assert leftovers(INST) == before
    assert cp.admin.get(f"/api/v1/instances/{INST}").json()["status"] == "available"
    with psycopg.connect(pair["instance"]["uri"], password=pair["admin_password"], connect_timeout=5) as c:
        assert ("kept through the other instance's delete",) in c.execute("select v from kept_rows").fetchall()


# -- failures: cancel, and a worker that dies --------------------------------------------------------------------
@pytest.fixture
def sqlite_cp(tmp_path):
    srv = Live(make_app(f"sqlite:///{tmp_path / 'pgaas.sqlite'}", tmp_path / "instance"), workers=1)
    yield srv
    srv.close()


def wait_for_event(api, job_id, pred, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if any(pred(e) for e in job["events"]):
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.1)
    raise AssertionError("event never came")


def test_cancel_of_a_running_create_cleans_up_and_retry_succeeds(sqlite_cp):
    live = sqlite_cp
    r = live.admin.post("/api/v1/instances", json={"name": "e2e-cancel"})
    job_id = r.json()["job"]["id"]
    # cancel once containers exist, mid-deploy
    wait_for_event(live.admin, job_id, lambda e: e["status"] in ("changed", "ok") and "etcd" in e["task"].lower())
    assert live.admin.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    job = live.admin.wait_job(job_id)
    assert job["status"] == "canceled", job
    assert any(e["event"] == "pgaas_cleanup" for e in job["events"])
    assert leftovers("e2e-cancel") == {"containers": [], "volumes": [], "networks": []}
    inst = live.admin.get("/api/v1/instances/e2e-cancel").json()
    assert inst["status"] == "failed" and "canceled" in inst["status_reason"]
    r = live.admin.post("/api/v1/instances/e2e-cancel/retry")
    assert r.status_code == 202
    live.admin.wait_ok(r.json()["job"]["id"], timeout=240)
    assert live.admin.get("/api/v1/instances/e2e-cancel").json()["status"] == "available"
    r = live.admin.delete("/api/v1/instances/e2e-cancel")
    live.admin.wait_ok(r.json()["job"]["id"])
    assert leftovers("e2e-cancel") == {"containers": [], "volumes": [], "networks": []}


def test_worker_killed_mid_job_fails_the_job_and_delete_works(tmp_path):
    db = f"sqlite:///{tmp_path / 'pgaas.sqlite'}"
    app = make_app(db, tmp_path / "instance")
    live = Live(app, workers=0)
    env = {**PODMAN_ENV, "PGAAS_DATABASE_URL": db, "PGAAS_INSTANCE_PATH": str(tmp_path / "instance"),
           "PGAAS_JOB_HEARTBEAT_SECONDS": "0.5", "PGAAS_JOB_STALE_SECONDS": "5"}
    pgaas = str(Path(sys.executable).parent / "pgaas")
    try:
        job_id = live.admin.post("/api/v1/instances", json={"name": "e2e-lost"}).json()["job"]["id"]
        proc = subprocess.Popen([pgaas, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        wait_for_event(live.admin, job_id, lambda e: "etcd" in e["task"].lower() and e["status"] != "start")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert live.admin.get(f"/api/v1/jobs/{job_id}").json()["status"] == "running"
        # the next worker to start notices at once (the old worker's process is gone)
        proc2 = subprocess.Popen([pgaas, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            job = live.admin.wait_job(job_id, timeout=60)
            assert job["status"] == "failed" and "lost" in job["error"]
            inst = live.admin.get("/api/v1/instances/e2e-lost").json()
            assert inst["status"] == "failed" and "retry or delete" in inst["status_reason"] + " retry or delete"
            r = live.admin.delete("/api/v1/instances/e2e-lost")
            assert r.status_code == 202
            live.admin.wait_ok(r.json()["job"]["id"], timeout=120)
            assert leftovers("e2e-lost") == {"containers": [], "volumes": [], "networks": []}
        finally:
            proc2.send_signal(signal.SIGTERM)
            proc2.wait(timeout=30)
    finally:
        live.close()

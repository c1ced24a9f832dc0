"""Tenant databases on a real Patroni pair: created over a direct connection to the primary, replicated to the
standby, isolated between tenants, with passwords, limits and parameters that PostgreSQL itself enforces."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.api.test_api import error_of
from tests.e2e.helpers import INST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tenants(cp, pair):
    for name in ("tina", "tom"):
        r = cp.admin.post("/api/v1/users", json={"username": name, "password": f"{name}-password-1"})
        assert r.status_code in (201, 409), r.text
    return cp.anon.as_user("tina", "tina-password-1"), cp.anon.as_user("tom", "tom-password-1")


@pytest.fixture(scope="module")
def tina_db(tenants):
    tina, _ = tenants
    r = tina.post(f"/api/v1/instances/{INST}/databases", json={"name": "tina_app", "connection_limit": 5})
    assert r.status_code == 201, r.text
    return r.json()["database"]


def test_created_database_is_usable_and_on_the_standby(cp, tina_db):
    assert tina_db["owner"] == "tina" and tina_db["role"] == "tina_app" and len(tina_db["password"]) >= 20
    assert "target_session_attrs=read-write" in tina_db["uri"] and tina_db["password"] not in tina_db["uri"]
    with psycopg.connect(tina_db["uri"], password=tina_db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("create table t (id int primary key)")
        c.execute("insert into t select generate_series(1, 100)")
        su, createdb, createrole = c.execute("select rolsuper, rolcreatedb, rolcreaterole from pg_roles "
                                             "where rolname = current_user").fetchone()
        assert (su, createdb, createrole) == (False, False, False)
    deadline = time.monotonic() + 5
    while True:
        try:
            with psycopg.connect(tina_db["readonly_uri"], password=tina_db["password"], connect_timeout=5) as c:
                assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True
                if c.execute("select count(*) from t").fetchone()[0] == 100:
                    break
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
            pass  # not replayed on the standby yet
        assert time.monotonic() < deadline, "database did not reach the standby"
        time.sleep(0.05)
    shown = cp.admin.get(f"/api/v1/instances/{INST}/databases/tina_app").json()
    assert shown["size_bytes"] > 1_000_000 and shown["status"] == "ok" and "password" not in shown


def test_tenants_are_isolated(cp, tenants, tina_db):
    tina, tom = tenants
    r = tom.post(f"/api/v1/instances/{INST}/databases", json={"name": "tom_app"})
    assert r.status_code == 201, r.text
    tom_db = r.json()["database"]
    # through the API each sees only their own; the other's is a 404
    assert [d["name"] for d in tina.get("/api/v1/databases").json()["databases"]] == ["tina_app"]
    assert [d["name"] for d in tom.get(f"/api/v1/instances/{INST}/databases").json()["databases"]] == ["tom_app"]
    error_of(tom.get(f"/api/v1/instances/{INST}/databases/tina_app"), 404)
    error_of(tom.delete(f"/api/v1/instances/{INST}/databases/tina_app"), 404)
    error_of(tom.post(f"/api/v1/instances/{INST}/databases/tina_app/password", json={}), 404)
    admin_view = cp.admin.get("/api/v1/databases?owner=tom").json()["databases"]
    assert [d["name"] for d in admin_view] == ["tom_app"]
    # in PostgreSQL, tom's role cannot connect to tina's database, nor create databases or roles
    primary = tom_db["uri"]
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(primary.replace("/tom_app?", "/tina_app?"), password=tom_db["password"], connect_timeout=5)
    with psycopg.connect(primary, password=tom_db["password"], connect_timeout=5, autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("create database sneaky")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("create role sneaky")
    assert tom.delete(f"/api/v1/instances/{INST}/databases/tom_app?final_dump=false").status_code == 204
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(primary, password=tom_db["password"], connect_timeout=5)


def test_password_change(cp, tenants, tina_db):
    tina, _ = tenants
    old = tina_db["password"]
    r = tina.post(f"/api/v1/instances/{INST}/databases/tina_app/password", json={})
    assert r.status_code == 200
    new = r.json()["password"]
    assert new != old
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(tina_db["uri"], password=old, connect_timeout=5)
    with psycopg.connect(r.json()["uri"], password=new, connect_timeout=5) as c:
        assert c.execute("select count(*) from t").fetchone()[0] == 100
    r = tina.post(f"/api/v1/instances/{INST}/databases/tina_app/password", json={"password": "Chosen-pass-123"})
    assert r.status_code == 200 and r.json()["password"] == "Chosen-pass-123"
    error_of(tina.post(f"/api/v1/instances/{INST}/databases/tina_app/password", json={"password": "short"}), 422)
    tina_db["password"] = "Chosen-pass-123"


def test_parameters_and_connection_limit(cp, tenants, tina_db):
    tina, _ = tenants
    r = tina.patch(f"/api/v1/instances/{INST}/databases/tina_app",
                   json={"parameters": {"work_mem": "8MB", "statement_timeout": "5s"}, "connection_limit": 7})
    assert r.status_code == 200, r.text
    assert r.json()["parameters"] == {"work_mem": "8MB", "statement_timeout": "5s"}
    with psycopg.connect(tina_db["uri"], password=tina_db["password"], connect_timeout=5) as c:
        assert c.execute("show work_mem").fetchone()[0] == "8MB"
        assert c.execute("select datconnlimit from pg_database where datname = current_database()").fetchone() == (7,)
    err = error_of(tina.patch(f"/api/v1/instances/{INST}/databases/tina_app",
                              json={"parameters": {"work_mem": "lots"}}), 422)
    assert "work_mem" in err["message"] and "invalid value" in err["message"]
    err = error_of(tina.patch(f"/api/v1/instances/{INST}/databases/tina_app",
                              json={"parameters": {"shared_buffers": "1GB"}}), 422)
    assert "cannot be set per database" in err["message"]
    error_of(tina.patch(f"/api/v1/instances/{INST}/databases/tina_app",
                        json={"parameters": {"no_such_setting": "1"}}), 422)
    error_of(tina.patch(f"/api/v1/instances/{INST}/databases/tina_app", json={"connection_limit": 0}), 422)
    r = tina.patch(f"/api/v1/instances/{INST}/databases/tina_app", json={"parameters": {"work_mem": None}})
    assert r.json()["parameters"] == {"statement_timeout": "5s"}


@pytest.mark.parametrize("name", ["Upper", "semi;colon", "quo'te", "select", "pg_thing", "postgres", "template1",
                                  "a" * 64, "1abc", "with space", ""])
def test_bad_database_names_create_nothing(cp, tenants, name):
    tina, _ = tenants
    before = cp.admin.get("/api/v1/databases").json()["databases"]
    r = tina.post(f"/api/v1/instances/{INST}/databases", json={"name": name})
    assert r.status_code in (400, 422), r.text
    assert cp.admin.get("/api/v1/databases").json()["databases"] == before


def test_concurrent_creates_of_one_name(cp, tenants):
    tina, tom = tenants
    results = []

    def create(api):
        results.append(api.post(f"/api/v1/instances/{INST}/databases", json={"name": "race_db"}).status_code)

    threads = [threading.Thread(target=create, args=(api,)) for api in (tina, tom)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 409]
    owner = cp.admin.get("/api/v1/databases").json()["databases"]
    race = [d for d in owner if d["name"] == "race_db"]
    assert len(race) == 1
    api = tina if race[0]["owner"] == "tina" else tom
    assert api.delete(f"/api/v1/instances/{INST}/databases/race_db?final_dump=false").status_code == 204


def test_instance_delete_and_user_delete_guard_tenant_data(cp, tenants, tina_db):
    err = error_of(cp.admin.delete(f"/api/v1/instances/{INST}"), 409)
    assert "tenant database" in err["message"]
    err = error_of(cp.admin.delete("/api/v1/users/tina"), 409)
    assert "tina_app" in err["message"]
    events = cp.admin.get("/api/v1/admin/audit?actor=tina").json()["events"]
    assert {"database.create", "database.password", "database.update"} <= {e["action"] for e in events}


def test_delete_keeps_a_final_dump_and_restore_brings_every_row_back(cp, tenants):
    tina, tom = tenants
    db = tina.post(f"/api/v1/instances/{INST}/databases", json={"name": "keep_me", "connection_limit": 4}).json()
    db = db["database"]
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("create table rows (id int primary key, v text)")
        c.execute("insert into rows select i, md5(i::text) from generate_series(1, 5000) i")
        c.execute("create view odd as select * from rows where id % 2 = 1")
        checksum = c.execute("select md5(string_agg(v, ',' order by id)) from rows").fetchone()[0]
    tina.patch(f"/api/v1/instances/{INST}/databases/keep_me", json={"parameters": {"work_mem": "6MB"}})
    error_of(tina.post(f"/api/v1/instances/{INST}/databases/keep_me/restore"), 409)  # it still exists
    r = tina.delete(f"/api/v1/instances/{INST}/databases/keep_me")  # a job: the final dump, then the drop
    assert r.status_code == 202, r.text
    tina.wait_ok(r.json()["job"]["id"], timeout=120)
    error_of(tina.get(f"/api/v1/instances/{INST}/databases/keep_me"), 404)
    error_of(tom.post(f"/api/v1/instances/{INST}/databases/keep_me/restore"), 404)  # not his dump
    r = tina.post(f"/api/v1/instances/{INST}/databases/keep_me/restore")
    assert r.status_code == 202, r.text  # created again now (new password), restored by the job
    back = r.json()["database"]
    tina.wait_ok(r.json()["job"]["id"], timeout=120)
    back = {**tina.get(f"/api/v1/instances/{INST}/databases/keep_me").json(), "password": back["password"]}
    assert back["connection_limit"] == 4 and back["parameters"] == {"work_mem": "6MB"} and back["owner"] == "tina"
    with psycopg.connect(back["uri"], password=back["password"], connect_timeout=5) as c:
        assert c.execute("select md5(string_agg(v, ',' order by id)) from rows").fetchone()[0] == checksum
        assert c.execute("select count(*) from odd").fetchone()[0] == 2500
        assert c.execute("show work_mem").fetchone()[0] == "6MB"
        owner = c.execute("select tableowner from pg_tables where tablename = 'rows'").fetchone()[0]
        assert owner == "keep_me"
    # a dump is used once; deleting without a final dump keeps none
    error_of(tina.post(f"/api/v1/instances/{INST}/databases/keep_me/restore"), 409)  # exists again
    assert tina.delete(f"/api/v1/instances/{INST}/databases/keep_me?final_dump=false").status_code == 204
    error_of(tina.post(f"/api/v1/instances/{INST}/databases/keep_me/restore"), 404)


def test_expired_dumps_are_pruned(cp, tenants):
    from webapp.services import databases as dbsvc
    from webapp.store.models import DatabaseDump, utcnow

    tina, _ = tenants
    db = tina.post(f"/api/v1/instances/{INST}/databases", json={"name": "short_lived"}).json()["database"]
    r = tina.delete(f"/api/v1/instances/{INST}/databases/short_lived")
    assert r.status_code == 202, r.text
    tina.wait_ok(r.json()["job"]["id"], timeout=120)
    store = cp.app.extensions["pgaas"].store
    with store.session() as s:
        dump = s.query(DatabaseDump).filter_by(database_name="short_lived").one()
        path = Path(dump.path)
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
        assert db["password"] not in path.read_bytes().decode("latin-1")
        dump.expires_at = utcnow()  # the grace period is over
    with store.session() as s:
        assert dbsvc.prune_dumps(s) >= 1
    assert not path.exists()
    error_of(tina.post(f"/api/v1/instances/{INST}/databases/short_lived/restore"), 404)


def wait_status(api, path, status, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(path).json()
        if body["status"] == status:
            return body
        time.sleep(0.3)
    raise AssertionError(f"{path} never became {status}: {body}")


def test_quota_makes_a_database_read_only_and_raising_it_restores_writes(cp, tenants):
    tina, _ = tenants
    db = tina.post(f"/api/v1/instances/{INST}/databases", json={"name": "quota_db", "quota_mb": 12}).json()
    db = db["database"]
    path = f"/api/v1/instances/{INST}/databases/quota_db"
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("create table blob (id serial primary key, v text)")
        c.execute("insert into blob (v) select repeat(md5(i::text), 40) from generate_series(1, 4000) i")  # ~6 MB
        rows = c.execute("select count(*) from blob").fetchone()[0]
    body = wait_status(tina, path, "over_quota")
    assert body["size_bytes"] > 12 * 1024 * 1024
    # reads still work (the read-only URI reaches the primary too); the read-write URI finds no writable session
    with psycopg.connect(db["readonly_uri"], password=db["password"], connect_timeout=5) as c:
        assert c.execute("select count(*) from blob").fetchone()[0] == rows
    with pytest.raises(psycopg.OperationalError, match="read-only"):
        psycopg.connect(db["uri"], password=db["password"], connect_timeout=5)
    primary = cp.admin.get(f"/api/v1/instances/{INST}").json()["primary"]
    with psycopg.connect(host=primary["address"], port=primary["port"], dbname="quota_db", user="quota_db",
                         password=db["password"], connect_timeout=5, autocommit=True) as c:
        assert c.execute("select count(*) from blob").fetchone()[0] == rows
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("insert into blob (v) values ('more')")
    assert tina.patch(path, json={"quota_mb": 100}).status_code == 200
    wait_status(tina, path, "ok")
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("insert into blob (v) values ('more')")
        assert c.execute("select count(*) from blob").fetchone()[0] == rows + 1  # no row lost
    audit = cp.admin.get(f"/api/v1/admin/audit?object={INST}/quota_db").json()["events"]
    assert {"database.over_quota", "database.quota_ok"} <= {e["action"] for e in audit}


def test_unknown_instance_or_unavailable(cp, tenants):
    tina, _ = tenants
    error_of(tina.post("/api/v1/instances/nope/databases", json={"name": "x_db"}), 404)
    error_of(tina.get("/api/v1/instances/nope/databases"), 404)

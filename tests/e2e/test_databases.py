"""Tenant databases on a real Patroni pair: created over a direct connection to the primary, replicated to the
standby, isolated between tenants, with passwords, limits and parameters that PostgreSQL itself enforces."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.api.test_api import error_of
from tests.e2e.helpers import connect

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
    r = tina.post("/api/v1/instances/e2e-async/databases", json={"name": "tina_app", "connection_limit": 5})
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
    shown = cp.admin.get("/api/v1/instances/e2e-async/databases/tina_app").json()
    assert shown["size_bytes"] > 1_000_000 and shown["status"] == "ok" and "password" not in shown


def test_tenants_are_isolated(cp, tenants, tina_db):
    tina, tom = tenants
    r = tom.post("/api/v1/instances/e2e-async/databases", json={"name": "tom_app"})
    assert r.status_code == 201, r.text
    tom_db = r.json()["database"]
    # through the API each sees only their own; the other's is a 404
    assert [d["name"] for d in tina.get("/api/v1/databases").json()["databases"]] == ["tina_app"]
    assert [d["name"] for d in tom.get("/api/v1/instances/e2e-async/databases").json()["databases"]] == ["tom_app"]
    error_of(tom.get("/api/v1/instances/e2e-async/databases/tina_app"), 404)
    error_of(tom.delete("/api/v1/instances/e2e-async/databases/tina_app"), 404)
    error_of(tom.post("/api/v1/instances/e2e-async/databases/tina_app/password", json={}), 404)
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
    assert tom.delete("/api/v1/instances/e2e-async/databases/tom_app").status_code == 204
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(primary, password=tom_db["password"], connect_timeout=5)


def test_password_change(cp, tenants, tina_db):
    tina, _ = tenants
    old = tina_db["password"]
    r = tina.post("/api/v1/instances/e2e-async/databases/tina_app/password", json={})
    assert r.status_code == 200
    new = r.json()["password"]
    assert new != old
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(tina_db["uri"], password=old, connect_timeout=5)
    with psycopg.connect(r.json()["uri"], password=new, connect_timeout=5) as c:
        assert c.execute("select count(*) from t").fetchone()[0] == 100
    r = tina.post("/api/v1/instances/e2e-async/databases/tina_app/password", json={"password": "Chosen-pass-123"})
    assert r.status_code == 200 and r.json()["password"] == "Chosen-pass-123"
    error_of(tina.post("/api/v1/instances/e2e-async/databases/tina_app/password", json={"password": "short"}), 422)
    tina_db["password"] = "Chosen-pass-123"


def test_parameters_and_connection_limit(cp, tenants, tina_db):
    tina, _ = tenants
    r = tina.patch("/api/v1/instances/e2e-async/databases/tina_app",
                   json={"parameters": {"work_mem": "8MB", "statement_timeout": "5s"}, "connection_limit": 7})
    assert r.status_code == 200, r.text
    assert r.json()["parameters"] == {"work_mem": "8MB", "statement_timeout": "5s"}
    with psycopg.connect(tina_db["uri"], password=tina_db["password"], connect_timeout=5) as c:
        assert c.execute("show work_mem").fetchone()[0] == "8MB"
        assert c.execute("select datconnlimit from pg_database where datname = current_database()").fetchone() == (7,)
    err = error_of(tina.patch("/api/v1/instances/e2e-async/databases/tina_app",
                              json={"parameters": {"work_mem": "lots"}}), 422)
    assert "work_mem" in err["message"] and "invalid value" in err["message"]
    err = error_of(tina.patch("/api/v1/instances/e2e-async/databases/tina_app",
                              json={"parameters": {"shared_buffers": "1GB"}}), 422)
    assert "cannot be set per database" in err["message"]
    error_of(tina.patch("/api/v1/instances/e2e-async/databases/tina_app",
                        json={"parameters": {"no_such_setting": "1"}}), 422)
    error_of(tina.patch("/api/v1/instances/e2e-async/databases/tina_app", json={"connection_limit": 0}), 422)
    r = tina.patch("/api/v1/instances/e2e-async/databases/tina_app", json={"parameters": {"work_mem": None}})
    assert r.json()["parameters"] == {"statement_timeout": "5s"}


@pytest.mark.parametrize("name", ["Upper", "semi;colon", "quo'te", "select", "pg_thing", "postgres", "template1",
                                  "a" * 64, "1abc", "with space", ""])
def test_bad_database_names_create_nothing(cp, tenants, name):
    tina, _ = tenants
    before = cp.admin.get("/api/v1/databases").json()["databases"]
    r = tina.post("/api/v1/instances/e2e-async/databases", json={"name": name})
    assert r.status_code in (400, 422), r.text
    assert cp.admin.get("/api/v1/databases").json()["databases"] == before


def test_concurrent_creates_of_one_name(cp, tenants):
    tina, tom = tenants
    results = []

    def create(api):
        results.append(api.post("/api/v1/instances/e2e-async/databases", json={"name": "race_db"}).status_code)

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
    assert api.delete("/api/v1/instances/e2e-async/databases/race_db").status_code == 204


def test_instance_delete_and_user_delete_guard_tenant_data(cp, tenants, tina_db):
    err = error_of(cp.admin.delete("/api/v1/instances/e2e-async"), 409)
    assert "tenant database" in err["message"]
    err = error_of(cp.admin.delete("/api/v1/users/tina"), 409)
    assert "tina_app" in err["message"]
    events = cp.admin.get("/api/v1/admin/audit?actor=tina").json()["events"]
    assert {"database.create", "database.password", "database.update"} <= {e["action"] for e in events}


def test_unknown_instance_or_unavailable(cp, tenants):
    tina, _ = tenants
    error_of(tina.post("/api/v1/instances/nope/databases", json={"name": "x_db"}), 404)
    error_of(tina.get("/api/v1/instances/nope/databases"), 404)

"""Capacity on a real Patroni pair, attacked the way a curious tenant would: a database over its quota becomes
read-only, and undoing that (the owner may change its database's and its own role's settings, any session may
override them, and large objects are written even in a read-only transaction on PostgreSQL 15) locks the database
instead: its role may no longer log in, which a tenant cannot undo. Raising the quota above the size lifts it."""
from __future__ import annotations

import time

import psycopg
import pytest

from tests.api.test_api import error_of
from tests.e2e.helpers import INST

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def cara(cp, pair):
    r = cp.admin.post("/api/v1/users", json={"username": "cara", "password": "cara-password-1"})
    assert r.status_code in (201, 409), r.text
    return cp.anon.as_user("cara", "cara-password-1")


def _status(api, name) -> dict:
    return api.get(f"/api/v1/instances/{INST}/databases/{name}").json()


def wait_status(api, name, status, timeout=20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = _status(api, name)
        if body["status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {status}: {body}")


def direct(cp, db: dict, **kw) -> psycopg.Connection:
    """A session on the primary itself (the read-write URI finds no server while the database is read-only)."""
    primary = cp.admin.get(f"/api/v1/instances/{INST}").json()["primary"]
    return psycopg.connect(host=primary["address"], port=primary["port"], dbname=db["name"], user=db["role"],
                           password=db["password"], connect_timeout=5, **kw)


def over_quota(cp, api, name: str) -> dict:
    """A database of 12 MB quota filled past it (an empty database is about 7.5 MB), once read-only."""
    r = api.post(f"/api/v1/instances/{INST}/databases", json={"name": name, "quota_mb": 12})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    with direct(cp, db, autocommit=True) as c:
        c.execute("create table blob (id serial primary key, v text)")
        c.execute("insert into blob (v) select repeat(md5(i::text), 40) from generate_series(1, 4000) i")
    wait_status(api, name, "over_quota")
    with direct(cp, db) as c, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        c.execute("insert into blob (v) values ('more')")
    return db


def write_for(cp, db: dict, statement: str, rounds: int = 20, seconds: float = 90) -> tuple[int, Exception | None]:
    """Keep writing about 1 MB per round in new sessions, as an attacker would, until `rounds` committed (or
    `seconds` passed, or no session is let in); how many rounds committed, and what stopped them. A round the
    quota check cuts short (it ends sessions that write) is tried again, so on a slow machine it only takes
    longer."""
    done, start = 0, time.monotonic()
    while done < rounds and time.monotonic() < start + seconds:
        try:
            c = direct(cp, db, autocommit=True)
        except psycopg.OperationalError as exc:
            print(f"{db['name']}: {done} rounds of about 1 MB committed, locked out after "
                  f"{time.monotonic() - start:.1f} s")
            return done, exc
        try:
            with c:
                c.execute(statement)
            done += 1
        except (psycopg.errors.ReadOnlySqlTransaction, psycopg.OperationalError):
            pass  # refused, or the session was ended under it: try again in a new one
        time.sleep(0.1)
    return done, None


ROUND = "insert into blob (v) select md5(random()::text) from generate_series(1, 15000)"  # about 1 MB, as stored


def assert_locked(cp, api, db, rounds: int, stopped: Exception | None) -> dict:
    assert stopped is not None and rounds < 20, f"the tenant kept writing past the quota: {rounds} MB"
    body = wait_status(api, db["name"], "locked", timeout=5)
    time.sleep(2)  # still refused a few checks later
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        direct(cp, db)
    assert _status(api, db["name"])["status"] == "locked"
    return body


def test_tenants_cannot_set_parameters_that_undo_the_quota(cp, cara):
    r = cara.post(f"/api/v1/instances/{INST}/databases", json={"name": "cap_params", "quota_mb": 50})
    assert r.status_code == 201, r.text
    path = f"/api/v1/instances/{INST}/databases/cap_params"
    for name, value in (("default_transaction_read_only", "off"), ("transaction_read_only", "off"),
                        ("session_replication_role", "replica"), ("default_tablespace", "pg_global"),
                        ("temp_tablespaces", "pg_global"), ("role", "postgres"), ("row_security", "off")):
        err = error_of(cara.patch(path, json={"parameters": {name: value}}), 422)
        assert name in err["message"] and "cannot be set per database" in err["message"], err
    assert _status(cara, "cap_params")["parameters"] == {}
    # nor at create: nothing is created
    r = cara.post(f"/api/v1/instances/{INST}/databases",
                  json={"name": "cap_params2", "quota_mb": 50, "parameters": {"default_transaction_read_only": "off"}})
    error_of(r, 422)
    error_of(cara.get(f"/api/v1/instances/{INST}/databases/cap_params2"), 404)
    # what tenants tune is still theirs
    r = cara.patch(path, json={"parameters": {"work_mem": "8MB", "DateStyle": "ISO, DMY", "statement_timeout": "3s"}})
    assert r.status_code == 200, r.text
    assert cara.delete(f"{path}?final_dump=false").status_code == 204


def test_undoing_the_read_only_switch_in_sql_locks_the_database(cp, cara):
    """The owner of a database over its quota sets default_transaction_read_only = off on the database, its role
    and its role in the database (PostgreSQL lets it), then writes in new sessions."""
    db = over_quota(cp, cara, "cap_tamper")
    with direct(cp, db, autocommit=True) as c:
        c.execute("set default_transaction_read_only = off")
        c.execute("alter database cap_tamper set default_transaction_read_only = off")
        c.execute("alter role cap_tamper set default_transaction_read_only = off")
        c.execute("alter role cap_tamper in database cap_tamper set default_transaction_read_only = off")
    rounds, stopped = write_for(cp, db, ROUND)
    body = assert_locked(cp, cara, db, rounds, stopped)
    assert body["size_bytes"] < 12 * MIB + 20 * MIB, body  # a check interval's writes at most
    # the tenant cannot lift it: no session, and its role may not log in anywhere
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        direct(cp, {**db, "name": "postgres"})
    # raising the quota above the size lifts it; every row is still there and writes work again
    r = cara.patch(f"/api/v1/instances/{INST}/databases/cap_tamper", json={"quota_mb": 200})
    assert r.status_code == 200, r.text
    wait_status(cara, "cap_tamper", "ok")
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("insert into blob (v) values ('after')")
        assert c.execute("select count(*) from blob where v = 'after'").fetchone() == (1,)
        assert c.execute("select count(*) from blob").fetchone()[0] >= 4001
    audit = cp.admin.get(f"/api/v1/admin/audit?object={INST}/cap_tamper").json()["events"]
    assert {"database.over_quota", "database.locked", "database.quota_ok"} <= {e["action"] for e in audit}


def test_writing_anyway_in_a_read_only_session_locks_the_database(cp, cara):
    """No setting changed: each session overrides the default itself (BEGIN READ WRITE), or writes large objects,
    which PostgreSQL 15 allows even in a read-only transaction."""
    db = over_quota(cp, cara, "cap_sneak")
    for _ in range(5):
        try:
            with direct(cp, db, autocommit=True) as c:
                assert c.execute("show transaction_read_only").fetchone() == ("on",)
                oid = c.execute("select lo_from_bytea(0, convert_to(repeat(md5('x'), 40000), 'UTF8'))").fetchone()
                assert oid  # 1.3 MB written in a read-only transaction
                break
        except psycopg.OperationalError:
            continue  # a check ended the session while it wrote (it had a transaction id then): again
    else:
        raise AssertionError("no large object could be written")
    rounds, stopped = write_for(cp, db, "begin read write; " + ROUND + "; commit")
    assert_locked(cp, cara, db, rounds, stopped)  # past the 8 MiB it may grow by while read-only
    assert cara.delete(f"/api/v1/instances/{INST}/databases/cap_sneak?final_dump=false").status_code == 204

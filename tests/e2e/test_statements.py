"""Query insights (issue 16 item 4) on the session pair: each tenant sees its own database's statements, merged
over both members (the read-only URI runs on the standby), never another tenant's; a reset forgets them; the
report carries them; a change that would unload pg_stat_statements is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.sql
import pytest

from tests.e2e.helpers import INST, tenant_with_database
from tests.api.test_api import error_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tenants(cp, pair, tmp_path_factory):
    r = cp.admin.get(f"/api/v1/instances/{INST}/ca.crt")
    assert r.status_code == 200, r.text
    ca = tmp_path_factory.mktemp("stmt-ca") / "ca.crt"
    ca.write_text(r.text)
    out = {}
    for name in ("stella", "stan"):
        api, db = tenant_with_database(cp, name, f"{name}_db")
        fix = lambda u: u.replace(f"sslrootcert=pgaas-{INST}-ca.crt", f"sslrootcert={ca}")  # noqa: E731
        out[name] = (api, db, fix(db["uri"]), fix(db["readonly_uri"]))
    yield out
    for api, db, _, _ in out.values():
        api.delete(f"/api/v1/instances/{INST}/databases/{db['name']}?final_dump=false")


def _run(uri: str, password: str, sql: str, times: int) -> None:
    with psycopg.connect(uri, password=password, connect_timeout=10, autocommit=True) as c:
        for i in range(times):
            c.execute(sql, (i,))


def test_each_tenant_sees_only_its_own_statements_from_both_members(cp, tenants):
    (stella, sdb, s_rw, s_ro), (stan, tdb, t_rw, _) = tenants["stella"], tenants["stan"]
    _run(s_rw, sdb["password"], "SELECT %s::int AS stella_marker_rw", 7)
    # a different cast: the same statement with another alias would have the same queryid (aliases are not part of
    # it) and be merged with the one above
    _run(s_ro, sdb["password"], "SELECT %s::bigint AS stella_marker_ro", 5)
    _run(t_rw, tdb["password"], "SELECT %s::smallint AS stan_marker", 3)

    # a password in a statement's text (utility statements keep their literals): never shown
    with psycopg.connect(s_rw, password=sdb["password"], connect_timeout=10, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sdb["password"]))

    r = stella.get(f"/api/v1/instances/{INST}/databases/stella_db/statements?order=calls&limit=100")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["database"] == "stella_db" and not body["unreachable"] and len(body["members"]) == 2
    texts = {s["query"]: s for s in body["statements"]}
    rw = next((s for q, s in texts.items() if "stella_marker_rw" in q), body)
    ro = next((s for q, s in texts.items() if "stella_marker_ro" in q), body)
    assert rw["calls"] == 7 and "$1" in rw["query"] and rw["mean_time_ms"] >= 0, rw
    assert ro["calls"] == 5, ro
    assert set(rw["members"]) != set(ro["members"]), (rw, ro)  # one ran on the primary, the other on the standby
    assert all(s["database"] == "stella_db" for s in body["statements"])
    assert not any("stan_marker" in q for q in texts), "another tenant's statement leaked"
    assert sdb["password"] not in r.text

    # stan's list has stan's statement and none of stella's; stan cannot ask for stella's list at all
    stan_list = stan.get(f"/api/v1/instances/{INST}/databases/stan_db/statements?limit=100").json()["statements"]
    assert any("stan_marker" in s["query"] for s in stan_list)
    assert not any("stella_marker" in s["query"] for s in stan_list)
    assert error_of(stan.get(f"/api/v1/instances/{INST}/databases/stella_db/statements"), 404)
    assert error_of(stan.post(f"/api/v1/instances/{INST}/databases/stella_db/statements/reset"), 404)
    assert error_of(stan.get(f"/api/v1/instances/{INST}/statements"), 403)
    # bad arguments are a 422 with the field named
    bad = error_of(stella.get(f"/api/v1/instances/{INST}/databases/stella_db/statements?order=x"), 422)
    assert "order must be one of" in bad["message"], bad
    bad = error_of(stella.get(f"/api/v1/instances/{INST}/databases/stella_db/statements?limit=0"), 422)
    assert "limit must be" in bad["message"], bad

    # the admin's instance view names each statement's database (the shared instance has many: the tenants' may be
    # outside its top 100); narrowed to one database, it has that tenant's statements and only theirs
    every = cp.admin.get(f"/api/v1/instances/{INST}/statements?limit=100").json()["statements"]
    assert len({s["database"] for s in every}) > 1, every
    for name, marker in (("stella_db", "stella_marker_ro"), ("stan_db", "stan_marker")):
        one = cp.admin.get(f"/api/v1/instances/{INST}/statements?limit=100&database={name}").json()
        assert one["database"] == name and {s["database"] for s in one["statements"]} == {name}, one
        assert any(marker in s["query"] for s in one["statements"]), one
    bad = error_of(cp.admin.get(f"/api/v1/instances/{INST}/statements?database={'d' * 64}"), 422)
    assert "63 bytes" in bad["message"], bad
    # the control plane's own role DDL (SCRAM verifiers of the tenants' roles) is not shown either
    assert not any("SCRAM-SHA-256$" in s["query"] or "PASSWORD" in s["query"].upper() for s in every), every

    # the database's report carries them
    report = stella.get(f"/api/v1/instances/{INST}/databases/stella_db/report").json()
    assert any("stella_marker_rw" in s["query"] for s in report["top_statements"])
    assert not any("stan_marker" in s["query"] for s in report["top_statements"])
    html = stella.get(f"/api/v1/instances/{INST}/databases/stella_db/report?format=html").text
    assert "Top statements" in html and "stella_marker_rw" in html

    # a reset forgets stella's on both members, and only stella's
    r = stella.post(f"/api/v1/instances/{INST}/databases/stella_db/statements/reset")
    assert r.status_code == 200 and len(r.json()["reset_on"]) == 2, r.text
    after = stella.get(f"/api/v1/instances/{INST}/databases/stella_db/statements?limit=100").json()["statements"]
    assert not any("stella_marker" in s["query"] for s in after)
    stan_after = stan.get(f"/api/v1/instances/{INST}/databases/stan_db/statements?limit=100").json()["statements"]
    assert any("stan_marker" in s["query"] for s in stan_after)
    audit = cp.admin.get("/api/v1/admin/audit?object=" + f"{INST}/stella_db").json()["events"]
    assert any(e["action"] == "database.statements_reset" and e["outcome"] == "ok" for e in audit)


def test_a_change_that_would_unload_pg_stat_statements_is_refused(cp, pair):
    for value in ("auto_explain", "", " , "):
        r = cp.admin.patch(f"/api/v1/instances/{INST}", json={"settings": {"shared_preload_libraries": value}})
        assert "must keep pg_stat_statements" in error_of(r, 422)["message"]
    # an installed library beside it is accepted (a job applies it; Patroni flags the restart it needs)
    r = cp.admin.patch(f"/api/v1/instances/{INST}",
                       json={"settings": {"shared_preload_libraries": "pg_stat_statements, auto_explain"}})
    assert r.status_code == 202, r.text
    job = cp.admin.wait_ok(r.json()["job"]["id"])
    shown = cp.admin.get(f"/api/v1/instances/{INST}").json()
    assert shown["settings"]["shared_preload_libraries"] == "pg_stat_statements, auto_explain", shown["settings"]
    assert shown["pending_restart"] is True, job
    # a reset goes back to pgaas's default, which loads it (not PostgreSQL's empty one): no longer a change of ours,
    # nothing waits for a restart, and the statements are still read
    r = cp.admin.patch(f"/api/v1/instances/{INST}", json={"settings": {"shared_preload_libraries": None}})
    assert r.status_code == 202, r.text
    cp.admin.wait_ok(r.json()["job"]["id"])
    shown = cp.admin.get(f"/api/v1/instances/{INST}").json()
    assert "shared_preload_libraries" not in shown["settings"] and shown["pending_restart"] is False, shown
    assert cp.admin.get(f"/api/v1/instances/{INST}/statements?limit=1").status_code == 200


def test_the_console_lists_and_resets_a_databases_statements(cp, tenants):
    stan, tdb, t_rw, _ = tenants["stan"]
    _run(t_rw, tdb["password"], "SELECT %s::numeric AS stan_console_marker", 4)
    env = {**os.environ, "PGAAS_INSTANCE_PATH": cp.app.instance_path,
           "PGAAS_DATABASE_URL": cp.app.config["DATABASE_URL"], "PGAAS_TLS_CA_EXPORT_DIR": os.getcwd()}
    pgaas = str(Path(sys.executable).parent / "pgaas")
    out = subprocess.run([pgaas, "statements", INST, "stan_db", "--order", "calls"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert listed["database"] == "stan_db" and listed["order"] == "calls"
    assert any("stan_console_marker" in st["query"] and st["calls"] == 4 for st in listed["statements"]), listed
    out = subprocess.run([pgaas, "statements", INST, "no_such_db"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "no_such_db" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = subprocess.run([pgaas, "statements", INST, "stan_db", "--reset"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and len(json.loads(out.stdout)["reset_on"]) == 2, out.stderr
    after = stan.get(f"/api/v1/instances/{INST}/databases/stan_db/statements?limit=100").json()["statements"]
    assert not any("stan_console_marker" in st["query"] for st in after)

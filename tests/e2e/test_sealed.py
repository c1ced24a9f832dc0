"""The sealed data plane (issue 12), attacked on a real pair: the superuser and the replication role log in only
from the members and the control plane, and tenants reach only their own databases."""
from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from tests.e2e.helpers import INST, PODMAN_ENV, connect, secrets_of, tenant_with_database

pytestmark = pytest.mark.slow
IMAGE = "localhost/pgaas-postgres:15"


def _psql_from(network: str, conninfo: str, password: str, sql: str, member: str | None = None):
    """psql from a throwaway container on `network` (not a member), or from inside `member`."""
    if member:
        cmd = ["podman", "exec", "-e", f"PGPASSWORD={password}", member]
    else:
        cmd = ["podman", "run", "--rm", "--network", network, "-e", f"PGPASSWORD={password}", IMAGE]
    cmd += ["psql", "-XAtq", conninfo + " connect_timeout=5", "-c", sql]
    return subprocess.run(cmd, capture_output=True, text=True, env=PODMAN_ENV, timeout=60)


def _refused_by_hba(stderr: str) -> bool:
    # a reject line (the superuser, the replication role) or no line at all (replication)
    return "pg_hba.conf rejects connection" in stderr or "no pg_hba.conf entry for replication" in stderr


def test_superuser_and_replicator_log_in_only_from_members_and_control_plane(cp, pair):
    secrets = secrets_of(cp, INST)
    su, rep = secrets["pgaas_superuser_password"], secrets["pgaas_replication_password"]
    net, leader, standby = f"pgaas-{INST}", f"pgaas-{INST}-0", f"pgaas-{INST}-1"
    # an outsider on the instance network, holding the right passwords: refused by pg_hba (not by a wrong password)
    out = _psql_from(net, f"host={leader} user=postgres dbname=postgres", su, "select 1")
    assert out.returncode != 0 and _refused_by_hba(out.stderr), out
    out = _psql_from(net, f"host={leader} user=replicator dbname=postgres replication=true", rep, "IDENTIFY_SYSTEM")
    assert out.returncode != 0 and _refused_by_hba(out.stderr), out
    out = _psql_from(net, f"host={leader} user=replicator dbname=postgres", rep, "select 1")
    assert out.returncode != 0 and _refused_by_hba(out.stderr), out
    # the same place still serves everyone else (the admin role): it is the role that is refused, not the address
    out = _psql_from(net, f"host={leader} user=dbadmin dbname=app", pair["admin_password"], "select 7")
    assert out.returncode == 0 and out.stdout.strip() == "7", out
    # a member still logs in (replication and superuser, as pg_rewind does) and streams
    out = _psql_from(net, f"host={leader} user=replicator dbname=postgres replication=true", rep, "IDENTIFY_SYSTEM",
                     member=standby)
    assert out.returncode == 0 and out.stdout.strip(), out
    out = _psql_from(net, f"host={leader} user=postgres dbname=postgres", su, "select 1", member=standby)
    assert out.returncode == 0 and out.stdout.strip() == "1", out
    inst = cp.admin.get(f"/api/v1/instances/{INST}").json()
    assert inst["replicas"][0]["state"] in ("running", "streaming"), inst
    # the control plane still works as the superuser, through the published port
    primary = (inst["primary"]["address"], inst["primary"]["port"])
    with connect(primary, "postgres", su) as c:
        assert c.execute("select count(*) from pg_stat_replication where state = 'streaming'").fetchone() == (1,)


@pytest.fixture(scope="module")
def ca(cp, pair, tmp_path_factory) -> str:
    """The instance's CA certificate, downloaded: the URIs name it relative to where the client runs."""
    r = cp.admin.get(f"/api/v1/instances/{INST}/ca.crt")
    assert r.status_code == 200, r.text
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_text(r.text)
    return str(path)


def _uri(uri: str, ca: str, dbname: str | None = None) -> str:
    uri = uri.replace(f"sslrootcert=pgaas-{INST}-ca.crt", f"sslrootcert={ca}")
    if dbname is None:
        return uri
    base, _, query = uri.partition("?")
    return base.rsplit("/", 1)[0] + "/" + dbname + ("?" + query if query else "")


@pytest.fixture(scope="module")
def two_tenants(cp, pair):
    return [tenant_with_database(cp, name, f"{name}_db") for name in ("sara", "sam")]


def test_tenant_reaches_only_its_own_database_and_metrics_still_sampled(cp, pair, two_tenants, ca):
    (sara, sara_db), (_, sam_db) = two_tenants
    with psycopg.connect(_uri(sara_db["uri"], ca), password=sara_db["password"], connect_timeout=5) as c:
        assert c.execute("select current_database()").fetchone() == ("sara_db",)
    for dbname in ("postgres", "template1", "sam_db"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(_uri(sara_db["uri"], ca, dbname), password=sara_db["password"], connect_timeout=5)
    # the instance's admin role too: its own database, not the maintenance ones
    for dbname in ("postgres", "template1"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(_uri(pair["instance"]["uri"], ca, dbname), password=pair["admin_password"],
                            connect_timeout=5)
    # nothing but the superuser and the monitoring role may connect to postgres or template1
    secrets = secrets_of(cp, INST)
    inst = cp.admin.get(f"/api/v1/instances/{INST}").json()
    with connect((inst["primary"]["address"], inst["primary"]["port"]), "postgres",
                 secrets["pgaas_superuser_password"]) as c:
        open_to = c.execute(
            "select d.datname, r.rolname from pg_database d cross join pg_roles r "
            "where d.datname in ('postgres', 'template1') and r.rolcanlogin and not r.rolsuper "
            "and has_database_privilege(r.oid, d.oid, 'connect') order by 1, 2").fetchall()
        assert open_to == [("postgres", "pgaas_monitor")], open_to
    # the sampler still measures, as its monitoring role (it connects to postgres)
    path = f"/api/v1/instances/{INST}/databases/sara_db/metrics"
    deadline = time.monotonic() + 30
    while not sara.get(path).json().get("points"):
        assert time.monotonic() < deadline, "no sample of sara_db"
        time.sleep(0.5)
    since = time.time()
    deadline = time.monotonic() + 30
    while True:
        last = cp.admin.get(f"/api/v1/instances/{INST}/metrics").json()["points"][-1]
        if last.get("connections") is not None and not last.get("errors") and _epoch(last["at"]) > since:
            break
        assert time.monotonic() < deadline, last
        time.sleep(0.5)


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_an_admin_password_that_looks_like_a_template_is_set_as_typed(cp, tmp_path):
    """The admin password is user text that reaches the deploy (a secret, then psql's stdin on the leader). One
    that Jinja would evaluate, without the characters a password may not hold, works exactly as typed."""
    from tests.e2e.helpers import create, remove_leftovers

    name = f"{INST}-lit"[:40]
    password = "{{7*7}}{{range(3)|list}}{%if(true)%}Pw{%endif%}"
    remove_leftovers(name)
    created, job = create(cp, name, admin_password=password)
    try:
        assert job["status"] == "succeeded", job["error"]
        uri = created["instance"]["uri"]
        ca = tmp_path / "ca.crt"
        ca.write_text(cp.admin.get(f"/api/v1/instances/{name}/ca.crt").text)
        uri = uri.replace(f"sslrootcert=pgaas-{name}-ca.crt", f"sslrootcert={ca}")
        with psycopg.connect(uri, password=password, connect_timeout=5) as c:
            assert c.execute("select current_user").fetchone() == ("dbadmin",)
        for rendered in ("49[0, 1, 2]Pw", "49[0,1,2]Pw"):
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(uri, password=rendered, connect_timeout=5)
    finally:
        r = cp.admin.delete(f"/api/v1/instances/{name}?force=true")
        if r.status_code == 202:
            cp.admin.wait_job(r.json()["job"]["id"], timeout=180)

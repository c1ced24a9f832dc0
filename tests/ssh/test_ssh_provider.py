"""The ssh provider on three lab hosts, over real SSH: primary and standby on different hosts with an etcd of three
members; a tenant database used through its URI from the control plane; the primary's host powered off -> Patroni
fails over with no acknowledged commit lost and the URI unchanged; a rebuild lands on the free host; delete leaves
nothing of the instance on any host."""
from __future__ import annotations

import re
import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO
from tests.e2e.helpers import PODMAN_ENV, secrets_of
from tests.e2e.test_failover import Writer
from tests.ssh.conftest import INSTANCE

pytestmark = pytest.mark.slow
PW = "Admin-password-123"


def state(cp):
    return cp.admin.get(f"/api/v1/instances/{INSTANCE}").json()


def on_host(lab, host, cmd: str) -> str:
    # the ssh provider puts pgaas's containers.conf on a host at the control plane's own CONTAINERS_CONF path
    return lab.ssh(host, f"sudo env CONTAINERS_CONF={REPO / 'etc' / 'containers.conf'} {cmd}").stdout.decode()


def host_of(lab, name):
    return next(h for h in lab.hosts if h.name == name)


def with_ca(api, uri: str, where: Path) -> str:
    """The URI as a client elsewhere would use it: the instance's CA downloaded (GET .../ca.crt, as the URI's
    holder) into a directory of the client's, and named by its absolute path instead of the URI's relative one."""
    r = api.get(f"/api/v1/instances/{INSTANCE}/ca.crt")
    assert r.status_code == 200, r.text
    ca = where / f"pgaas-{INSTANCE}-ca.crt"
    ca.write_text(r.text)
    assert f"sslrootcert=pgaas-{INSTANCE}-ca.crt" in uri and "sslmode=verify-full" in uri, uri
    return uri.replace(f"sslrootcert=pgaas-{INSTANCE}-ca.crt", f"sslrootcert={ca}")


# etcdctl inside an etcd member: etcd requires a client certificate of the instance's CA; the member's own
# (serverAuth + clientAuth, names include 127.0.0.1) is mounted at /etc/pgaas/tls.
ETCDCTL = ("etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/pgaas/tls/ca.crt "
           "--cert=/etc/pgaas/tls/server.crt --key=/etc/pgaas/tls/server.key")


@pytest.fixture(scope="module")
def inst(ssh_cp):
    t = time.monotonic()
    r = ssh_cp.admin.post("/api/v1/instances", json={"name": INSTANCE, "synchronous": True, "admin_password": PW})
    assert r.status_code == 202, r.text
    job = ssh_cp.admin.wait_ok(r.json()["job"]["id"], timeout=300)
    print(f"\ncreate over SSH on lab hosts: {time.monotonic() - t:.1f} s")
    slow = sorted((e for e in job["events"] if e.get("duration")), key=lambda e: -e["duration"])[:12]
    for e in slow:
        print(f"  {e['duration']:6.1f} s  {e['host']:<22} {e['task']}")
    return {"created": r.json(), "job": job}


def test_pair_on_different_hosts_with_three_etcd_members(ssh_cp, lab, inst):
    st = state(ssh_cp)
    assert st["status"] == "available", st
    members = [st["primary"], *st["replicas"]]
    assert len({m["host"] for m in members}) == 2, members
    assert st["same_host"] is False
    assert {m["state"] for m in st["replicas"]} <= {"streaming", "running"}
    assert st["replicas"][0]["sync_state"] == "sync"
    # every member address is a lab host address, and the URI names them
    addresses = {h.name: h.address for h in lab.hosts}
    for m in members:
        assert m["address"] == addresses[m["host"]]
        assert f"{m['address']}:{m['port']}" in st["uri"]
    # etcd: three members (two member hosts and the control plane), all started
    first = host_of(lab, st["primary"]["host"])
    etcd = next(n for n in on_host(lab, first, "podman ps --format '{{.Names}}'").split() if "-etcd-" in n)
    out = on_host(lab, first, f"podman exec {etcd} {ETCDCTL} member list -w json")
    listed = json.loads(out)["members"]
    assert len(listed) == 3 and all(m.get("clientURLs") for m in listed), listed
    # TLS on every etcd hop: each member advertises https for clients and peers
    assert all(u.startswith("https://") for m in listed for u in m["clientURLs"] + m["peerURLs"]), listed
    # the admin's host view: instances per host and free capacity
    hosts = {h["name"]: h for h in ssh_cp.admin.get("/api/v1/hosts").json()["hosts"]}
    for m in members:
        h = hosts[m["host"]]
        assert h["used"] == 1 and h["free"] == 1
        assert h["instances"][0]["name"] == INSTANCE and h["instances"][0]["members"] == [m["container"]]
    free = [h for h in hosts.values() if h["used"] == 0]
    assert len(free) == 1 and free[0]["free"] == 2
    assert [h["key"]["type"] for h in hosts.values()].count("stored") == 1



def test_ports_bind_the_member_address_and_superuser_logs_in_only_from_hosts_and_control_plane(ssh_cp, lab, inst):
    """Issue 12: member, Patroni and etcd ports are published on the address the members reach each other on (the
    host's), not 0.0.0.0; the superuser and the replication role are refused from a machine on the hosts' network
    that is neither a host nor the control plane, while a tenant role logs in from there."""
    st = state(ssh_cp)
    for m in [st["primary"], *st["replicas"]]:
        h = host_of(lab, m["host"])
        names = on_host(lab, h, "podman ps --format '{{.Names}}'").split()
        published = [line.split(" -> ")[1] for n in names if n == m["container"] or "-etcd-" in n
                     for line in on_host(lab, h, f"podman port {n}").splitlines() if " -> " in line]
        assert len(published) >= 4, (h.name, names, published)  # postgres, Patroni, etcd client and peer
        # the member address, and the host's loopback for the roles' own probes; never every interface
        assert {p.rsplit(":", 1)[0] for p in published} - {"127.0.0.1"} == {h.address}, published
        listening = on_host(lab, h, "ss -ltnH").split()
        for p in published:
            port = p.rsplit(":", 1)[1]
            assert f"{h.address}:{port}" in listening and f"0.0.0.0:{port}" not in listening, (p, listening)
            assert f"*:{port}" not in listening and f"[::]:{port}" not in listening, (p, listening)
    secrets = secrets_of(ssh_cp, INSTANCE)
    primary = st["primary"]

    def psql_from_outside(user, password, dbname, sql="select 1", replication=""):
        conninfo = (f"host={primary['address']} port={primary['port']} user={user} dbname={dbname} "
                    f"connect_timeout=5 {replication}")
        return subprocess.run(["podman", "run", "--rm", "--network", lab.network, "-e", f"PGPASSWORD={password}",
                               "localhost/pgaas-postgres:15", "psql", "-XAtq", conninfo, "-c", sql],
                              capture_output=True, text=True, env=PODMAN_ENV, timeout=120)

    out = psql_from_outside("postgres", secrets["pgaas_superuser_password"], "postgres")
    assert out.returncode != 0 and "pg_hba.conf rejects connection" in out.stderr, out
    out = psql_from_outside("replicator", secrets["pgaas_replication_password"], "postgres", "IDENTIFY_SYSTEM",
                            "replication=true")
    assert out.returncode != 0 and "no pg_hba.conf entry for replication" in out.stderr, out
    out = psql_from_outside("dbadmin", PW, inst["created"]["instance"]["admin_database"], "select 7")
    assert out.returncode == 0 and out.stdout.strip() == "7", out


def test_member_hosts_keys_pinned_on_first_contact(ssh_cp, lab, inst):
    """The create pinned each host it reached in the control plane's known_hosts (accept-new): the key there is
    one the host itself presents (ssh-keyscan), and the host list shows its fingerprint."""
    from webapp.providers import known_hosts

    known = ssh_cp.app.config["SSH_KNOWN_HOSTS"]
    st = state(ssh_cp)
    hosts = {h["name"]: h for h in ssh_cp.admin.get("/api/v1/hosts").json()["hosts"]}
    for name in {m["host"] for m in [st["primary"], *st["replicas"]]}:
        h = host_of(lab, name)
        pinned = known_hosts.keys(known, h.address, h.port)
        scan = subprocess.run(["ssh-keyscan", "-p", str(h.port), h.address], capture_output=True, text=True,
                              timeout=30).stdout
        presented = {" ".join(line.split()[1:3]) for line in scan.splitlines() if line and not line.startswith("#")}
        assert pinned and set(pinned) <= presented, (name, pinned, presented)
        assert hosts[name]["host_keys"] == [{"type": k.split()[0], "sha256": known_hosts.fingerprint(k)}
                                            for k in pinned]


def test_stored_key_lives_only_for_the_run(ssh_cp, lab, inst):
    """The stored key was written for each run (the deploy reached every host) and removed after it; it is in no
    event, artifact or answer."""
    key = open(lab.hosts[-1].key_path).read().strip().splitlines()[1]
    jobs_dir = Path(ssh_cp.app.config["JOBS_DIR"])
    files = [p for p in jobs_dir.rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.name.startswith("key-") or p.name == "inventory.yml"]
    assert not [p for p in files if key.encode() in p.read_bytes()]
    assert key not in json.dumps(inst["job"]) and key not in ssh_cp.admin.get("/api/v1/hosts").text


def test_tenant_database_through_its_uri_from_the_control_plane(ssh_cp, inst, tmp_path):
    r = ssh_cp.alice.post(f"/api/v1/instances/{INSTANCE}/databases", json={"name": "shop"})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    uri, readonly_uri = (with_ca(ssh_cp.alice, db[k], tmp_path) for k in ("uri", "readonly_uri"))
    with psycopg.connect(uri, password=db["password"], connect_timeout=5, autocommit=True) as c:
        assert c.info.pgconn.ssl_in_use
        c.execute("create table orders (id int primary key, item text)")
        c.execute("insert into orders values (1, 'tea')")
        assert c.execute("select item from orders").fetchone()[0] == "tea"
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is False
    deadline = time.monotonic() + 15  # synchronous commit waits for the standby's flush, not its replay
    while True:
        try:
            with psycopg.connect(readonly_uri, password=db["password"], connect_timeout=5) as c:
                assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True  # the standby, other host
                if c.execute("select count(*) from orders").fetchone()[0] == 1:
                    break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_power_off_the_primary_host_fails_over_without_losing_a_commit_then_rebuild_on_the_free_host(ssh_cp, lab, inst,
                                                                                                     tmp_path):
    before = state(ssh_cp)
    uri, old = with_ca(ssh_cp.admin, before["uri"], tmp_path), before["primary"]
    with psycopg.connect(uri, password=PW, autocommit=True) as c:
        c.execute("create database ha_app")
    app_uri = re.sub(r"/\w+\?", "/ha_app?", uri, count=1)
    with psycopg.connect(app_uri, password=PW, autocommit=True) as c:
        c.execute("create table ha_rows (id int primary key)")
    writer = Writer(app_uri, PW)
    writer.start()
    time.sleep(1.5)
    assert len(writer.acked) > 10
    stopped_at = time.monotonic()
    lab.stop(host_of(lab, old["host"]))

    def resumed_at():
        fails = [t for t in writer.failures if t >= stopped_at]
        after = [t for t in writer.acked_at if fails and t > fails[-1]]
        return after[0] if len(after) >= 20 else None

    deadline = stopped_at + 90
    while time.monotonic() < deadline and resumed_at() is None:
        time.sleep(0.1)
    writer.stop.set()
    writer.join(timeout=10)
    assert resumed_at() is not None, "writes never failed and resumed"
    print(f"\nhost power-off -> first acknowledged write on the new primary: {resumed_at() - stopped_at:.1f} s; "
          f"acknowledged {len(writer.acked)}, failed attempts {len(writer.failures)}")
    with psycopg.connect(app_uri, password=PW, connect_timeout=5) as c:
        present = {r[0] for r in c.execute("select id from ha_rows")}
    lost = [i for i in writer.acked if i not in present]
    assert lost == [], f"acknowledged commits lost: {lost[:20]}"
    deadline = time.monotonic() + 30
    while (after := state(ssh_cp))["primary"] is None or after["primary"]["container"] == old["container"]:
        assert time.monotonic() < deadline, after
        time.sleep(0.5)
    assert after["uri"] == before["uri"]
    assert after["primary"]["host"] != old["host"]

    # rebuild the lost member: it lands on the host that runs nothing of the instance
    used = {m["host"] for m in [before["primary"], *before["replicas"]]}
    free_host = next(h.name for h in lab.hosts if h.name not in used)
    t = time.monotonic()
    r = ssh_cp.admin.post(f"/api/v1/instances/{INSTANCE}/rebuild", json={"member": old["container"]})
    assert r.status_code == 202, r.text
    ssh_cp.admin.wait_ok(r.json()["job"]["id"], timeout=300)
    print(f"rebuild on the free host: {time.monotonic() - t:.1f} s")
    st = state(ssh_cp)
    rebuilt = next(m for m in st["replicas"] if m["container"] == old["container"])
    assert rebuilt["host"] == free_host and rebuilt["state"] in ("streaming", "running"), st
    # its certificate was issued again for its new address: verify-full passes against it
    with psycopg.connect(host=rebuilt["address"], port=rebuilt["port"], dbname="ha_app", user="dbadmin", password=PW,
                         sslmode="verify-full", sslrootcert=str(tmp_path / f"pgaas-{INSTANCE}-ca.crt"),
                         connect_timeout=5) as c:
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is True
        deadline = time.monotonic() + 20
        while c.execute("select count(*) from ha_rows").fetchone()[0] < len(writer.acked):
            assert time.monotonic() < deadline
            time.sleep(0.3)


def test_delete_removes_everything_from_the_hosts(ssh_cp, lab, inst):
    for h in lab.hosts:
        if not lab.running(h):
            lab.start(h)  # a host that comes back still holds the old member's leftovers
    r = ssh_cp.admin.delete(f"/api/v1/instances/{INSTANCE}?force=true")
    assert r.status_code == 202, r.text
    ssh_cp.admin.wait_ok(r.json()["job"]["id"], timeout=180)
    assert ssh_cp.admin.get(f"/api/v1/instances/{INSTANCE}").status_code == 404
    label = f"label=pgaas.instance={INSTANCE}"
    for h in lab.hosts:
        left = on_host(lab, h, f"sh -c \"podman ps -a --filter {label} --format '{{{{.Names}}}}'; "
                               f"podman volume ls --filter {label} --format '{{{{.Name}}}}'; "
                               f"podman network ls --format '{{{{.Name}}}}' | grep -x pgaas-{INSTANCE}; "
                               f"ls -d /var/lib/pgaas/instances/{INSTANCE} 2>/dev/null; true\"")
        assert left.split() == [], (h.name, left)
    from tests.e2e.helpers import leftovers

    assert leftovers(INSTANCE) == {"containers": [], "volumes": [], "networks": []}  # the control plane's etcd
    hosts = ssh_cp.admin.get("/api/v1/hosts").json()["hosts"]
    assert all(h["used"] == 0 and h["instances"] == [] and h["etcd_only"] == [] for h in hosts), hosts

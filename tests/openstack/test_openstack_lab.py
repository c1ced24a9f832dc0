"""The whole path with machines behind the OpenStack TEST DOUBLE: openstacksdk/openstack.cloud -> "cloud" -> a lab
host per server (tests/lab) -> SSH -> podman -> Patroni. The control plane creates an instance with the openstack
provider, the instance becomes available on two servers in one anti-affinity group, each member's data on its own
(loop-backed) volume; delete removes every server, volume and lab host."""
from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from tests.e2e.helpers import PODMAN_ENV, connect, secrets_of
from tests.openstack.conftest import NAME, openstack_cp, write_clouds_yaml
from tests.openstack_double import CloudDouble

# 107 s on this 2-core machine when quiet (about nine minutes under load 10-20): two lab hosts, deploy, grow, delete.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab_cloud(tmp_path_factory):
    from tests.openstack_double.lab_hosts import LabHosts

    double = CloudDouble(hosts=LabHosts("lab-os"))
    double.start()
    double.clouds_file = write_clouds_yaml(double, tmp_path_factory.mktemp("clouds") / "clouds.yaml")
    yield double
    double.stop()


def _lab_hosts() -> list[str]:
    return subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", "label=pgaas.lab=lab-os"],
                          capture_output=True, text=True).stdout.split()


def _in_host(handle: str, *cmd: str) -> str:
    return subprocess.run(["podman", "exec", handle, *cmd], check=True, capture_output=True, text=True).stdout


def test_instance_on_openstack_servers_backed_by_lab_hosts(lab_cloud, tmp_path):
    gateway = str(lab_cloud.hosts.subnet.network_address + 1)
    live = openstack_cp(lab_cloud, tmp_path, OPENSTACK_SSH_USER="lab", OPENSTACK_CONTROL_CIDRS=f"{gateway}/32",
                        OPENSTACK_CONNECT_TIMEOUT=60)
    try:
        r = live.admin.post("/api/v1/instances", json={"name": NAME, "storage_gb": 1,
                                                       "admin_password": "Admin-password-123"})
        assert r.status_code == 202, r.text
        live.admin.wait_ok(r.json()["job"]["id"], timeout=900)
        inst = live.admin.get(f"/api/v1/instances/{NAME}").json()
        assert inst["status"] == "available", inst
        servers = {s["name"]: s for s in lab_cloud.servers.values()}
        assert sorted(servers) == [f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]
        assert len({s["compute_host"] for s in servers.values()}) == 2
        backing = {sid: b.handle for sid, b in lab_cloud._backing.items()}
        for s in servers.values():
            disk = _in_host(backing[s["id"]], "findmnt", "-n", "-o", "SOURCE,SIZE",
                            f"/var/lib/pgaas/disks/{s['name']}")
            assert disk.split()[0] == "/dev/vdb", disk
        with connect((inst["primary"]["address"], inst["primary"]["port"]), "dbadmin", "Admin-password-123",
                     dbname=inst["admin_database"]) as c:
            assert c.execute("select 1").fetchone() == (1,)
        # TLS on OpenStack: the servers' addresses were known only once the provisioning run made them, and the
        # certificates issued after it name them: every member verifies (verify-full) at its connect address.
        r = live.admin.get(inst["tls"]["ca_cert_url"])
        assert r.status_code == 200, r.text
        (tmp_path / "ca.crt").write_text(r.text)
        for m in [inst["primary"], *inst["replicas"]]:
            with connect((m["address"], m["port"]), "dbadmin", "Admin-password-123", sslmode="verify-full",
                         sslrootcert=str(tmp_path / "ca.crt"),
                         dbname=inst["admin_database"]) as c:
                assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (True,)
        with psycopg.connect(inst["uri"], password="Admin-password-123", connect_timeout=5) as c:  # verify-full
            assert "sslmode=verify-full" in inst["uri"] and c.execute("select 1").fetchone() == (1,)
        # pg_hba: the superuser and the replication role only from the servers and the control plane's CIDRs; a
        # machine on the servers' network that is neither is refused (a tenant role still logs in from there).
        secrets = secrets_of(live, NAME)

        def psql_from_outside(user, password, sql="select 1", replication=""):
            conninfo = (f"host={inst['primary']['address']} port={inst['primary']['port']} user={user} "
                        f"dbname={inst['admin_database']} sslmode=require connect_timeout=5 "
                        f"{replication}")
            return subprocess.run(["podman", "run", "--rm", "--network", lab_cloud.hosts.lab.network,
                                   "-e", f"PGPASSWORD={password}", "localhost/pgaas-postgres:15", "psql", "-XAtq",
                                   conninfo, "-c", sql], capture_output=True, text=True, env=PODMAN_ENV, timeout=120)

        out = psql_from_outside("postgres", secrets["pgaas_superuser_password"])
        assert out.returncode != 0 and "pg_hba.conf rejects connection" in out.stderr, out
        out = psql_from_outside("replicator", secrets["pgaas_replication_password"], "IDENTIFY_SYSTEM",
                                "replication=true")
        assert out.returncode != 0 and "no pg_hba.conf entry for replication" in out.stderr, out
        out = psql_from_outside("dbadmin", "Admin-password-123", "select 7")
        assert out.returncode == 0 and out.stdout.strip() == "7", out
        # each server's host key was pinned on first contact in the control plane's known_hosts
        from webapp.providers import known_hosts

        known = live.app.config["SSH_KNOWN_HOSTS"]
        addresses = [m["address"] for m in [inst["primary"], *inst["replicas"]]]
        assert len(addresses) == 2 and all(known_hosts.keys(known, a, 22) for a in addresses), open(known).read()

        # Fill every member's data disk to the last block, then grow storage_gb: the volumes are extended in use
        # and the filesystems grow online, full as they are.
        for s in servers.values():
            mount = f"/var/lib/pgaas/disks/{s['name']}"
            _in_host(backing[s["id"]], "sh", "-c",
                     f"fallocate -l $(( $(df -B1 --output=avail {mount} | tail -1) - 8388608 )) {mount}/filler; "
                     f"dd if=/dev/zero of={mount}/filler2 bs=64k status=none || true")
            assert int(_in_host(backing[s["id"]], "df", "-B1", "--output=avail", mount).split()[-1]) < 2**20
        r = live.admin.patch(f"/api/v1/instances/{NAME}", json={"storage_gb": 2})
        assert r.status_code == 202, r.text
        live.admin.wait_ok(r.json()["job"]["id"], timeout=600)
        for s in servers.values():
            assert lab_cloud.volumes[s["volumes"][0]]["size"] == 2
            size = int(_in_host(backing[s["id"]], "df", "-B1", "--output=size",
                                f"/var/lib/pgaas/disks/{s['name']}").split()[-1])
            assert size > 1.5 * 2**30, size
        assert live.admin.get(f"/api/v1/instances/{NAME}").json()["storage_gb"] == 2
        # PostgreSQL itself may have hit ENOSPC while the disks were full: the pair comes back on its own.
        deadline = time.monotonic() + 180
        while True:
            try:
                with psycopg.connect(inst["uri"], password="Admin-password-123", connect_timeout=5,
                                     autocommit=True) as c:  # a write that needs the disk: a new database
                    c.execute("create database grown")
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    logs = "; ".join(_in_host(backing[s["id"]], "sh", "-c", f"podman logs --tail 5 {s['name']} 2>&1")
                                     for s in servers.values())
                    pytest.fail(f"no writable primary after the volumes grew: {exc}; {logs}")
                time.sleep(2)

        r = live.admin.delete(f"/api/v1/instances/{NAME}")
        live.admin.wait_ok(r.json()["job"]["id"], timeout=300)
        assert not lab_cloud.servers and not lab_cloud.volumes
        assert [known_hosts.keys(known, a, 22) for a in addresses] == [[], []]  # clouds reuse addresses
        deadline = time.monotonic() + 60
        while _lab_hosts() and time.monotonic() < deadline:  # the double destroys them in the background
            time.sleep(1)
        assert not _lab_hosts()
    finally:
        live.close()

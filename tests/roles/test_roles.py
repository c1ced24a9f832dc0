"""Role tests: converge the real playbooks through ansible-runner against real podman containers, rerun for
idempotence, verify replication, secrecy and labels, then tear down without touching another instance.

Slow (a real Patroni pair); run with: pytest tests/roles -m slow
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import ansible_runner
import psycopg
import pytest
import yaml

from webapp.services import certificates

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = str(REPO / "etc" / "containers.conf")
INVENTORY = str(REPO / "inventory" / "local" / "hosts.yml")
IMAGE = "localhost/pgaas-postgres:15"
BIN_DIR = str(Path(sys.executable).parent)

pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = CONTAINERS_CONF
    if BIN_DIR not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = BIN_DIR + os.pathsep + env.get("PATH", "")
    return env


# ansible-runner looks up ansible-playbook on this process's PATH.
os.environ["PATH"] = _env()["PATH"]


def podman(*args: str, check: bool = True) -> str:
    out = subprocess.run(["podman", *args], env=_env(), check=check, capture_output=True, text=True)
    return out.stdout


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def run_playbook(private_data_dir: Path, playbook: str, extravars: dict):
    private_data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    started = time.monotonic()
    r = ansible_runner.run(
        private_data_dir=str(private_data_dir),
        project_dir=str(REPO),
        playbook=playbook,
        inventory=INVENTORY,
        extravars=extravars,
        envvars={"CONTAINERS_CONF": CONTAINERS_CONF},
        quiet=True,
    )
    r.duration = time.monotonic() - started
    return r


def artifact_data(r) -> dict:
    for event in reversed(list(r.events)):
        if event.get("event") == "playbook_on_stats":
            return event["event_data"].get("artifact_data") or {}
    return {}


def changed_hosts(r) -> dict:
    return {host: n for host, n in (r.stats or {}).get("changed", {}).items() if n}


def labelled(kind: str, instance: str) -> list[str]:
    flt = f"label=pgaas.instance={instance}"
    if kind == "container":
        return podman("ps", "--all", "--filter", flt, "--format", "{{.Names}}").split()
    if kind == "volume":
        return podman("volume", "ls", "--filter", flt, "--format", "{{.Name}}").split()
    return podman("network", "ls", "--filter", flt, "--format", "{{.Name}}").split()


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    """Build the image once (a no-op when it exists)."""
    r = run_playbook(tmp_path_factory.mktemp("image"), "playbooks/image.yml", {"pgaas_image": IMAGE})
    assert r.status == "successful", r.stdout.read()
    return IMAGE


@pytest.fixture(scope="module")
def instance(image, tmp_path_factory):
    name = "rt-" + uuid.uuid4().hex[:8]
    other = name + "x"  # shares the prefix: teardown of `name` must not touch it
    base = tmp_path_factory.mktemp("roles")
    secrets_file = base / "secrets.json"
    pw = {
        key: f"{key.split('_')[1]}-{secrets.token_urlsafe(18)}"
        for key in (
            "pgaas_superuser_password",
            "pgaas_replication_password",
            "pgaas_admin_password",
            "pgaas_restapi_password",
        )
    }
    ports = free_ports(4)
    members = [
        {"name": f"pgaas-{name}-0", "host": "localhost", "pg_port": ports[0], "api_port": ports[1]},
        {"name": f"pgaas-{name}-1", "host": "localhost", "pg_port": ports[2], "api_port": ports[3]},
    ]
    # the certificates, as the control plane issues them (webapp/services/certificates.py)
    tls = certificates.issue_all(SimpleNamespace(name=name, meta={}, members=[
        SimpleNamespace(name=m["name"], address="127.0.0.1") for m in members]), None)
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**pw, "pgaas_tls_ca_cert": tls["ca_cert"], "pgaas_tls_certs": tls["certs"]}, fh)
    # what must never reach events, artifacts or facts: the passwords and the private keys
    pw = {**pw, **{f"tls_key_{n}": c["key"].splitlines()[1] for n, c in tls["certs"].items()}}
    extravars = {
        "pgaas_instance_name": name,
        "pgaas_synchronous": True,
        "pgaas_admin_user": name.replace("-", "_") + "_admin",
        "pgaas_members": members,
        "pgaas_cpus": 1,
        "pgaas_memory_mb": 512,
        "pgaas_storage_gb": 1,
        "pgaas_secrets_file": str(secrets_file),
        "pgaas_image": image,
    }
    # The other instance's things (must survive our teardown).
    podman("volume", "create", "--label", f"pgaas.instance={other}", f"pgaas-{other}-0-data")
    podman("network", "create", "--label", f"pgaas.instance={other}", f"pgaas-{other}")

    first = run_playbook(base / "deploy1", "playbooks/instance_deploy.yml", extravars)
    state = {
        "name": name,
        "other": other,
        "extravars": extravars,
        "secrets": pw,
        "members": members,
        "first": first,
        "dirs": [base / "deploy1"],
        "base": base,
    }
    try:
        yield state
    finally:
        for inst in (name, other):
            run_playbook(base / f"cleanup-{inst}", "playbooks/instance_teardown.yml", {"pgaas_instance_name": inst})


def test_deploy_succeeds_fast(instance):
    r = instance["first"]
    assert r.status == "successful", r.stdout.read()
    print(f"first deploy took {r.duration:.1f} s")
    assert r.duration < 60


def test_result_reported_with_set_stats(instance):
    result = artifact_data(instance["first"])["pgaas_result"]
    members = instance["members"]
    assert result["leader"] == members[0]["name"]
    by_name = {m["name"]: m for m in result["members"]}
    assert set(by_name) == {m["name"] for m in members}
    assert by_name[members[0]["name"]]["role"] == "leader"
    assert by_name[members[1]["name"]]["role"] in ("sync_standby", "replica")
    assert all(m["state"] in ("running", "streaming") for m in result["members"])
    assert all(m["timeline"] >= 1 for m in result["members"])
    assert result["server_version"].startswith("15.")
    # the wheel postgres_image installs over Debian's 3.0.2 (patroni/patroni#2689)
    wanted = yaml.safe_load((REPO / "roles/postgres_image/defaults/main.yml").read_text())["postgres_image_patroni_version"]
    assert result["patroni_version"] == wanted
    assert result["image"] == IMAGE
    assert result["image_id"]
    host = result["hosts"]["localhost"]
    assert host["distribution"].startswith("Debian")
    assert host["vcpus"] >= 1 and host["memtotal_mb"] > 0 and host["kernel"]


def test_rerun_is_idempotent(instance):
    base = instance["base"] / "deploy2"
    r = run_playbook(base, "playbooks/instance_deploy.yml", instance["extravars"])
    instance["dirs"].append(base)
    assert r.status == "successful", r.stdout.read()
    print(f"rerun took {r.duration:.1f} s")
    assert changed_hosts(r) == {}
    assert artifact_data(r)["pgaas_result"]["leader"] == instance["members"][0]["name"]


def test_no_secret_in_events_artifacts_or_facts(instance):
    r = instance["first"]
    values = list(instance["secrets"].values())
    blob = json.dumps(list(r.events))
    for value in values:
        assert value not in blob
    for d in instance["dirs"]:
        for path in Path(d).rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                for value in values:
                    assert value not in text, f"secret found in {path}"
                if "fact_cache" in path.parts:
                    assert "ansible_env" not in text and '"env"' not in text, path


def test_replication_reaches_standby_within_one_second(instance):
    m0, m1 = instance["members"]
    pw = instance["secrets"]["pgaas_superuser_password"]
    marker = uuid.uuid4().hex
    with psycopg.connect(host="127.0.0.1", port=m0["pg_port"], user="postgres", password=pw, dbname="postgres",
                         connect_timeout=5, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("CREATE TABLE IF NOT EXISTS pgaas_rt (v text)")
        conn.execute("INSERT INTO pgaas_rt VALUES (%s)", (marker,))
    with psycopg.connect(host="127.0.0.1", port=m1["pg_port"], user="postgres", password=pw, dbname="postgres",
                         connect_timeout=5, autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        deadline = time.monotonic() + 1.0
        while True:
            try:
                found = conn.execute("SELECT count(*) FROM pgaas_rt WHERE v = %s", (marker,)).fetchone()[0]
            except psycopg.errors.UndefinedTable:
                found = 0
            if found:
                break
            assert time.monotonic() < deadline, "row not on the standby within 1 s"
            time.sleep(0.05)


def test_synchronous_standby_and_admin_role(instance):
    m0 = instance["members"][0]
    admin = instance["extravars"]["pgaas_admin_user"]
    with psycopg.connect(host="127.0.0.1", port=m0["pg_port"], user=admin,
                         password=instance["secrets"]["pgaas_admin_password"], dbname="app",
                         connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row == (False, True, False, True)  # no CREATEROLE: on PostgreSQL 15 it reaches pg_execute_server_program
        # the admin's own database, created with the instance: the first CREATE TABLE works
        conn.execute("CREATE TABLE IF NOT EXISTS first_table (id int)")
    with psycopg.connect(host="127.0.0.1", port=m0["pg_port"], user="postgres",
                         password=instance["secrets"]["pgaas_superuser_password"], dbname="postgres",
                         connect_timeout=5) as conn:
        states = conn.execute("SELECT state, sync_state FROM pg_stat_replication").fetchall()
        assert ("streaming", "sync") in states


def test_resources_named_labelled_and_local_only(instance):
    name = instance["name"]
    containers = sorted(labelled("container", name))
    assert containers == sorted([f"pgaas-{name}-etcd"] + [m["name"] for m in instance["members"]])
    assert sorted(labelled("volume", name)) == sorted(
        [f"pgaas-{name}-etcd-data"] + [m["name"] + "-data" for m in instance["members"]]
    )
    assert labelled("network", name) == [f"pgaas-{name}"]
    for m in instance["members"]:
        info = json.loads(podman("container", "inspect", m["name"]))[0]
        labels = info["Config"]["Labels"]
        assert labels["pgaas.instance"] == name
        assert labels["pgaas.component"] == "postgres"
        assert labels["pgaas.member"] == m["name"]
        bindings = info["HostConfig"]["PortBindings"]
        assert {b["HostIp"] for v in bindings.values() for b in (v or [])} == {"127.0.0.1"}
        assert info["HostConfig"]["Memory"] == 512 * 1024 * 1024
        conf = Path(f"/var/lib/pgaas/instances/{name}/{m['name']}/patroni.yml")
        assert conf.stat().st_mode & 0o777 == 0o600
        assert conf.parent.stat().st_mode & 0o777 == 0o700


def test_teardown_removes_only_this_instance(instance):
    name, other = instance["name"], instance["other"]
    base = instance["base"]
    r = run_playbook(base / "teardown1", "playbooks/instance_teardown.yml",
                     {"pgaas_instance_name": name, "pgaas_hosts": ["localhost"]})
    assert r.status == "successful", r.stdout.read()
    for kind in ("container", "volume", "network"):
        assert labelled(kind, name) == [], kind
    assert not Path(f"/var/lib/pgaas/instances/{name}").exists()
    assert labelled("volume", other) == [f"pgaas-{other}-0-data"]
    assert labelled("network", other) == [f"pgaas-{other}"]
    again = run_playbook(base / "teardown2", "playbooks/instance_teardown.yml", {"pgaas_instance_name": name})
    assert again.status == "successful"
    assert changed_hosts(again) == {}


def test_ansible_lint_production_profile_passes():
    out = subprocess.run(
        [str(Path(BIN_DIR) / "ansible-lint"), "--nocolor", "playbooks", "roles"],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr

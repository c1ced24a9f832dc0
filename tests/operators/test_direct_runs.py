"""An operator's direct runs of the playbooks: plain `ansible-playbook` against an inventory and the short vars file
of examples/pair.yml, nothing from the control plane (docs/operators.md).

On this machine (the example inventory's localhost): the deploy makes the secrets file beside the inventory (0600)
and serves TLS that verifies with its CA; a second deploy changes nothing; settings, restart and switchover act on
the running pair; the teardown removes containers and network, and the volumes only when not asked to keep them.
No secret of the file ever appears in ansible-playbook's output."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.helpers import leftovers, remove_leftovers

NAME = "opsplay-direct"
BASE_PORT = int(os.environ.get("PGAAS_OPERATORS_BASE_PORT", "31010"))  # members on BASE_PORT..BASE_PORT+3
ADMIN = NAME.replace("-", "_") + "_admin"
SECRET_KEYS = {"pgaas_superuser_password", "pgaas_replication_password", "pgaas_restapi_password",
               "pgaas_admin_password", "pgaas_tls_ca_cert", "pgaas_tls_ca_key", "pgaas_tls_certs", "pgaas_tls_client"}
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def play(tmp: Path, playbook: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """`ansible-playbook playbooks/<playbook> -i <tmp>/hosts.yml -e @examples/pair.yml` with this test's name and
    ports, as an operator types it."""
    out = subprocess.run(
        [PLAYBOOK, f"playbooks/{playbook}", "-i", str(tmp / "hosts.yml"), "-e", "@examples/pair.yml",
         "-e", f"pgaas_instance_name={NAME}", "-e", f"pgaas_base_port={BASE_PORT}", *extra],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    if check:
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    return out


def changed(out: subprocess.CompletedProcess) -> dict[str, int]:
    recap = out.stdout.split("PLAY RECAP", 1)[1]
    return {h: int(n) for h, n in re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", recap, re.M)}


def secret_values(secrets: dict) -> set[str]:
    """Every secret string of the file, and every long line of a PEM (a key printed in parts is still printed)."""
    found: set[str] = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, str):
            found.add(v)
            found.update(line for line in v.splitlines() if len(line) >= 16 and "-----" not in line)

    walk({k: v for k, v in secrets.items() if k != "pgaas_tls_ca_cert"})  # the CA certificate is public
    return found


def assert_no_secret(out: subprocess.CompletedProcess, secrets: dict) -> None:
    text = out.stdout + out.stderr
    leaked = [v[:6] + "..." for v in secret_values(secrets) if v in text]
    assert leaked == [], leaked


def connect(port: int, ctx: dict, dbname: str = "app"):
    return psycopg.connect(host="localhost", port=port, user=ADMIN, password=ctx["secrets"]["pgaas_admin_password"],
                           dbname=dbname, sslmode="verify-full", sslrootcert=str(ctx["ca"]), connect_timeout=5)


def query(port: int, ctx: dict, sql: str) -> list[tuple]:
    with connect(port, ctx) as c:
        return c.execute(sql).fetchall()


def roles(ctx: dict) -> dict[str, int]:
    """{'primary': port, 'standby': port} of the pair, asked over TLS."""
    out = {}
    for port in (BASE_PORT, BASE_PORT + 2):
        with connect(port, ctx) as c:
            out["standby" if c.execute("select pg_is_in_recovery()").fetchone()[0] else "primary"] = port
    return out


def eventually(check, timeout: float = 20.0):
    end = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
            pass
        if time.monotonic() > end:
            return check()
        time.sleep(0.5)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operator")
    shutil.copy(REPO / "inventory" / "example" / "hosts.yml", tmp / "hosts.yml")
    remove_leftovers(NAME)
    started = time.monotonic()
    first = play(tmp, "instance_deploy.yml")
    print(f"first deploy took {time.monotonic() - started:.1f} s")
    secrets_file = tmp / f"pgaas-{NAME}.secrets.yml"
    secrets = yaml.safe_load(secrets_file.read_text())
    ca = tmp / "ca.crt"
    ca.write_text(secrets["pgaas_tls_ca_cert"])
    try:
        yield {"tmp": tmp, "first": first, "file": secrets_file, "secrets": secrets, "ca": ca}
    finally:  # what a failed test left (podman directly: quicker than a teardown play)
        remove_leftovers(NAME)
        shutil.rmtree(f"/var/lib/pgaas/instances/{NAME}", ignore_errors=True)


def test_deploy_writes_a_private_secrets_file_and_serves_tls(pair):
    assert pair["file"].stat().st_mode & 0o777 == 0o600
    secrets = pair["secrets"]
    assert set(secrets) == SECRET_KEYS
    # the control plane's certificate names (webapp/services/certificates.py member_names), and its client's
    assert set(secrets["pgaas_tls_certs"]) == {f"pgaas-{NAME}-0", f"pgaas-{NAME}-1", f"pgaas-{NAME}-etcd"}
    assert all(set(c) == {"cert", "key"} for c in [*secrets["pgaas_tls_certs"].values(), secrets["pgaas_tls_client"]])
    assert_no_secret(pair["first"], secrets)
    # verify-full with the generated CA: the admin writes on the primary, the standby shows the row
    r = roles(pair)
    with connect(r["primary"], pair) as c:
        c.execute("create table direct_run (note text)")
        c.execute("insert into direct_run values ('written by the operator')")
    assert eventually(lambda: query(r["standby"], pair, "select note from direct_run")) == [("written by the operator",)]


def test_a_second_deploy_changes_nothing(pair):
    before = pair["file"].read_bytes(), pair["file"].stat().st_mtime_ns
    started = time.monotonic()
    again = play(pair["tmp"], "instance_deploy.yml")
    print(f"second deploy took {time.monotonic() - started:.1f} s")
    recap = changed(again)
    assert recap and set(recap.values()) == {0}, recap
    assert (pair["file"].read_bytes(), pair["file"].stat().st_mtime_ns) == before  # no new password, no new certificate
    assert_no_secret(again, pair["secrets"])


def test_settings_then_restart_then_switchover(pair):
    out = play(pair["tmp"], "instance_settings.yml", "-e", '{"pgaas_settings": {"log_min_duration_statement": 250}}')
    assert_no_secret(out, pair["secrets"])

    def applied():
        return all(query(p, pair, "show log_min_duration_statement") == [("250ms",)] for p in (BASE_PORT, BASE_PORT + 2))
    assert eventually(applied)

    def started_at():
        return {p: query(p, pair, "select pg_postmaster_start_time()")[0][0] for p in (BASE_PORT, BASE_PORT + 2)}
    before = started_at()
    assert_no_secret(play(pair["tmp"], "instance_restart.yml"), pair["secrets"])
    after = eventually(started_at)
    assert all(after[p] > before[p] for p in before), (before, after)  # every member restarted

    primary = eventually(lambda: roles(pair))["primary"]
    assert_no_secret(play(pair["tmp"], "instance_switchover.yml"), pair["secrets"])
    assert eventually(lambda: roles(pair).get("primary") not in (None, primary))


def test_plays_without_their_inputs_say_what_is_missing(pair, tmp_path):
    shutil.copy(REPO / "inventory" / "example" / "hosts.yml", tmp_path / "hosts.yml")
    no_ports = subprocess.run([PLAYBOOK, "playbooks/instance_deploy.yml", "-i", str(tmp_path / "hosts.yml"),
                               "-e", f"pgaas_instance_name={NAME}"], cwd=REPO, capture_output=True, text=True)
    assert no_ports.returncode != 0 and "give its short form: pgaas_base_port" in no_ports.stdout
    # another inventory directory has no secrets file: a switchover there is refused before it touches anything
    elsewhere = play(tmp_path, "instance_switchover.yml", "-e", "pgaas_action=switchover", check=False)
    assert elsewhere.returncode != 0 and "deploy the instance first" in elsewhere.stdout
    assert not list(tmp_path.glob("*.secrets.yml"))


def test_teardown_keeps_the_volumes_when_asked_then_removes_them(pair):
    play(pair["tmp"], "instance_teardown.yml", "-e", "pgaas_keep_volumes=true")
    left = leftovers(NAME)
    assert left["containers"] == [] and left["networks"] == []
    assert sorted(left["volumes"]) == [f"pgaas-{NAME}-0-data", f"pgaas-{NAME}-1-data", f"pgaas-{NAME}-etcd-data"]
    play(pair["tmp"], "instance_teardown.yml")
    assert leftovers(NAME) == {"containers": [], "volumes": [], "networks": []}
    assert not Path(f"/var/lib/pgaas/instances/{NAME}").exists()
    assert pair["file"].exists()  # the secrets stay with the inventory

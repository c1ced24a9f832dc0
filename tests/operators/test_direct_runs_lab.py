"""An operator's direct deploy across two lab hosts (tests/lab: SSH-reachable Debian-like machines): plain
`ansible-playbook` with an inventory of the two hosts and the short form (pgaas_hosts, pgaas_base_port), a member on
each host, an etcd member on each, TLS that verifies against the generated CA at each host's address; then the
teardown of both hosts."""
from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
import yaml

from tests.conftest import REPO
from tests.lab import lab_fixture
from tests.operators.test_direct_runs import PLAYBOOK, assert_no_secret, eventually

pytestmark = pytest.mark.slow
NAME = "opsplay-lab"
BASE_PORT = 31100


lab2 = lab_fixture("lab-opsplay", 2)


def test_a_pair_across_two_lab_hosts(lab2, tmp_path):
    lab, hosts = lab2
    inventory = lab.inventory()
    for h in hosts:  # what an operator adds per host (docs/operators.md, "Hosts other than this machine")
        inventory["all"]["children"]["lab"]["hosts"][h.name].update(
            pgaas_host_engine_provider="ssh", pgaas_host_publish_address=h.address)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "pair.yml").write_text(yaml.safe_dump(
        {"pgaas_instance_name": NAME, "pgaas_hosts": [h.name for h in hosts], "pgaas_base_port": BASE_PORT}))

    def play(playbook):
        out = subprocess.run([PLAYBOOK, f"playbooks/{playbook}", "-i", str(tmp_path / "hosts.yml"),
                              "-e", f"@{tmp_path / 'pair.yml'}"], cwd=REPO, capture_output=True, text=True,
                             env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
        return out

    deployed = play("instance_deploy.yml")
    secrets = yaml.safe_load((tmp_path / f"pgaas-{NAME}.secrets.yml").read_text())
    assert set(secrets["pgaas_tls_certs"]) == {f"pgaas-{NAME}-0", f"pgaas-{NAME}-1", f"pgaas-{NAME}-etcd-0",
                                               f"pgaas-{NAME}-etcd-1"}
    assert_no_secret(deployed, secrets)
    ca = tmp_path / "ca.crt"
    ca.write_text(secrets["pgaas_tls_ca_cert"])

    def query(host, sql):  # verify-full at the host's address: the member's certificate names it
        with psycopg.connect(host=host.address, port=BASE_PORT + 2 * hosts.index(host), dbname="app",
                             user=NAME.replace("-", "_") + "_admin", password=secrets["pgaas_admin_password"],
                             sslmode="verify-full", sslrootcert=str(ca), connect_timeout=5) as c:
            cur = c.execute(sql)
            return cur.fetchall() if cur.description else []

    standby = [h for h in hosts if query(h, "select pg_is_in_recovery()") == [(True,)]]
    primary = [h for h in hosts if h not in standby]
    assert len(primary) == 1 and len(standby) == 1
    query(primary[0], "create table across (note text); insert into across values ('two hosts')")
    assert eventually(lambda: query(standby[0], "select note from across")) == [("two hosts",)]

    play("instance_teardown.yml")
    for h in hosts:
        left = lab.ssh(h, f"sudo podman ps -a --filter label=pgaas.instance={NAME} --format '{{{{.Names}}}}'")
        assert left.stdout.decode().split() == [], left.stdout

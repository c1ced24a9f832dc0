"""An etcd of three members on three SSH hosts, made before TLS (plain http for clients and peers, as the etcd role
ran before TLS), converged by today's role onto TLS: etcd keeps the peer URLs of its membership in its data, not
in its flags, so a restart on https alone leaves every member dialing the others over http and no leader is ever
elected. The role advertises the first member's https peer URL before the restart and the others' after it: the
cluster has a leader, its data, https URLs only, and a second run changes nothing."""
from __future__ import annotations

import json
import time

import ansible_runner
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
NAME = "etcdmove"
CLIENT, PEER = 24379, 24380
CTL_TLS = ("etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/pgaas/tls/ca.crt "
           "--cert=/etc/pgaas/tls/server.crt --key=/etc/pgaas/tls/server.key --command-timeout=5s")


def member(i: int) -> str:
    return f"pgaas-{NAME}-etcd-{i}"


def sh(lab, host, cmd: str, check: bool = True) -> str:
    return lab.ssh(host, f"sudo {cmd}", check=check).stdout.decode()


def clean(lab):
    for i, h in enumerate(lab.hosts):
        sh(lab, h, f"sh -c 'podman rm -f {member(i)}; podman volume rm -f pgaas-{NAME}-etcd-data; "
                   f"podman network rm -f pgaas-{NAME}; rm -rf /var/lib/pgaas/instances/{NAME}' >/dev/null 2>&1",
           check=False)


@pytest.fixture
def old_cluster(lab):
    """Three members started as the role started them before TLS (same names, volume, network, labels)."""
    clean(lab)
    cluster = ",".join(f"{member(i)}=http://{h.address}:{PEER}" for i, h in enumerate(lab.hosts))
    for i, h in enumerate(lab.hosts):
        sh(lab, h, f"podman network create --label pgaas.instance={NAME} --label pgaas.component=postgres "
                   f"pgaas-{NAME}")
        sh(lab, h, f"podman volume create --label pgaas.instance={NAME} --label pgaas.component=etcd "
                   f"pgaas-{NAME}-etcd-data")
        sh(lab, h, f"podman run -d --name {member(i)} --hostname {member(i)} --network pgaas-{NAME} "
                   f"-p {h.address}:{CLIENT}:2379 -p {h.address}:{PEER}:2380 -v pgaas-{NAME}-etcd-data:/var/lib/etcd "
                   f"-e PGAAS_ETCD_NAME={member(i)} --label pgaas.instance={NAME} --label pgaas.component=etcd "
                   f"localhost/pgaas-postgres:15 /usr/bin/etcd --name={member(i)} --data-dir=/var/lib/etcd "
                   f"--listen-client-urls=http://0.0.0.0:2379 --advertise-client-urls=http://{h.address}:{CLIENT} "
                   f"--listen-peer-urls=http://0.0.0.0:2380 --initial-advertise-peer-urls=http://{h.address}:{PEER} "
                   f"--initial-cluster={cluster} --initial-cluster-token=pgaas-{NAME} --initial-cluster-state=new")
    deadline = time.monotonic() + 60
    while "OK" not in sh(lab, lab.hosts[1], f"podman exec {member(1)} etcdctl --endpoints=http://127.0.0.1:2379 "
                                            "--command-timeout=3s put /pgaas/made-before-tls yes", check=False):
        assert time.monotonic() < deadline, "the pre-TLS cluster never took a write"
        time.sleep(1)
    yield
    clean(lab)


def members(lab) -> list[dict]:
    return [{"name": member(i), "address": h.address, "client_port": CLIENT, "peer_port": PEER}
            for i, h in enumerate(lab.hosts)]


def issue(lab) -> dict:
    """The instance's CA and each member's certificate, as the control plane issues them (once)."""
    from webapp.services import certificates

    ca, ca_key = certificates.new_ca(NAME)
    certs = {m["name"]: dict(zip(("cert", "key"), certificates.issue(
        ca, ca_key, m["name"], [m["name"], m["address"], "localhost", "127.0.0.1"]))) for m in members(lab)}
    return {"ca": ca, "certs": certs}


def converge(tmp_path, lab, tls):
    inv = lab.inventory()
    for i, h in enumerate(lab.hosts):
        inv["all"]["children"]["lab"]["hosts"][h.name]["etcd_test_member"] = member(i)
    tmp_path.mkdir(parents=True)
    t = time.monotonic()
    r = ansible_runner.run(private_data_dir=str(tmp_path), project_dir=str(REPO), playbook="tests/ssh/etcd_converge.yml",
                           inventory=json.dumps(inv), quiet=True,
                           extravars={"etcd_test_instance": NAME, "etcd_test_members": members(lab),
                                      "etcd_test_ca": tls["ca"], "etcd_test_certs": tls["certs"]})
    took = time.monotonic() - t
    stats = next(e["event_data"] for e in r.events if e["event"] == "playbook_on_stats")
    changed = [(e["event_data"]["host"], e["event_data"]["task"]) for e in r.events
               if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")]
    return r, stats, took, changed


def test_a_cluster_made_before_tls_is_moved_onto_it_with_its_data(lab, old_cluster, tmp_path):
    tls = issue(lab)
    r, stats, took, _ = converge(tmp_path / "run1", lab, tls)
    assert r.status == "successful", r.stdout.read()
    print(f"\nthree-member etcd moved onto TLS over SSH: {took:.1f} s")
    # every member, asked over TLS with its certificate: https URLs only (a member publishes its client URLs once
    # it reaches the leader, a moment after the others advertised its peer URL), the data kept, writes taken
    deadline = time.monotonic() + 30
    for i, h in enumerate(lab.hosts):
        while True:
            listed = json.loads(sh(lab, h, f"podman exec {member(i)} {CTL_TLS} member list -w json"))["members"]
            urls = [u for m in listed for u in m["peerURLs"] + m.get("clientURLs", [])]
            got = sh(lab, h, f"podman exec {member(i)} {CTL_TLS} get /pgaas/made-before-tls --print-value-only",
                     check=False).strip()
            if len(urls) == 6 and all(u.startswith("https://") for u in urls) and got == "yes":
                break
            assert time.monotonic() < deadline, (h.name, listed, got)
            time.sleep(1)
        assert len(listed) == 3, listed
    print(f"all three on https and serving: {time.monotonic() - deadline + 30:.1f} s after the converge")
    out = sh(lab, lab.hosts[2], f"podman exec {member(2)} {CTL_TLS} put /pgaas/after-tls yes")
    assert "OK" in out, out
    # each member (asked locally: a container does not reach its own host's published ports) follows one leader
    leaders = {json.loads(sh(lab, h, f"podman exec {member(i)} {CTL_TLS} endpoint status -w json"))[0]["Status"]
               ["leader"] for i, h in enumerate(lab.hosts)}
    assert len(leaders) == 1 and 0 not in leaders, leaders
    r, stats, _, changed = converge(tmp_path / "run2", lab, tls)
    assert r.status == "successful", r.stdout.read()
    assert not any(stats["changed"].values()), changed

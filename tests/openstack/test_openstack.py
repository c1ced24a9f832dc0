"""The openstack provider end to end against the OpenStack TEST DOUBLE: openstacksdk and the openstack.cloud modules
speak real HTTP to it, the control plane runs real jobs through ansible-runner.

Here servers are backed by no machine (NullHosts), so a create provisions every cloud resource and then fails where
it first needs SSH; that is enough for the cloud side (resources, tags, rules, delete) and the failure modes. The
whole path with lab hosts behind the servers is in test_openstack_lab.py."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import openstack
import pytest
from cryptography import x509

from tests.conftest import REPO
from tests.e2e.helpers import secrets_of
from tests.openstack.conftest import BAD_CLOUD, CLOUD, NAME, openstack_cp
from tests.openstack_double.server import BANNER


def _job_text(live, job: dict) -> str:
    """Everything the job left behind: its events through the API and every file of its private data dir."""
    parts = [str(job)]
    jobs_dir = Path(live.app.config["JOBS_DIR"]) / str(job["id"])
    for f in jobs_dir.rglob("*") if jobs_dir.exists() else []:
        if f.is_file():
            parts.append(f.read_text(errors="replace"))
    return "\n".join(parts)


def _assert_no_credentials(cloud, text: str) -> None:
    assert cloud.users[0].password not in text
    for token in list(cloud.tokens):
        assert token not in text


def test_double_speaks_openstack_to_openstacksdk(cloud, sdk):
    """openstacksdk, configured from clouds.yaml, authenticates, reads the catalog and drives every service; the
    double says what it is, refuses a wrong password with 401 and enforces anti-affinity."""
    assert {f.name for f in sdk.compute.flavors()} >= {"m1.tiny", "m1.small"}
    assert [i.name for i in sdk.image.images()] == ["debian-12"]
    r = sdk.session.get(cloud.auth_url)
    assert r.headers["X-Test-Double"] == BANNER

    group = sdk.compute.create_server_group(name="sdk-anti", policy="anti-affinity")
    net = sdk.network.find_network("pgaas-net")
    image = sdk.image.find_image("debian-12")
    flavor = sdk.compute.find_flavor("m1.tiny")
    servers = [sdk.compute.create_server(name=f"sdk-{i}", image_id=image.id, flavor_id=flavor.id,
                                         networks=[{"uuid": net.id}], scheduler_hints={"group": group.id},
                                         metadata={"made_by": "test"}) for i in range(len(cloud.compute_hosts) + 1)]
    try:
        states = [sdk.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"], wait=10)
                  if i < len(cloud.compute_hosts) else None for i, s in enumerate(servers)]
        assert len({s.host_id for s in states[:-1]}) == len(cloud.compute_hosts)  # one member per compute host
        last = sdk.compute.wait_for_server(servers[-1], status="ERROR", wait=10)
        assert "No valid host" in last.fault["message"]
        assert sdk.compute.get_server(servers[0]).metadata == {"made_by": "test"}
        with pytest.raises(openstack.exceptions.BadRequestException, match="longer than 255"):
            sdk.compute.set_server_metadata(servers[0], summary="x" * 256)
    finally:
        for s in servers:
            sdk.compute.delete_server(s)
        sdk.compute.delete_server_group(group)
    assert not list(sdk.network.ports(device_id=servers[0].id))

    from keystoneauth1.exceptions.http import Unauthorized

    with pytest.raises(Unauthorized, match="HTTP 401"):
        list(openstack.connect(cloud=BAD_CLOUD).compute.flavors())
    assert cloud.unhandled == []


def test_bad_credentials_fail_the_job_and_say_so(cloud, tmp_path):
    live = openstack_cp(cloud, tmp_path, OPENSTACK_CLOUD=BAD_CLOUD)
    try:
        r = live.admin.post("/api/v1/instances", json={"name": f"{NAME}-pw"})
        assert r.status_code == 202, r.text
        job = live.admin.wait_job(r.json()["job"]["id"], timeout=120)
        assert job["status"] == "failed"
        assert "401" in job["error"] or "authentication" in job["error"].lower(), job["error"]
        inst = live.admin.get(f"/api/v1/instances/{NAME}-pw").json()
        assert inst["status"] == "failed" and job["error"][:40] in inst["status_reason"]
        assert not [s for s in cloud.servers.values() if s["name"].startswith(f"pgaas-{NAME}-pw")]
        _assert_no_credentials(cloud, _job_text(live, job))
    finally:
        live.close()


def test_missing_flavor_fails_the_job_and_says_so(cloud, tmp_path):
    live = openstack_cp(cloud, tmp_path, OPENSTACK_FLAVOR="m9.nonexistent")
    try:
        r = live.admin.post("/api/v1/instances", json={"name": f"{NAME}-fl"})
        job = live.admin.wait_job(r.json()["job"]["id"], timeout=120)
        assert job["status"] == "failed"
        assert "Flavor m9.nonexistent not found" in job["error"], job["error"]
        assert not [s for s in cloud.servers.values() if s["name"].startswith(f"pgaas-{NAME}-fl")]
        _assert_no_credentials(cloud, _job_text(live, job))
    finally:
        live.close()


def test_create_makes_tagged_resources_and_delete_removes_only_them(cloud, sdk, tmp_path):
    # Someone else's resources, some with look-alike names: the delete must leave every one of them.
    net = sdk.network.find_network("pgaas-net")
    image, flavor = sdk.image.find_image("debian-12"), sdk.compute.find_flavor("m1.tiny")
    other_server = sdk.compute.create_server(name=f"pgaas-{NAME}-9", image_id=image.id, flavor_id=flavor.id,
                                             networks=[{"uuid": net.id}], metadata={"pgaas_instance": "other"})
    other_volume = sdk.block_storage.create_volume(name=f"pgaas-{NAME}-backup", size=1)
    other_kp = sdk.compute.create_keypair(name=f"pgaas-{NAME}-other", public_key=_pubkey(tmp_path))
    other_group = sdk.compute.create_server_group(name=f"pgaas-{NAME}-spare", policy="anti-affinity")
    sdk.compute.wait_for_server(other_server, wait=10)
    live = openstack_cp(cloud, tmp_path, OPENSTACK_CONNECT_TIMEOUT=1)
    try:
        r = live.admin.post("/api/v1/instances", json={"name": NAME, "storage_gb": 2})
        assert r.status_code == 202, r.text
        job = live.admin.wait_job(r.json()["job"]["id"], timeout=240)
        # No machine answers behind these servers: the create fails where it first needs SSH, after the cloud part.
        assert job["status"] == "failed" and "Wait until the server answers over SSH" in job["error"], job["error"]
        _assert_no_credentials(cloud, _job_text(live, job))

        ours = [s for s in sdk.compute.servers() if s.metadata.get("pgaas_instance") == NAME]
        assert sorted(s.name for s in ours) == [f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]
        assert {s.status for s in ours} == {"ACTIVE"}
        groups = {g for s in ours for g in s.server_groups}
        assert len(groups) == 1
        group = sdk.compute.get_server_group(groups.pop())
        assert group.policy == "anti-affinity" and sorted(group.member_ids) == sorted(s.id for s in ours)
        assert len({s.host_id for s in ours}) == 2  # on different compute hosts
        for s in ours:
            assert s.metadata["group"] == f"pgaas_{NAME.replace('-', '_')}"
            assert s.metadata["groups"] == "pgaas,pgaas_members" and s.metadata["pgaas_member"] == s.name
            assert '"storage_gb":2' in s.metadata["pgaas_summary"] and len(s.metadata["pgaas_summary"]) <= 255
            vol = sdk.block_storage.get_volume(s.attached_volumes[0]["id"])
            assert (vol.name, vol.size, vol.status) == (f"{s.name}-data", 2, "in-use")
            assert vol.metadata == {"pgaas_instance": NAME, "pgaas_member": s.name}
            assert [a["server_id"] for a in vol.attachments] == [s.id]
        sg = sdk.network.find_security_group(f"pgaas-{NAME}")
        ingress = sorted((r.port_range_min, r.remote_group_id or r.remote_ip_prefix)
                         for r in sdk.network.security_group_rules(security_group_id=sg.id) if r.direction == "ingress")
        assert ingress == sorted([(p, sg.id) for p in (2379, 2380, 5432, 8008)]
                                 + [(p, "192.0.2.10/32") for p in (22, 2379, 2380, 5432, 8008)])
        # The members' addresses are the servers' addresses.
        inst = live.admin.get(f"/api/v1/instances/{NAME}").json()
        fixed = {s.name: s.addresses["pgaas-net"][0]["addr"] for s in ours}
        assert inst["status"] == "failed" and "uri" in inst
        for s in ours:
            assert f"{fixed[s.name]}:5432" in inst["uri"]
        # TLS: the addresses are known only once the provisioning run made the servers; the certificates the
        # deploy run got (issued between the two) name them, as verify-full against the URI needs. etcd runs on
        # the first server (two members).
        tls = secrets_of(live, NAME)["tls"]
        for cert_name, server in [*((s.name, s.name) for s in ours), (f"pgaas-{NAME}-etcd-0", f"pgaas-{NAME}-0")]:
            cert = x509.load_pem_x509_certificate(tls["certs"][cert_name]["cert"].encode())
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert ipaddress.ip_address(fixed[server]) in sans.get_values_for_type(x509.IPAddress), (cert_name, sans)

        # The openstack.cloud inventory plugin rebuilds the members' groups from the metadata alone.
        assert sorted(_plugin_inventory(cloud, tmp_path)[f"pgaas_{NAME.replace('-', '_')}"]["hosts"]) == \
            [f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]

        # Keys pinned for the servers' addresses (as a first contact would) go with the servers: clouds reuse
        # addresses. Another host's entry stays.
        from webapp.providers import known_hosts

        known = live.app.config["SSH_KNOWN_HOSTS"]
        pub = [" ".join((tmp_path / "other.pub").read_text().split()[:2])]
        for addr in [*fixed.values(), "192.0.2.99"]:
            known_hosts.pin(known, addr, 22, pub)
        r = live.admin.delete(f"/api/v1/instances/{NAME}")
        assert r.status_code == 202, r.text
        live.admin.wait_ok(r.json()["job"]["id"], timeout=240)
        assert live.admin.get(f"/api/v1/instances/{NAME}").status_code == 404
        assert [known_hosts.keys(known, a, 22) for a in fixed.values()] == [[], []]
        assert known_hosts.keys(known, "192.0.2.99", 22) == pub
        assert not [s for s in sdk.compute.servers() if s.metadata.get("pgaas_instance") == NAME]
        assert not [v for v in sdk.block_storage.volumes() if v.metadata.get("pgaas_instance") == NAME]
        assert not [p for p in sdk.network.ports() if p.device_id in {s.id for s in ours}]
        assert not list(sdk.network.security_groups(name=f"pgaas-{NAME}"))
        assert sdk.compute.find_keypair(f"pgaas-{NAME}") is None
        assert sdk.compute.find_server_group(group.id) is None
        # ...and nothing of anyone else's
        assert sdk.compute.get_server(other_server).status == "ACTIVE"
        assert sdk.block_storage.get_volume(other_volume).status == "available"
        assert sdk.compute.find_keypair(other_kp.name) is not None
        assert sdk.compute.get_server_group(other_group).name == f"pgaas-{NAME}-spare"
    finally:
        live.close()
        for delete in (lambda: sdk.compute.delete_server(other_server), lambda: sdk.compute.delete_keypair(other_kp),
                       lambda: sdk.block_storage.delete_volume(other_volume),
                       lambda: sdk.compute.delete_server_group(other_group)):
            try:
                delete()
            except openstack.exceptions.SDKException:
                pass
    assert cloud.unhandled == []


def test_look_alike_resources_are_refused_not_adopted(cloud, sdk, tmp_path):
    """A server group and a volume named like the instance's, made by someone else: the create refuses (it would
    otherwise adopt them, and its delete remove them) and says which; they stay as they were."""
    group = sdk.compute.create_server_group(name=f"pgaas-{NAME}-la", policy="affinity")
    volume = sdk.block_storage.create_volume(name=f"pgaas-{NAME}-la-0-data", size=1)
    live = openstack_cp(cloud, tmp_path)
    try:
        r = live.admin.post("/api/v1/instances", json={"name": f"{NAME}-la"})
        job = live.admin.wait_job(r.json()["job"]["id"], timeout=120)
        assert job["status"] == "failed" and volume.id in job["error"], job["error"]
        assert not [s for s in cloud.servers.values() if s["name"].startswith(f"pgaas-{NAME}-la")]
        assert sdk.compute.get_server_group(group).policy == "affinity"
        assert sdk.block_storage.get_volume(volume).size == 1
    finally:
        live.close()
        sdk.compute.delete_server_group(group)
        sdk.block_storage.delete_volume(volume)


def _plugin_inventory(cloud, tmp_path) -> dict:
    """ansible-inventory with the repository's inventory/openstack/openstack.yml, against the double."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    only_good = tmp_path / "clouds-inventory.yaml"
    only_good.write_text(yaml.safe_dump(cloud.clouds_yaml(CLOUD)))
    r = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i",
                        str(REPO / "inventory" / "openstack" / "openstack.yml"), "--list"],
                       capture_output=True, text=True, cwd=REPO, timeout=120,
                       env={**os.environ, "OS_CLIENT_CONFIG_FILE": str(only_good)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _pubkey(tmp_path) -> str:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    return (tmp_path / "other.pub").read_text().strip()

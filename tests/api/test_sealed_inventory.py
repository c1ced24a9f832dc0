"""What the ssh provider's inventory tells the roles about a sealed data plane (issue 12): where each host's members
publish their ports (the host's own address unless the operator says otherwise) and where the superuser and the
replication role may log in from. The lab test (tests/ssh/test_ssh_provider.py) checks the same on real hosts."""
from __future__ import annotations

import pytest

from tests.api.test_hosts import KEY, _load_inventory
from tests.conftest import Live, make_app


def _inventory(tmp_path, **config) -> dict:
    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    srv = Live(make_app(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "instance", PROVIDER="ssh", **config),
               workers=0)
    try:
        for name, address in (("h1", "192.0.2.11"), ("h2", "192.0.2.12")):
            r = srv.admin.post("/api/v1/hosts", json={"name": name, "address": address, "ssh_user": "pgaas",
                                                      "key_path": str(keyfile)})
            assert r.status_code == 201, r.text
        out = tmp_path / "inv"
        out.mkdir()
        return _load_inventory(srv.app.extensions["pgaas"].provider.inventory(out))["all"]["hosts"]
    finally:
        srv.close()


def test_ports_publish_on_each_hosts_address_and_superuser_sources_are_the_hosts_and_this_machine(tmp_path):
    hosts = _inventory(tmp_path, SSH_CONTROL_PLANE_ADDRESS="198.51.100.7")
    assert hosts["h1"]["pgaas_host_publish_address"] == "192.0.2.11"
    assert hosts["h2"]["pgaas_host_publish_address"] == "192.0.2.12"
    trusted = hosts["h1"]["pgaas_host_trusted_addresses"]
    assert trusted == hosts["h2"]["pgaas_host_trusted_addresses"]
    # every host (a rebuilt member may land on any), the control plane's configured address, and this machine's
    # source address toward them (the routing table's choice: a default route answers for any address)
    assert {"192.0.2.11", "192.0.2.12", "198.51.100.7"} <= set(trusted)
    assert "0.0.0.0/0" not in trusted and "0.0.0.0" not in trusted
    assert "localhost" not in hosts or "pgaas_host_trusted_addresses" not in hosts["localhost"]


def test_operator_may_publish_everywhere_and_add_trusted_addresses(tmp_path):
    hosts = _inventory(tmp_path, SSH_PUBLISH_ADDRESS="0.0.0.0",  # noqa: S104 (what the operator asks for)
                       SSH_TRUSTED_ADDRESSES="203.0.113.0/24, 203.0.113.250")
    assert hosts["h1"]["pgaas_host_publish_address"] == "0.0.0.0"  # noqa: S104
    assert {"203.0.113.0/24", "203.0.113.250/32"} <= set(hosts["h1"]["pgaas_host_trusted_addresses"])


def test_a_bad_trusted_address_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="SSH_TRUSTED_ADDRESSES: 'nowhere' is not an IP address or network"):
        make_app(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "instance", PROVIDER="ssh",
                 SSH_TRUSTED_ADDRESSES="10.0.0.1,nowhere")

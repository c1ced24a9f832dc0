"""The ssh provider against three lab hosts (tests/lab): one lab and one control plane for the whole module."""
from __future__ import annotations

import os

import pytest

from tests.conftest import Live, make_app, release_after_last_use
from tests.lab import Lab

PREFIX = "lab-ssh"
INSTANCE = os.environ.get("PGAAS_E2E_INSTANCE", "ms-ssh")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    lab = Lab(PREFIX, state_dir=tmp_path_factory.mktemp("lab-ssh"))
    close = release_after_last_use("lab", lab.destroy)
    lab.create(3)
    yield lab
    close()


@pytest.fixture(scope="session")
def ssh_cp(lab, tmp_path_factory, metadata_pg):
    """A control plane with the ssh provider; the lab hosts registered through the API (key by path); the control
    plane runs the third etcd member, on its address on the lab network."""
    from tests.e2e.helpers import remove_leftovers

    remove_leftovers(INSTANCE)  # an earlier run's etcd member here would hold an old cluster's data
    srv = Live(make_app(metadata_pg.new_database(), tmp_path_factory.mktemp("ssh-cp") / "instance",
                        PROVIDER="ssh", SSH_CONTROL_PLANE_ADDRESS=lab.gateway, PORT_RANGE_START=25000,
                        PORT_RANGE_END=25999, REBUILD_AFTER_SECONDS=0, SAMPLE_SECONDS=3600,
                        QUOTA_CHECK_SECONDS=3600), workers=2)
    for i, h in enumerate(lab.hosts):
        # the last host's key is stored (encrypted) rather than referenced by path: both ways are exercised
        key = {"private_key": open(h.key_path).read()} if i == len(lab.hosts) - 1 else {"key_path": h.key_path}
        r = srv.admin.post("/api/v1/hosts", json={"name": h.name, "address": h.address, "ssh_user": h.user,
                                                  "capacity": 2, "labels": {"lab": PREFIX}, **key})
        assert r.status_code == 201, r.text

    def close():
        for inst in srv.admin.get("/api/v1/instances").json()["instances"]:
            for h in lab.hosts:
                if not lab.running(h):
                    lab.start(h)
            r = srv.admin.delete(f"/api/v1/instances/{inst['name']}?force=true")
            if r.status_code == 202:
                srv.admin.wait_job(r.json()["job"]["id"], timeout=120)
        srv.close()

    close = release_after_last_use("ssh_cp", close)
    yield srv
    close()

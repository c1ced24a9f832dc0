"""The openstack provider against the OpenStack TEST DOUBLE (tests/openstack_double) served on loopback, with a
clouds.yaml written for the test. Servers are backed by nothing (NullHosts) unless a test asks for lab hosts."""
from __future__ import annotations

import os

import pytest
import yaml

from tests.conftest import Live, make_app
from tests.openstack_double import CloudDouble, NullHosts

CLOUD, BAD_CLOUD = "pgaas-double", "pgaas-double-badpw"
# The instance the tests create; concurrent runs on one machine give theirs another name.
NAME = os.environ.get("PGAAS_E2E_INSTANCE", "os-e2e")


def write_clouds_yaml(cloud: CloudDouble, path) -> str:
    """Two entries: the double's user with its password, and the same user with a wrong one."""
    doc = cloud.clouds_yaml(CLOUD)
    doc["clouds"].update(cloud.clouds_yaml(BAD_CLOUD, password="not-the-password")["clouds"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    return str(path)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    double = CloudDouble(hosts=NullHosts())
    double.start()
    double.clouds_file = write_clouds_yaml(double, tmp_path_factory.mktemp("clouds") / "clouds.yaml")
    yield double
    double.stop()


@pytest.fixture
def sdk(cloud, monkeypatch):
    """openstacksdk connected to the double through the clouds.yaml (as an operator's script would be)."""
    import openstack

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", cloud.clouds_file)
    conn = openstack.connect(cloud=CLOUD)
    yield conn
    conn.close()


def openstack_cp(cloud: CloudDouble, tmp_path, **config) -> Live:
    """A control plane (SQLite metadata, one worker) whose provider is openstack, pointed at the double."""
    cfg = {"PROVIDER": "openstack", "OPENSTACK_CLOUDS_YAML": cloud.clouds_file, "OPENSTACK_CLOUD": CLOUD,
           "OPENSTACK_IMAGE": "debian-12", "OPENSTACK_FLAVOR": "m1.small", "OPENSTACK_NETWORK": "pgaas-net",
           "OPENSTACK_CONTROL_CIDRS": "192.0.2.10/32", "OPENSTACK_DEFAULT_STORAGE_GB": 1, **config}
    return Live(make_app(f"sqlite:///{tmp_path / 'pgaas.sqlite'}", tmp_path / "instance", **cfg), workers=1)

"""container_engine on an SSH host whose image store starts empty (the offline path): podman settings written,
the image saved once on the control plane, copied over SSH and loaded; a second run changes nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid

import ansible_runner
import pytest

from tests.conftest import REPO
from tests.lab import Lab

pytestmark = pytest.mark.slow
CONF = str(REPO / "etc" / "containers.conf")
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory):
    """A few-kB image (one file) made here, so that the archive path is quick to exercise."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "hello").write_text("pgaas\n")
    with tarfile.open(d / "rootfs.tar", "w") as t:
        t.add(d / "hello", arcname="hello")
    name = f"localhost/pgaas-lab-tiny:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CONTAINERS_CONF": CONF}
    subprocess.run(["podman", "import", str(d / "rootfs.tar"), name], check=True, capture_output=True, env=env)
    yield name
    subprocess.run(["podman", "rmi", "-f", name], capture_output=True, env=env)


@pytest.fixture(scope="module")
def bare_host(tmp_path_factory):
    lab = Lab("lab-ssh-off", shared_images=False, state_dir=tmp_path_factory.mktemp("lab-off"))
    hosts = lab.create(1)
    yield lab, hosts[0]
    lab.destroy()


def converge(tmp_path, lab, image, archive_dir):
    inv = lab.inventory()
    inv["all"]["children"]["lab"]["vars"] = {"pgaas_containers_conf": CONF, "engine_image": image,
                                             "engine_archive_dir": str(archive_dir)}
    tmp_path.mkdir(parents=True)
    r = ansible_runner.run(private_data_dir=str(tmp_path), project_dir=str(REPO), playbook="tests/ssh/engine_converge.yml",
                           inventory=json.dumps(inv), quiet=True, envvars={"CONTAINERS_CONF": CONF})
    stats = next(e["event_data"] for e in r.events if e["event"] == "playbook_on_stats")
    return r, stats


def test_image_archive_over_ssh_and_idempotence(bare_host, tiny_image, tmp_path):
    lab, host = bare_host
    archive_dir = tmp_path / "images"
    assert lab.ssh(host, f"sudo podman image exists {tiny_image}", check=False).returncode == 1
    r, stats = converge(tmp_path / "run1", lab, tiny_image, archive_dir)
    assert r.status == "successful", r.stdout.read()
    assert stats["changed"].get(host.name, 0) > 0
    assert lab.ssh(host, f"sudo env CONTAINERS_CONF={CONF} podman image exists {tiny_image}").returncode == 0
    conf = lab.ssh(host, f"cat {CONF}").stdout.decode()
    assert 'runtime = "runc"' in conf and "nofile=20000:20000" in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert lab.ssh(host, "ls /var/tmp/ | grep -c pgaas-image", check=False).stdout.strip() == b"0"  # copy removed
    assert len(list(archive_dir.iterdir())) == 1
    r, stats = converge(tmp_path / "run2", lab, tiny_image, archive_dir)
    assert r.status == "successful", r.stdout.read()
    assert stats["changed"].get(host.name, 0) == 0 and stats["changed"].get("localhost", 0) == 0, stats["changed"]

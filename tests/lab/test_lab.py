"""The lab itself: hosts answer real SSH, run nested containers from the shared image store, reach each other's
published ports, and fail the way machines do (power off keeps the disk, a network cut isolates)."""
from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.lab import Lab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab2(tmp_path_factory):
    lab = Lab("lab-ssh-self", state_dir=tmp_path_factory.mktemp("lab"))
    hosts = lab.create(2)
    yield lab, hosts
    lab.destroy()


def test_hosts_answer_ssh_and_ansible(lab2, tmp_path):
    lab, hosts = lab2
    assert len({h.address for h in hosts}) == 2
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(lab.inventory()))
    out = subprocess.run(["ansible", "-i", str(inv), "lab", "-o", "-m", "ansible.builtin.command", "-a", "id -u"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("(stdout) 0") == 2, out.stdout  # become: root through sudo


def test_nested_container_reachable_from_other_host_and_outside(lab2):
    lab, (a, b) = lab2
    lab.ssh(a, "sudo podman rm -f -t 0 web >/dev/null; sudo podman run -d --name web -p 0.0.0.0:18080:8080 "
               "localhost/pgaas-postgres:15 python3 -m http.server 8080")
    probe = (f"python3 -c \"import time,urllib.request\nfor i in range(50):\n try: print(urllib.request.urlopen("
             f"'http://{a.address}:18080/').status); break\n except OSError: time.sleep(0.1)\"")
    assert lab.ssh(b, probe).stdout.strip() == b"200"
    assert urllib.request.urlopen(f"http://{a.address}:18080/", timeout=5).status == 200


def test_power_off_keeps_disk_and_network_cut_isolates(lab2):
    lab, (a, b) = lab2
    lab.ssh(a, "sudo podman volume create keepme >/dev/null; echo data | sudo tee /var/tmp/disk >/dev/null")
    lab.stop(a)
    assert not lab.running(a)
    assert lab.ssh(b, f"timeout 3 bash -c '</dev/tcp/{a.address}/22'", check=False).returncode != 0
    lab.start(a)
    assert lab.ssh(a, "cat /var/tmp/disk; sudo podman volume exists keepme && echo vol").stdout.split() == [b"data", b"vol"]
    # podman sees the reboot: the container that ran before is stopped, not a stale "running"
    state = lab.ssh(a, "sudo podman inspect --format '{{.State.Running}}' web", check=False).stdout.strip()
    assert state in (b"false", b"")
    lab.disconnect(b)
    assert lab.ssh(b, "true", check=False, timeout=30).returncode == 255
    lab.reconnect(b)
    lab.wait_ssh(b)
    assert lab.ssh(b, "hostname").stdout.strip() == b.name.encode()

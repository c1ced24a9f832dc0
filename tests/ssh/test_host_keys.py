"""Host key pinning over real SSH: a lab host registered with a WRONG host key (a freshly generated one) is refused;
the create that needs it fails at its first contact with a plain message and leaves nothing on the host; once the
right key is pinned (PUT .../host_key, from ssh-keyscan) the delete reaches the host and removes the instance.
A control plane of its own with that one host (the module's lab is shared with test_ssh_provider.py)."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import Live, make_app
from tests.ssh.conftest import INSTANCE

pytestmark = pytest.mark.slow
NAME = f"{INSTANCE}-hk"[:40]


@pytest.fixture(scope="module")
def hk_cp(lab, metadata_pg, tmp_path_factory):
    srv = Live(make_app(metadata_pg.new_database(), tmp_path_factory.mktemp("hk-cp") / "instance", PROVIDER="ssh",
                        PORT_RANGE_START=26000, PORT_RANGE_END=26999, REBUILD_AFTER_SECONDS=0,
                        SAMPLE_SECONDS=3600, QUOTA_CHECK_SECONDS=3600), workers=1)
    yield srv
    srv.admin.delete(f"/api/v1/instances/{NAME}?force=true")
    srv.close()


def test_wrong_host_key_is_refused_and_repinning_fixes_it(hk_cp, lab, tmp_path):
    host = lab.hosts[0]
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "wrong")], check=True)
    wrong = (tmp_path / "wrong.pub").read_text()
    r = hk_cp.admin.post("/api/v1/hosts", json={"name": "hk-wrong", "address": host.address, "ssh_user": host.user,
                                                "key_path": host.key_path, "capacity": 2, "host_key": wrong})
    assert r.status_code == 201, r.text

    t = time.monotonic()
    r = hk_cp.admin.post("/api/v1/instances", json={"name": NAME, "admin_password": "Admin-password-123"})
    assert r.status_code == 202, r.text
    job = hk_cp.admin.wait_job(r.json()["job"]["id"], timeout=120)
    print(f"\ncreate refused by the pinned key after {time.monotonic() - t:.1f} s")
    assert job["status"] == "failed", job
    expected = (f"host key verification failed for hk-wrong ({host.address}): the key it presented differs from "
                "the pinned one; if the host was reinstalled, re-register it")
    assert job["error"].startswith(expected), job["error"]
    assert "REMOTE HOST IDENTIFICATION" not in job["error"]
    inst = hk_cp.admin.get(f"/api/v1/instances/{NAME}").json()
    assert inst["status"] == "failed" and expected in inst["status_reason"], inst
    # nothing of the instance reached the host
    label = f"label=pgaas.instance={NAME}"
    left = lab.ssh(host, f"sudo sh -c \"podman ps -a --filter {label} --format '{{{{.Names}}}}' && "
                         f"podman volume ls --filter {label} --format '{{{{.Name}}}}' && "
                         f"{{ test ! -e /var/lib/pgaas/instances/{NAME} || echo left-dir; }}\"").stdout.decode()
    assert left.split() == [], left

    # the host's real key, as ssh-keyscan reads it, replaces the pin; the delete then reaches the host
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(host.port), host.address],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    r = hk_cp.admin.put("/api/v1/hosts/hk-wrong/host_key", json={"host_key": scan})
    assert r.status_code == 200, r.text
    assert [k["type"] for k in r.json()["host_keys"]] == ["ssh-ed25519"]
    r = hk_cp.admin.delete(f"/api/v1/instances/{NAME}?force=true")
    assert r.status_code == 202, r.text
    hk_cp.admin.wait_ok(r.json()["job"]["id"], timeout=120)
    assert hk_cp.admin.get(f"/api/v1/instances/{NAME}").status_code == 404
    assert hk_cp.admin.delete("/api/v1/hosts/hk-wrong").status_code == 204

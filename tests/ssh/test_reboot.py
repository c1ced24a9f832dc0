"""Instances on SSH hosts survive a restart of everything: a synchronous pair on two lab hosts (tests/lab: no
systemd, so nothing starts the containers at boot) with an etcd of three (both hosts and the control plane); the
control plane stops, both hosts are powered off (SIGKILL of everything on them) and the control plane's etcd member
is SIGKILLed while a client writes; the hosts are powered on again and a new control plane starts on the same
metadata. Its start-up check (Patroni answers from no member) queues one start job, which starts every host's etcd,
then the members; the instance is available again and no acknowledged commit is lost.
A lab and a control plane of their own (prefix lab-reboot, ports 27000-27999), so that a power cut here touches
nothing of tests/ssh's shared lab."""
from __future__ import annotations

import pytest

from tests.conftest import Live, make_app
from tests.e2e.helpers import INST, podman, remove_leftovers
from tests.e2e.test_reboot import Load, restart
from tests.lab import Lab

pytestmark = pytest.mark.slow
NAME = f"{INST}-reboot-ssh"[:40]


@pytest.fixture(scope="module")
def reboot_lab(tmp_path_factory):
    lab = Lab("lab-reboot", state_dir=tmp_path_factory.mktemp("lab-reboot"))
    lab.create(2)
    remove_leftovers(NAME)  # an earlier run's etcd member here would hold an old cluster's data
    yield lab
    remove_leftovers(NAME)
    lab.destroy()


def test_powered_off_hosts_come_back_when_the_control_plane_starts(reboot_lab, metadata_pg, tmp_path_factory):
    lab = reboot_lab
    database, path = metadata_pg.new_database(), tmp_path_factory.mktemp("reboot-ssh") / "instance"
    config = dict(PROVIDER="ssh", SSH_CONTROL_PLANE_ADDRESS=lab.gateway, PORT_RANGE_START=27000,
                  PORT_RANGE_END=27999, REBUILD_AFTER_SECONDS=0, SAMPLE_SECONDS=3600, QUOTA_CHECK_SECONDS=3600)
    first = Live(make_app(database, path, **config), workers=2)
    try:
        for h in lab.hosts:
            r = first.admin.post("/api/v1/hosts", json={"name": h.name, "address": h.address, "ssh_user": h.user,
                                                       "capacity": 2, "key_path": h.key_path})
            assert r.status_code == 201, r.text
        load = Load(first, NAME)
        etcd = first.admin.get(f"/api/v1/instances/{NAME}").json()["metadata"]["etcd_members"]
    except BaseException:
        first.close()
        raise
    here = [e["name"] for e in etcd if e["host"] == "localhost"]
    assert len(etcd) == 3 and len(here) == 1, etcd

    def cut():
        for h in lab.hosts:
            lab.stop(h)
        podman("kill", "--signal", "KILL", *here)

    before = load.power_cut(first, cut)
    for h in lab.hosts:
        lab.start(h)

    second, st, start = restart(make_app(database, path, **config), NAME, timeout=300)
    try:
        print(f"acknowledged {len(load.writer.acked)} commits, {before} of them before the control plane stopped")
        assert load.lost() == [], "acknowledged commits lost"
        started = start["result"]["started"]
        assert started["localhost"] == here, started
        for h in lab.hosts:  # each powered-on host: its etcd member, then its PostgreSQL member
            assert len(started[h.name]) == 2 and "-etcd-" in started[h.name][0], started
        assert {m["host"] for m in [st["primary"], *st["replicas"]]} == {h.name for h in lab.hosts}, st
    finally:
        r = second.admin.delete(f"/api/v1/instances/{NAME}?force=true")
        if r.status_code == 202:
            second.admin.wait_job(r.json()["job"]["id"], timeout=180)
        second.close()

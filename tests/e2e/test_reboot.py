"""Instances survive a host restart, as it looks on a machine without systemd: the control plane stops, every
container of a synchronous pair is SIGKILLed (etcd and both members, no clean stop) while a client writes, then a
new control plane starts on the same metadata. At its start it queues one start job for the instance (actor
pgaas-startup, in the instance's jobs, events and audit log); the instance is available again with both members
running and the standby streaming, and every commit that was acknowledged is there. A second start with everything
running changes nothing. tests/ssh/test_reboot.py does the same with lab hosts powered off and on."""
from __future__ import annotations

import json
import re
import shutil
import time

import psycopg
import pytest

from tests.conftest import Live, make_app
from tests.e2e.helpers import INST, create, podman, remove_leftovers
from tests.e2e.test_failover import Writer

pytestmark = pytest.mark.slow
NAME = f"{INST}-reboot"
CONTAINERS = [f"pgaas-{NAME}-etcd", f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]


def states(name: str) -> dict[str, str]:
    return {c["Names"][0]: c["State"] for c in json.loads(
        podman("ps", "--all", "--filter", f"label=pgaas.instance={name}", "--format", "json"))}


def whole(live, name: str) -> dict | None:
    """The instance as the API shows it, once it is available with a running primary and every standby
    streaming, one of them synchronous; else None."""
    st = live.admin.get(f"/api/v1/instances/{name}").json()
    reps = st.get("replicas") or []
    if st.get("status") == "available" and st["primary"] and st["primary"]["state"] == "running" and reps and \
            all(r["state"] in ("running", "streaming") for r in reps) and any(r["sync_state"] == "sync" for r in reps):
        return st
    return None


class Load:
    """A synchronous instance with a client writing to a database of its own (tests.e2e.test_failover.Writer:
    each acknowledged id recorded)."""

    def __init__(self, live, name: str):
        created, job = create(live, name, synchronous=True)
        failed = [e["message"] for e in job["events"] if e["status"] == "failed"]
        assert job["status"] == "succeeded", (job["error"], failed)
        self.password, uri = created["admin_password"], created["instance"]["uri"]
        with psycopg.connect(uri, password=self.password, autocommit=True, connect_timeout=5) as c:
            c.execute("create database reboot_app")
        self.uri = re.sub(r"/[^/?]+\?", "/reboot_app?", uri, count=1)
        with psycopg.connect(self.uri, password=self.password, autocommit=True, connect_timeout=5) as c:
            c.execute("create table ha_rows (id int primary key)")
        self.writer = Writer(self.uri, self.password)
        self.writer.start()
        deadline = time.monotonic() + 30
        while len(self.writer.acked) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(self.writer.acked) >= 50, f"the writer did not get going: {len(self.writer.failures)} failures"

    def power_cut(self, control_plane, cut) -> int:
        """Stop the control plane (its server and workers), keep writing a moment, then cut(): the writes fail
        from there. Returns how many commits were acknowledged before the cut."""
        control_plane.close()
        try:
            time.sleep(1.0)
            before = len(self.writer.acked)
            cut()
        finally:
            self.writer.stop.set()
            self.writer.join(timeout=10)
        assert before > 50 and self.writer.failures, "the cut did not interrupt the writes"
        return before

    def lost(self) -> list[int]:
        with psycopg.connect(self.uri, password=self.password, connect_timeout=5) as c:
            present = {r[0] for r in c.execute("select id from ha_rows")}
        return [i for i in self.writer.acked if i not in present]


def restart(app, name: str, timeout: float = 240) -> tuple[Live, dict, dict]:
    """A control plane on the given app, started as `pgaas run` starts (the start-up check before the workers);
    waits until the instance is whole again and prints how long that took from the start. Returns the control
    plane, the instance and its start job (with events), checked: queued by pgaas-startup, audited, succeeded."""
    from webapp import cli

    started_at = time.monotonic()
    live = Live(app, workers=2, before_workers=cli._start_stopped_instances)
    try:
        return live, *_whole_again(live, name, started_at, timeout)
    except BaseException:
        live.close()
        raise


def _whole_again(live, name: str, started_at: float, timeout: float) -> tuple[dict, dict]:
    deadline = started_at + timeout
    while (st := whole(live, name)) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    took = time.monotonic() - started_at
    jobs = live.admin.get(f"/api/v1/jobs?instance={name}").json()["jobs"]
    start = next((j for j in jobs if j["kind"] == "instance_start"), None)
    assert start is not None, jobs
    start = live.admin.get(f"/api/v1/jobs/{start['id']}").json()
    assert st is not None, (live.admin.get(f"/api/v1/instances/{name}").json(), start)
    print(f"\ncontrol plane start -> instance available, every member running, the standby streaming: {took:.1f} s "
          f"(start job {start['started_at']} -> {start['finished_at']})")
    for e in sorted((e for e in start["events"] if e.get("duration")), key=lambda e: -e["duration"])[:6]:
        print(f"  {e['duration']:6.1f} s  {e['host']:<16} {e['task']}")
    assert start["status"] == "succeeded" and start["created_by"] == "pgaas-startup", start
    audit = live.admin.get(f"/api/v1/admin/audit?object={name}").json()["events"]
    assert [e for e in audit if e["action"] == "instance.start" and e["actor"] == "pgaas-startup"], audit
    assert st["status_reason"] == "" and st["metadata"]["last_start"]["job"] == start["id"], st
    return st, start


@pytest.fixture
def clean():
    """Nothing of an earlier run's instance, before and after (the test deletes it through the API if it can)."""
    def remove():
        remove_leftovers(NAME)
        shutil.rmtree(f"/var/lib/pgaas/instances/{NAME}", ignore_errors=True)

    remove()
    yield
    remove()


def test_a_killed_pair_comes_back_when_the_control_plane_starts(metadata_pg, tmp_path_factory, clean):
    from webapp.services import jobs as jobsvc
    from webapp.services import startup

    database, path = metadata_pg.new_database(), tmp_path_factory.mktemp("reboot") / "instance"
    first = Live(make_app(database, path), workers=2)
    try:
        load = Load(first, NAME)
    except BaseException:
        first.close()
        raise
    # the power cut: no clean stop of anything
    before = load.power_cut(first, lambda: podman("kill", "--signal", "KILL", *CONTAINERS))
    assert all(states(NAME)[c] == "exited" for c in CONTAINERS), states(NAME)

    second, st, start = restart(make_app(database, path), NAME)
    try:
        print(f"acknowledged {len(load.writer.acked)} commits, {before} of them before the control plane stopped")
        assert all(states(NAME)[c] == "running" for c in CONTAINERS), states(NAME)
        assert load.lost() == [], "acknowledged commits lost"
        # the start job says what it found stopped, and started it
        found = next(e for e in start["events"] if e["event"] == "pgaas_startup")
        assert all(c in found["message"] for c in CONTAINERS), found
        assert sorted(start["result"]["started"]["localhost"]) == sorted(CONTAINERS), start["result"]

        # everything runs: another start finds nothing to do, and the playbook run again changes nothing
        svc = second.app.extensions["pgaas"]
        assert startup.start_stopped(svc.store.session, svc.provider) == []
        with svc.store.session() as s:
            again = jobsvc.enqueue(s, "instance_start", NAME, "root").id
        again = second.admin.wait_ok(again, timeout=120)
        stats = [e["message"] for e in again["events"] if e["status"] == "stats"]
        assert stats and "changed=0" in stats[-1], stats
        assert again["result"]["started"] == {"localhost": []}, again["result"]
        assert whole(second, NAME) is not None
    finally:
        r = second.admin.delete(f"/api/v1/instances/{NAME}?force=true")
        if r.status_code == 202:
            second.admin.wait_job(r.json()["job"]["id"], timeout=120)
        second.close()

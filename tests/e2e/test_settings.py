"""Instance settings and rolling restarts against a real Patroni pair of its own (the restart switches over, which
other modules' shared pair should not see)."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.e2e.helpers import create, podman, secrets_of

NAME = "e2e-settings"
ADMIN_PASSWORD = "Admin-password-456"


@pytest.fixture(scope="module")
def inst(cp):
    created, job = create(cp, NAME, admin_password=ADMIN_PASSWORD)
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    yield created["instance"]
    r = cp.admin.delete(f"/api/v1/instances/{NAME}?force=true")
    if r.status_code == 202:
        cp.admin.wait_job(r.json()["job"]["id"], timeout=120)


def jobs_of(cp) -> list[int]:
    return [j["id"] for j in cp.admin.get(f"/api/v1/jobs?instance={NAME}").json()["jobs"]]


def settings_view(cp) -> dict:
    r = cp.admin.get(f"/api/v1/instances/{NAME}/settings")
    assert r.status_code == 200, r.text
    return r.json()


def member_setting(view: dict, name: str) -> dict:
    """member name -> its row for the setting."""
    return {m["name"]: next((x for x in m["settings"] if x["name"] == name), None) for m in view["members"]}


def patch(cp, body) -> dict:
    r = cp.admin.patch(f"/api/v1/instances/{NAME}", json=body)
    assert r.status_code == 202, r.text
    job = cp.admin.wait_job(r.json()["job"]["id"], timeout=180)
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    return job


@pytest.mark.parametrize("body, fragment", [
    ({"settings": {"no_such_setting": 1}}, "no_such_setting"),
    ({"settings": {"max_connections": "lots"}}, "max_connections"),
    ({"settings": {"max_connections": 5}}, "at least 25"),
    ({"settings": {"max_connections": 0}}, "out of range"),
    ({"settings": {"work_mem": "12 parsecs"}}, "work_mem"),
    ({"settings": {"log_min_duration_statement": "1 fortnight"}}, "log_min_duration_statement"),
    ({"settings": {"jit": "maybe"}}, "jit"),
    ({"settings": {"wal_level": "minimal"}}, "wal_level"),
    ({"settings": {"listen_addresses": "*"}}, "listen_addresses"),
    ({"settings": {"synchronous_standby_names": "*"}}, "synchronous_standby_names"),
    ({"settings": {"max_wal_senders": 0}}, "max_wal_senders"),
    ({"settings": {"hot_standby": False}}, "hot_standby"),
    ({"settings": {"block_size": 4096}}, "block_size"),
    ({"settings": {"shared_preload_libraries": "not_installed_lib"}}, "not_installed_lib"),
    ({"settings": {"DateStyle": "Klingon"}}, "datestyle"),
    ({"cpus": 0}, "cpus"),
    ({"memory_mb": "lots"}, "memory_mb"),
])
def test_bad_settings_are_refused_before_any_job(cp, inst, body, fragment):
    before = jobs_of(cp)
    r = cp.admin.patch(f"/api/v1/instances/{NAME}", json=body)
    assert r.status_code == 422, r.text
    assert fragment.lower() in r.json()["error"]["message"].lower()
    assert jobs_of(cp) == before


def test_unknown_fields_and_non_admins(cp, inst):
    assert cp.admin.patch(f"/api/v1/instances/{NAME}", json={"colour": "blue"}).status_code == 400
    assert cp.alice.patch(f"/api/v1/instances/{NAME}", json={"settings": {"work_mem": "8MB"}}).status_code == 403
    assert cp.alice.post(f"/api/v1/instances/{NAME}/restart").status_code == 403
    assert cp.alice.get(f"/api/v1/instances/{NAME}/settings").status_code == 403


def test_reloadable_setting_applies_at_once(cp, inst):
    patch(cp, {"settings": {"log_min_duration_statement": "250ms", "work_mem": "8MB"}})
    view = settings_view(cp)
    for rows in (member_setting(view, "log_min_duration_statement"), member_setting(view, "work_mem")):
        assert len(rows) == 2 and all(r is not None for r in rows.values()), view
    assert {r["setting"] for r in member_setting(view, "log_min_duration_statement").values()} == {"250"}
    assert {r["setting"] for r in member_setting(view, "work_mem").values()} == {"8192"}
    assert not any(r["pending_restart"] for r in member_setting(view, "work_mem").values())
    assert view["requested"]["work_mem"] == "8MB"
    # the same change again touches nothing: Patroni's configuration already says so
    again = patch(cp, {"settings": {"work_mem": "8MB"}})
    assert [e["status"] for e in again["events"]
            if e["task"] == "Change the dynamic configuration on the leader"] == ["skipped"], [
        (e["task"], e["event"], e["status"]) for e in again["events"]]
    # and a client sees it
    s = secrets_of(cp, NAME)
    m = inst["primary"]
    with psycopg.connect(host=m["address"], port=m["port"], user="postgres", dbname="postgres",
                         password=s["pgaas_superuser_password"]) as c:
        assert c.execute("SHOW log_min_duration_statement").fetchone()[0] == "250ms"


def test_patch_while_another_job_runs_is_409(cp, inst):
    r = cp.admin.post(f"/api/v1/instances/{NAME}/restart")
    assert r.status_code == 202, r.text
    try:
        busy = cp.admin.patch(f"/api/v1/instances/{NAME}", json={"settings": {"work_mem": "16MB"}})
        assert busy.status_code == 409, busy.text
        again = cp.admin.post(f"/api/v1/instances/{NAME}/restart")
        assert again.status_code == 409, again.text
    finally:
        job = cp.admin.wait_job(r.json()["job"]["id"], timeout=180)
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])


class Writer(threading.Thread):
    """Writes through the instance's read-write URI every 20 ms; records the longest gap between two writes."""

    def __init__(self, uri: str, password: str):
        super().__init__(daemon=True)
        self.uri, self.password = uri, password
        self.stop = threading.Event()
        self.ok = 0
        self.longest_gap = 0.0
        self.last_error = ""

    def run(self):
        conn, last = None, time.monotonic()
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.uri, password=self.password, connect_timeout=2, autocommit=True)
                conn.execute("SELECT txid_current()")  # assigns a transaction id: only a primary can
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
                self.ok += 1
            except psycopg.Error as exc:
                self.last_error = str(exc)
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()


def test_max_connections_pending_then_rolling_restart(cp, inst):
    before = cp.admin.get(f"/api/v1/instances/{NAME}").json()
    old_primary = before["primary"]["name"]
    job = patch(cp, {"settings": {"max_connections": 150}})
    assert job["result"]["leader"] == old_primary

    view = settings_view(cp)
    rows = member_setting(view, "max_connections")
    assert set(rows) == {m["name"] for m in view["members"]} and len(rows) == 2
    assert all(r["setting"] == "100" and r["pending_restart"] for r in rows.values()), view
    assert view["pending_restart"] is True
    shown = cp.admin.get(f"/api/v1/instances/{NAME}").json()
    assert shown["pending_restart"] is True and shown["settings"]["max_connections"] == "150"

    writer = Writer(before["uri"], ADMIN_PASSWORD)
    writer.start()
    deadline = time.monotonic() + 15  # the first connection (TLS, SCRAM) can take seconds on a loaded machine
    while writer.ok == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer.ok > 0, f"no write before the restart: {writer.last_error}"
    r = cp.admin.post(f"/api/v1/instances/{NAME}/restart")
    assert r.status_code == 202, r.text
    job = cp.admin.wait_job(r.json()["job"]["id"], timeout=240)
    writes_at_end = writer.ok
    deadline = time.monotonic() + 15
    while writer.ok == writes_at_end and time.monotonic() < deadline:
        time.sleep(0.1)
    writer.stop.set()
    writer.join(timeout=10)
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    assert writer.ok > writes_at_end, "no write after the restart"
    print(f"longest write pause during the rolling restart: {writer.longest_gap:.2f}s")
    assert writer.longest_gap < 15

    view = settings_view(cp)
    rows = member_setting(view, "max_connections")
    assert all(r["setting"] == "150" and not r["pending_restart"] for r in rows.values()), view
    assert view["pending_restart"] is False
    after = cp.admin.get(f"/api/v1/instances/{NAME}").json()
    assert after["status"] == "available", after
    assert after["pending_restart"] is False
    assert after["primary"]["name"] != old_primary
    assert job["result"]["old_leader"] == old_primary and job["result"]["leader"] == after["primary"]["name"]
    audit = cp.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
    assert {"instance.settings", "instance.restart"} <= {e["action"] for e in audit}


def test_reset_removes_a_setting(cp, inst):
    patch(cp, {"settings": {"work_mem": None}})
    view = settings_view(cp)
    assert "work_mem" not in view["requested"]
    assert all(r is None for r in member_setting(view, "work_mem").values())


def _limits(container: str) -> tuple[int, int]:
    """(memory limit in bytes, CPU quota in microseconds per 100 ms) as the container's cgroup has them."""
    out = podman("exec", container, "sh", "-c",
                 "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max 2>/dev/null || "
                 "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us").split()
    return int(out[0]), int(out[1])


def test_sizes_become_container_limits(cp, inst):
    job = patch(cp, {"cpus": 1.5, "memory_mb": 768})
    assert any(e["task"] == "Update the container limits, standbys first" and e["status"] == "changed"
               for e in job["events"]), job["events"]
    shown = cp.admin.get(f"/api/v1/instances/{NAME}").json()
    assert (shown["cpus"], shown["memory_mb"], shown["status"]) == (1.5, 768, "available")
    for m in [shown["primary"], *shown["replicas"]]:
        assert _limits(m["container"]) == (768 * 1024 * 1024, 150000)


def test_rolling_restart_of_a_synchronous_pair(cp):
    """In synchronous mode Patroni only switches over to the synchronous standby: the restart picks it."""
    name = "e2e-settings-sync"
    _, job = create(cp, name, synchronous=True)
    try:
        assert job["status"] == "succeeded", job["error"]
        before = cp.admin.get(f"/api/v1/instances/{name}").json()
        sync = [r["name"] for r in before["replicas"] if r["sync_state"] == "sync"]
        r = cp.admin.post(f"/api/v1/instances/{name}/restart")
        assert r.status_code == 202, r.text
        job = cp.admin.wait_job(r.json()["job"]["id"], timeout=240)
        assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
        after = cp.admin.get(f"/api/v1/instances/{name}").json()
        assert after["status"] == "available" and after["primary"]["name"] in sync, after
        assert after["replicas"][0]["sync_state"] == "sync"
    finally:
        r = cp.admin.delete(f"/api/v1/instances/{name}?force=true")
        if r.status_code == 202:
            cp.admin.wait_job(r.json()["job"]["id"], timeout=120)

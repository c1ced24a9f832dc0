"""Moving and repairing a synchronous pair through the API and the website, against real containers: Patroni's
refusal of a switchover as the job's error, a switchover and back (the write pause measured and printed), two
forced failovers in a row, the rebuild of a lost standby (by hand and by the worker once it stays lost), the
history of every change of primary, and the refusals (422) that need a live cluster: a candidate that is the
leader, the rebuild of the leader."""
from __future__ import annotations

import re
import base64
import json
import threading
import time
import urllib.request

import psycopg
import pytest

from tests.e2e.helpers import INST, create, patroni_tls, podman, secrets_of
from tests.ui.conftest import csrf_token, web_session

pytestmark = pytest.mark.slow
NAME = f"{INST}-ops"
API = f"/api/v1/instances/{NAME}"


@pytest.fixture(scope="module")
def ops(cp):
    created, job = create(cp, NAME, synchronous=True)
    assert job["status"] == "succeeded", job["error"]
    yield created
    r = cp.admin.delete(f"{API}?force=true")
    if r.status_code == 202:
        cp.admin.wait_job(r.json()["job"]["id"], timeout=120)


class Writer(threading.Thread):
    """Writes through the instance's read-write URI every 20 ms (every attempt with a timeout); records the
    longest gap between two acknowledged writes."""

    def __init__(self, uri: str, password: str):
        super().__init__(daemon=True)
        self.uri, self.password = uri, password
        self.stop = threading.Event()
        self.ok = 0
        self.longest_gap = 0.0

    def run(self):
        conn, last = None, time.monotonic()
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.uri, password=self.password, connect_timeout=2, autocommit=True,
                                           options="-c statement_timeout=2000")
                conn.execute("SELECT txid_current()")  # assigns a transaction id: only a primary can
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last)
                last = now
                self.ok += 1
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.02)
        if conn is not None:
            conn.close()


def state(cp) -> dict:
    return cp.admin.get(API).json()


def wait_state(cp, check, timeout=60, what="") -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = state(cp)
        if check(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'state'} not reached in {timeout}s: {st}")
        time.sleep(0.5)


def whole(st) -> bool:
    """available, a running primary and every standby running (and one in sync)."""
    return st["status"] == "available" and all(r["state"] in ("running", "streaming") for r in st["replicas"]) \
        and any(r["sync_state"] == "sync" for r in st["replicas"])


def standby(st, sync_state: str) -> str:
    return next(r["name"] for r in st["replicas"] if r["sync_state"] == sync_state)


def history(cp) -> list[dict]:
    r = cp.admin.get(f"{API}/history")
    assert r.status_code == 200, r.text
    return r.json()["changes"]


def post(cp, what: str, body: dict) -> dict:
    r = cp.admin.post(f"{API}/{what}", json=body)
    assert r.status_code == 202, r.text
    return cp.admin.wait_ok(r.json()["job"]["id"], timeout=180)


def test_refusals_that_need_a_live_pair(cp, ops):
    st = wait_state(cp, whole, what="whole pair")
    leader, a_standby = st["primary"]["name"], st["replicas"][0]["name"]
    for what, body, field in (("switchover", {"candidate": leader}, "candidate"),
                              ("failover", {"candidate": leader}, "candidate"),
                              ("rebuild", {"member": leader}, "member")):
        r = cp.admin.post(f"{API}/{what}", json=body)
        assert r.status_code == 422, (what, r.text)
        err = r.json()["error"]
        assert err["details"]["field"] == field and leader in err["message"] and "primary" in err["message"], err
    r = cp.admin.post(f"{API}/switchover", json={"candidate": "pgaas-nobody-9"})
    assert r.status_code == 422 and a_standby in r.json()["error"]["message"], r.text  # names the real members
    assert cp.admin.get(f"/api/v1/jobs?instance={NAME}").json()["jobs"][0]["kind"] == "instance_create"
    audit = cp.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
    assert {("instance.switchover", "failed"), ("instance.rebuild", "failed")} <= \
        {(e["action"], e["outcome"]) for e in audit}


def test_switchover_and_back(cp, ops):
    before = wait_state(cp, whole, what="whole pair")
    first, second = before["primary"]["name"], standby(before, "sync")
    timeline = before["primary"]["timeline"]
    # a hung standby (its container paused): Patroni still lists it for a few seconds, so pgaas asks, and Patroni
    # refuses (no good candidate, or it has gone); its words are the job's error, and nothing moved
    podman("pause", second)
    try:
        r = cp.admin.post(f"{API}/switchover", json={"candidate": second})
        assert r.status_code == 202, r.text
        refused = cp.admin.wait_job(r.json()["job"]["id"], timeout=120)
    finally:
        podman("unpause", second)
    assert refused["status"] == "failed" and "Patroni refused the switchover" in refused["error"], refused["error"]
    assert history(cp) == []
    wait_state(cp, lambda s: whole(s) and s["primary"]["name"] == first, what="whole again after the refusal")
    writer = Writer(ops["instance"]["uri"], ops["admin_password"])
    writer.start()
    try:
        time.sleep(0.5)
        pauses = []
        for candidate, expect in ((None, second), (first, first)):
            writer.longest_gap = 0.0
            writes = writer.ok
            if candidate is None:  # through the API, to whichever standby Patroni should take
                job = post(cp, "switchover", {})
            else:  # and back through the website's form, which goes to the job's page
                web = web_session(cp.base, "root", "root-password-1")
                token = csrf_token(web.get(f"{cp.base}/instances/{NAME}", timeout=30).text)
                r = web.post(f"{cp.base}/instances/{NAME}/switchover", allow_redirects=False, timeout=30,
                             data={"sw-csrf_token": token, "sw-candidate": candidate})
                assert r.status_code == 302 and "/jobs/" in r.headers["Location"], r.text
                job = cp.admin.wait_ok(int(r.headers["Location"].rsplit("/", 1)[1]), timeout=180)
            deadline = time.monotonic() + 10
            while writer.ok < writes + 20 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert writer.ok >= writes + 20, "writes did not resume after the switchover"
            pauses.append(writer.longest_gap)
            assert job["result"]["leader"] == expect and job["result"]["old_leader_rejoined"] is True, job["result"]
            # the job's end drops the kept state: the first view after it asks Patroni, never shows the old leader
            assert state(cp)["primary"]["name"] == expect
            st = wait_state(cp, lambda s: whole(s) and s["primary"]["name"] == expect, what=f"{expect} leads")
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    print(f"\nwrite pause during a switchover: {pauses[0]:.2f} s; and back: {pauses[1]:.2f} s "
          f"(a write every 20 ms through the read-write URI, {writer.ok} acknowledged)")
    assert st["primary"]["timeline"] == timeline + 2
    changes = history(cp)[:2]
    assert [(c["from"], c["to"], c["cause"], c["timeline"]) for c in changes] == \
        [(second, first, "switchover", timeline + 2), (first, second, "switchover", timeline + 1)], changes
    assert all(c["lag_bytes"] is not None and c["lag_bytes"] < 16 * 1024 * 1024 and c["job"] for c in changes)


def test_website_shows_the_history_and_refuses_like_the_api(cp, ops):
    st = wait_state(cp, whole, what="whole pair")
    leader = st["primary"]["name"]
    web = web_session(cp.base, "root", "root-password-1")
    page = web.get(f"{cp.base}/instances/{NAME}", timeout=30)
    assert page.status_code == 200 and 'id="primary-changes"' in page.text and "cause-switchover" in page.text
    token = csrf_token(page.text)
    url = f"{cp.base}/instances/{NAME}"
    assert web.post(f"{url}/switchover", data={"sw-candidate": leader}, timeout=30).status_code == 400  # no CSRF
    r = web.post(f"{url}/switchover", data={"sw-csrf_token": token, "sw-candidate": leader}, timeout=30)
    assert r.status_code == 422 and "is already the primary" in r.text, r.text[-2000:]
    r = web.post(f"{url}/members/{leader}/rebuild", data={f"rb-{leader}-csrf_token": token}, timeout=30)
    assert r.status_code == 422 and "cannot be rebuilt" in r.text
    assert cp.admin.get(API).json()["active_job"] is None  # nothing was started


def test_two_failovers_in_a_row(cp, ops):
    before = wait_state(cp, whole, what="whole pair")
    first, second = before["primary"]["name"], standby(before, "sync")
    timeline = before["primary"]["timeline"]
    job = post(cp, "failover", {"candidate": second})
    assert job["result"]["leader"] == second and job["result"]["old_leader"] == first, job["result"]
    wait_state(cp, lambda s: whole(s) and s["primary"]["name"] == second, what="first failover healed")
    job = post(cp, "failover", {"candidate": first})
    assert job["result"]["leader"] == first, job["result"]
    after = wait_state(cp, lambda s: whole(s) and s["primary"]["name"] == first, what="second failover healed")
    assert after["primary"]["timeline"] == timeline + 2
    changes = history(cp)[:2]
    assert [(c["from"], c["to"], c["cause"], c["timeline"]) for c in changes] == \
        [(second, first, "failover", timeline + 2), (first, second, "failover", timeline + 1)], changes
    with psycopg.connect(ops["instance"]["uri"], password=ops["admin_password"], connect_timeout=5) as c:
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is False


def test_a_change_made_outside_pgaas_is_recorded_as_automatic(cp, ops):
    """Patroni moves the primary without any pgaas job (here: asked on its own REST API): the worker's sampler
    finds the new timeline in Patroni's /history and records it."""
    before = wait_state(cp, whole, what="whole pair")
    first, second = before["primary"], before["replicas"][0]
    password = secrets_of(cp, NAME)["pgaas_restapi_password"]
    req = urllib.request.Request(
        f"https://{first['address']}:{patroni_port(cp, first['name'])}/switchover", method="POST",
        data=json.dumps({"leader": first["name"], "candidate": second["name"]}).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"pgaas:{password}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=60, context=patroni_tls(cp, NAME)) as r:
        assert r.status == 200, r.read()
    deadline = time.monotonic() + 30
    while not (changes := history(cp)) or changes[0]["timeline"] <= before["primary"]["timeline"]:
        assert time.monotonic() < deadline, f"no history row for the new timeline: {changes[:2]}"
        time.sleep(0.5)
    c = changes[0]
    assert (c["from"], c["to"], c["cause"], c["job"]) == (first["name"], second["name"], "automatic", None), c
    assert c["timeline"] == before["primary"]["timeline"] + 1 and c["switch_lsn"], c


def patroni_port(cp, member: str) -> int:
    from webapp.services import instances as isvc

    svc = cp.app.extensions["pgaas"]
    with svc.store.session() as s:
        return next(m.api_port for m in isvc.get(s, NAME).members if m.name == member)


def lose_standby(cp) -> dict:
    """Remove the standby's container and data volume, as if its host were gone; the instance turns degraded."""
    st = wait_state(cp, whole, what="whole pair")
    standby = st["replicas"][0]
    podman("rm", "--force", "--time", "0", standby["container"])
    podman("volume", "rm", "--force", f"{standby['container']}-data")
    degraded = wait_state(cp, lambda s: s["status"] == "degraded", timeout=30, what="degraded")
    assert "standby" in degraded["status_reason"], degraded
    return standby


def streams(member: dict) -> bool:
    """In recovery and streaming, as PostgreSQL itself says (the WAL receiver's status is for superusers)."""
    out = podman("exec", "--user", "postgres", member["container"], "psql", "-XAtqc",
                 "select pg_is_in_recovery() and (select status = 'streaming' from pg_stat_wal_receiver)")
    return out.strip() == "t"


def test_rebuild_a_lost_standby(cp, ops):
    with psycopg.connect(ops["instance"]["uri"], password=ops["admin_password"], autocommit=True) as c:
        c.execute("create database ops_app")  # the instance admin may create databases
    ops_app = re.sub(r"/\w+\?", "/ops_app?", ops["instance"]["uri"], count=1)
    with psycopg.connect(ops_app, password=ops["admin_password"],
                         autocommit=True) as c:
        c.execute("create table kept (id int)")
        c.execute("insert into kept select generate_series(1, 1000)")
    changes_before = len(history(cp))
    standby = lose_standby(cp)
    started = time.monotonic()
    r = cp.admin.post(f"{API}/rebuild", json={"member": standby["name"]})
    assert r.status_code == 202, r.text
    busy = cp.admin.post(f"{API}/switchover", json={})  # one job at a time on an instance
    assert busy.status_code == 409 and "busy" in busy.json()["error"]["message"], busy.text
    job = cp.admin.wait_ok(r.json()["job"]["id"], timeout=180)
    took = time.monotonic() - started
    assert job["result"]["member"] == standby["name"], job["result"]
    after = wait_state(cp, whole, timeout=30, what="available after the rebuild")
    rebuilt = next(r for r in after["replicas"] if r["name"] == standby["name"])
    # same name and port on the local provider: the instance's URI is unchanged
    assert (rebuilt["address"], rebuilt["port"]) == (standby["address"], standby["port"])
    assert after["uri"] == ops["instance"]["uri"]
    assert streams(rebuilt)
    with psycopg.connect(host=rebuilt["address"], port=rebuilt["port"], dbname="ops_app", user="dbadmin",
                         password=ops["admin_password"], connect_timeout=3) as c:
        assert c.execute("select count(*) from kept").fetchone()[0] >= 1000  # cloned from the primary
    assert len(history(cp)) == changes_before  # a rebuild does not move the primary
    print(f"\nrebuild of a lost standby (job, from the request to streaming): {took:.1f} s")


def test_a_standby_lost_for_long_is_rebuilt_by_the_worker(cp, ops):
    config = cp.app.extensions["pgaas"].config
    saved = config["REBUILD_AFTER_SECONDS"]
    lost_at = time.monotonic()
    standby = lose_standby(cp)
    degraded_at = time.monotonic()
    config["REBUILD_AFTER_SECONDS"] = 2
    try:
        deadline = time.monotonic() + 30
        job = None
        while job is None and time.monotonic() < deadline:
            jobs = cp.admin.get(f"/api/v1/jobs?instance={NAME}").json()["jobs"]
            job = next((j for j in jobs if j["kind"] == "instance_rebuild" and j["created_by"] == "pgaas-maintenance"
                        and j["status"] in ("queued", "running")), None)
            time.sleep(0.3)
        assert job is not None, "the worker did not queue a rebuild of the lost standby"
    finally:
        config["REBUILD_AFTER_SECONDS"] = saved
    queued_at = time.monotonic()
    job = cp.admin.wait_ok(job["id"], timeout=180)
    done_at = time.monotonic()
    assert job["result"]["member"] == standby["name"]
    wait_state(cp, whole, timeout=30, what="available after the automatic rebuild")
    print(f"\nautomatic rebuild: degraded {degraded_at - lost_at:.1f} s after the loss, queued "
          f"{queued_at - degraded_at:.1f} s after REBUILD_AFTER_SECONDS became 2, streaming {done_at - queued_at:.1f} s "
          f"later; available {time.monotonic() - lost_at:.1f} s after the loss")
    audit = cp.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
    assert any(e["action"] == "instance.rebuild" and e["actor"] == "pgaas-maintenance" and standby["name"] in
               e["detail"] for e in audit), audit[:5]

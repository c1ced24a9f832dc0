"""Fault tolerance as Patroni gives it with pgaas's settings: kill the primary of a synchronous pair in the middle
of a write load; a new primary takes writes through the unchanged URI, no acknowledged commit is lost, the timeline
advances, and the old primary rejoins as a standby when it comes back."""
from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.e2e.helpers import INST, create, podman

pytestmark = pytest.mark.slow
NAME = f"{INST}-ha"


@pytest.fixture(scope="module")
def ha(cp):
    created, job = create(cp, NAME, synchronous=True)
    assert job["status"] == "succeeded", job["error"]
    yield created
    r = cp.admin.delete(f"/api/v1/instances/{NAME}?force=true")
    if r.status_code == 202:
        cp.admin.wait_job(r.json()["job"]["id"], timeout=120)


class Writer(threading.Thread):
    """Inserts sequential ids through the instance URI; records the ids whose COMMIT was acknowledged, and the
    times writes failed and resumed. Every attempt has a timeout, so a hung server is seen as a failure."""

    def __init__(self, uri, password):
        super().__init__(daemon=True)
        self.uri, self.password = uri, password
        self.acked: list[int] = []
        self.acked_at: list[float] = []
        self.failures: list[float] = []
        self.stop = threading.Event()
        self.conn = None

    def _connect(self):
        self.conn = psycopg.connect(self.uri, password=self.password, connect_timeout=2, autocommit=True,
                                    options="-c statement_timeout=2000")

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if self.conn is None or self.conn.closed:
                    self._connect()
                self.conn.execute("insert into ha_rows values (%s)", (n,))
                self.acked.append(n)
                self.acked_at.append(time.monotonic())
            except psycopg.Error:
                self.failures.append(time.monotonic())
                try:
                    if self.conn is not None:
                        self.conn.close()
                except psycopg.Error:
                    pass
                self.conn = None
                time.sleep(0.05)
            time.sleep(0.005)


def state(cp):
    return cp.admin.get(f"/api/v1/instances/{NAME}").json()


def test_kill_the_primary_under_load_loses_no_acknowledged_commit(cp, ha):
    pw = ha["admin_password"]
    with psycopg.connect(ha["instance"]["uri"], password=pw, autocommit=True) as c:
        c.execute("create database ha_app")  # the instance admin may create databases
    uri = ha["instance"]["uri"].replace("/postgres?", "/ha_app?")
    with psycopg.connect(uri, password=pw, autocommit=True) as c:
        c.execute("create table ha_rows (id int primary key)")
    before = state(cp)
    old_primary, timeline = before["primary"]["container"], before["primary"]["timeline"]
    writer = Writer(uri, pw)
    writer.start()
    time.sleep(1.5)
    acked_before_kill = len(writer.acked)
    assert acked_before_kill > 10
    killed_at = time.monotonic()
    podman("kill", "--signal", "KILL", old_primary)

    def resumed_at():
        """The first acknowledged write after the last failure that followed the kill."""
        fails = [t for t in writer.failures if t >= killed_at]
        if not fails:
            return None
        after = [t for t in writer.acked_at if t > fails[-1]]
        return after[0] if len(after) >= 20 else None

    deadline = killed_at + 90
    while time.monotonic() < deadline and resumed_at() is None:
        time.sleep(0.1)
    writer.stop.set()
    writer.join(timeout=10)
    assert resumed_at() is not None, "writes never failed and resumed"
    rto = resumed_at() - killed_at
    print(f"\nRTO (kill -> first acknowledged write on the new primary): {rto:.1f} s; "
          f"acknowledged {len(writer.acked)}, failed attempts {len(writer.failures)}")
    with psycopg.connect(uri, password=pw) as c:
        present = {r[0] for r in c.execute("select id from ha_rows")}
        assert c.execute("select pg_is_in_recovery()").fetchone()[0] is False
    lost = [i for i in writer.acked if i not in present]
    assert lost == [], f"acknowledged commits lost: {lost[:20]}"
    def promoted(st):
        p = st["primary"]
        return p is not None and p["container"] != old_primary and (p["timeline"] or 0) > timeline

    deadline = time.monotonic() + 20  # Patroni's view (leader, timeline) may trail the promotion by a loop or two
    while not promoted(after := state(cp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert promoted(after), after
    # the old primary comes back and rejoins as a standby that streams from the new primary
    podman("start", old_primary)
    member = next(m for m in [before["primary"], *before["replicas"]] if m["container"] == old_primary)
    deadline = time.monotonic() + 90
    rejoined = False
    while time.monotonic() < deadline and not rejoined:
        st = state(cp)
        rep = [r for r in st["replicas"] if r["container"] == old_primary]
        if rep and rep[0]["state"] in ("running", "streaming") and st["status"] == "available":
            try:
                with psycopg.connect(host=member["address"], port=member["port"], dbname="ha_app", user="dbadmin",
                                     password=pw, connect_timeout=2) as c:
                    rejoined = c.execute("select pg_is_in_recovery()").fetchone()[0] is True and \
                        c.execute("select count(*) from ha_rows").fetchone()[0] >= len(writer.acked)
            except psycopg.Error:
                pass
        if not rejoined:
            time.sleep(1)
    assert rejoined, f"old primary did not rejoin as a standby: {st}"

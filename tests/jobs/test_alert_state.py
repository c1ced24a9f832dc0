"""The alerts' firing state lives in the store: a new Notifier (a restarted worker, or a second one) does not
announce again what already fires, announces the end of what it never saw start, and two notifiers racing on one
change announce it once. Real store (SQLite and PostgreSQL), real HTTP webhook receiver."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.e2e.test_reports import Receiver

from webapp.services import accounts, alerts
from webapp.services.audit import Actor
from webapp.store import Store
from webapp.store.models import AlertState, Database, DatabaseSample, Instance, utcnow

MIB = 1024 * 1024


def take(receiver) -> list[tuple[str, str]]:
    """(status, alert id) of what the receiver was sent since the last look."""
    out = [(m["status"], m["alert"]["id"]) for m in receiver.got]
    receiver.got.clear()
    return out


@pytest.fixture
def world(database_url):
    store = Store(database_url)
    store.upgrade()
    with store.session() as s:
        owner, _ = accounts.create_user(s, "olga", "olga-password-1")
        other, _ = accounts.create_user(s, "otto", "otto-password-1")
        inst = Instance(name="main", status="parked", provider="local", admin_user="dbadmin", secrets_enc="x")
        s.add(inst)
        s.flush()
        s.add(Database(instance_id=inst.id, owner_id=owner.id, name="shop", role_name="shop", quota_mb=10))
        ids = owner.id, other.id
    receiver = Receiver()
    yield store, receiver, ids
    receiver.server.shutdown()
    store.dispose()


def sample(store, mib: float):
    with store.session() as s:
        s.add(DatabaseSample(at=utcnow(), instance_name="main", database_name="shop", size_bytes=int(mib * MIB),
                             numbackends=0, numbackends_max=0, xact_commit=1, xact_rollback=0, blks_hit=1,
                             blks_read=0, tup_written=0, deadlocks=0, temp_bytes=0, quota_mb=10))


def notify(store, url) -> dict:
    with store.session() as s:
        return alerts.Notifier({"ALERT_WEBHOOK_URL": url, "ALERT_LAG_BYTES": MIB, "ALERT_LAG_SECONDS": 30})(s)


def test_a_new_notifier_neither_fires_again_nor_forgets_the_end(world):
    store, hook, (owner, other) = world
    aid = "quota/main/shop"
    sample(store, 9)  # 90% of the quota
    assert notify(store, hook.url) == {"started": [aid], "ended": []}
    assert take(hook) == [("firing", aid)]
    for _ in range(2):  # a restarted worker (a new Notifier each time): nothing new to say
        assert notify(store, hook.url) == {"started": [], "ended": []}
    assert take(hook) == []
    with store.session() as s:
        row = s.get(AlertState, aid)
        assert row.resolved_at is None and row.owner_id == owner and row.alert["percent"] == 90.0
        assert alerts.firing_count(s, Actor("olga", False, owner)) == 1
        assert alerts.firing_count(s, Actor("otto", False, other)) == 0
        assert alerts.firing_count(s, Actor("root", True, None)) == 1
        assert [a.id for a in alerts.firing(s, Actor("olga", False, owner))] == [aid]

    sample(store, 2)  # space freed: a new Notifier that never saw the start still sends the end
    assert notify(store, hook.url) == {"started": [], "ended": [aid]}
    msgs = list(hook.got)
    assert take(hook) == [("resolved", aid)] and msgs[0]["alert"]["database"] == "shop"
    assert notify(store, hook.url) == {"started": [], "ended": []}
    with store.session() as s:
        assert s.get(AlertState, aid).resolved_at is not None
        assert alerts.firing_count(s, Actor("olga", False, owner)) == 0

    sample(store, 9.5)  # it fires again: the resolved row starts over
    assert notify(store, hook.url) == {"started": [aid], "ended": []}
    assert take(hook) == [("firing", aid)]


def test_two_notifiers_on_one_change_announce_it_once(world):
    store, hook, _ = world
    sample(store, 9)
    results = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(notify(store, hook.url))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(len(r["started"]) for r in results) == [0, 1], results
    assert take(hook) == [("firing", "quota/main/shop")]


def test_resolved_alerts_are_forgotten_after_the_retention(world):
    store, _, _ = world
    with store.session() as s:
        long_ago = utcnow() - timedelta(days=40)
        s.add(AlertState(id="degraded/old", kind="degraded", instance_name="old", severity="critical", alert={},
                         started_at=long_ago, last_seen_at=long_ago, resolved_at=long_ago))
    with store.session() as s:
        assert alerts.prune(s, 30 * 86400) == 1

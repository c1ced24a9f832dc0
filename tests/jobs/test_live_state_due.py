"""Which instance states the worker refreshes (services/livestate.py): a watched instance's at 3 s, an unwatched
one's at 15 s, a missing one at once; a view reads the kept state and marks it watched, and asks Patroni itself only
when the state is missing or stale (no worker). Real store (SQLite and PostgreSQL); the probes of Patroni are real
too: the instances here have no members answering, which is what the views then show."""
from __future__ import annotations

from datetime import timedelta

import pytest

from webapp.services import livestate
from webapp.services.instances import ClusterState, MemberState
from webapp.store import Store
from webapp.store.models import Instance, InstanceState, Member, aware, utcnow


@pytest.fixture
def store(database_url):
    st = Store(database_url)
    st.upgrade()
    with st.session() as s:
        for name in ("watched", "idle", "fresh", "new"):
            inst = Instance(name=name, status="available", provider="local", admin_user="a", secrets_enc="x")
            # a member nothing listens for (port 9 of loopback: discard, closed here): probes get no answer
            inst.members = [Member(ordinal=0, name=f"pgaas-{name}-0", host=f"h-{name}", address="127.0.0.1",
                                   pg_port=9, api_port=9)]
            s.add(inst)
        s.add(Instance(name="stopped", status="failed", provider="local", admin_user="a", secrets_enc="x"))
    yield st
    st.dispose()


def led_by(name: str) -> ClusterState:
    m = MemberState(name=name, host="h", address="127.0.0.1", port=9, container=name, role="primary",
                    state="running", timeline=3)
    return ClusterState(True, primary=m, healthy=True)


def test_the_worker_refreshes_what_is_watched_at_3_s_and_the_rest_at_15_s(store):
    now = utcnow()
    with store.session() as s:
        livestate.record(s, {"watched": led_by("pgaas-watched-0")}, now - timedelta(seconds=3.5))
        livestate.record(s, {"idle": led_by("pgaas-idle-0")}, now - timedelta(seconds=10))
        livestate.record(s, {"fresh": led_by("pgaas-fresh-0")}, now - timedelta(seconds=1))
        livestate.record(s, {"stopped": led_by("x")}, now - timedelta(seconds=1))
        s.get(InstanceState, "watched").watched_at = now - timedelta(seconds=5)
        s.get(InstanceState, "fresh").watched_at = now - timedelta(seconds=5)
        s.get(InstanceState, "idle").watched_at = now - timedelta(seconds=60)  # watched long ago: the idle pace
    with store.session() as s:
        assert sorted(i.name for i in livestate.due(s, now)) == ["new", "watched"]
        assert sorted(i.name for i in livestate.due(s, now + timedelta(seconds=6))) == \
            ["fresh", "idle", "new", "watched"]
        out = livestate.refresh(s, timeout=0.3, now=now)
    assert out == {"probed": ["new", "watched"]}
    with store.session() as s:
        rows = {r.instance_name: r for r in s.query(InstanceState)}
        assert "stopped" not in rows  # not available: dropped, asked again when it is back
        assert rows["new"].state["reachable"] is False and aware(rows["new"].sampled_at) == now
        assert rows["idle"].state["primary"]["name"] == "pgaas-idle-0"  # not due: untouched


def test_a_view_reads_the_kept_state_marks_it_watched_and_asks_patroni_only_when_it_is_stale(store):
    now = utcnow()
    with store.session() as s:
        livestate.record(s, {"idle": led_by("pgaas-idle-0")}, now - timedelta(seconds=4))
        livestate.record(s, {"fresh": led_by("pgaas-fresh-0")}, now - timedelta(seconds=30))
    with store.session() as s:
        insts = [s.query(Instance).filter_by(name=n).one() for n in ("idle", "fresh", "new", "stopped")]
        got = livestate.read(s, insts, timeout=0.3, now=now)
    assert set(got) == {"idle", "fresh", "new"}  # not the stopped one
    st, age = got["idle"]
    assert st.primary.name == "pgaas-idle-0" and st.healthy and age == pytest.approx(4, abs=0.01)
    for name in ("fresh", "new"):  # stale (no worker kept it) or missing: Patroni asked now, and it did not answer
        st, age = got[name]
        assert age == 0.0 and st.reachable is False and st.problem == "no Patroni member answers"
    with store.session() as s:
        rows = {r.instance_name: r for r in s.query(InstanceState)}
        assert all(aware(rows[n].watched_at) == now for n in ("idle", "fresh", "new"))
        assert aware(rows["fresh"].sampled_at) == now and rows["fresh"].state["reachable"] is False
        livestate.forget(s, "idle", now)  # a job ended on it
        livestate.record(s, {"idle": led_by("pgaas-idle-0")}, now)  # the worker records a state at once
    with store.session() as s:
        inst = s.query(Instance).filter_by(name="idle").one()
        st, age = livestate.read(s, [inst], timeout=0.3, now=now + timedelta(seconds=1))["idle"]
        assert age == 0.0 and st.reachable is False  # settling after a job: asked again, not the kept state
        st, age = livestate.read(s, [inst], timeout=0.3, now=now + timedelta(seconds=11))["idle"]
        assert age == pytest.approx(10, abs=0.01)  # settled: the kept state again (the one read above)
        st, age = livestate.read(s, [inst], timeout=0.3, live=True, now=now + timedelta(seconds=1))["idle"]
        assert age == 0.0  # live: asked even though the kept state is a second old


def test_the_state_survives_its_json_whole():
    m = MemberState(name="a", host="h", address="10.0.0.1", port=5432, container="a", role="replica",
                    state="streaming", lag_bytes=42, sync_state="sync", timeline=7, pending_restart=True)
    st = ClusterState(True, primary=MemberState(name="b", host="h", address="10.0.0.2", port=5433, container="b",
                                                role="primary", state="running", timeline=7),
                      replicas=[m], healthy=False, problem="a standby is not running")
    assert livestate.from_json(livestate.to_json(st)) == st

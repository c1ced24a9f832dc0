"""The history of primary changes from Patroni's /history lines: one row per new timeline, the old primary taken
from the previous line (the bootstrap member for the first), the cause from the job that was running when the
primary changed and meant to promote that member (automatic when none did), recorded once however often the same
history is read."""
from datetime import timedelta

from webapp.services import failover
from webapp.store import Store
from webapp.store.models import Instance, Job, Member, PrimaryChange, utcnow


def test_history_lines_become_one_row_per_timeline(database_url):
    store = Store(database_url)
    store.upgrade()
    now = utcnow().replace(microsecond=0)
    t1, t2, t3 = now - timedelta(minutes=30), now - timedelta(minutes=20), now - timedelta(minutes=10)
    with store.session() as s:
        inst = Instance(name="main", status="available", provider="local", admin_user="dbadmin", secrets_enc="x")
        inst.members = [Member(ordinal=i, name=f"pgaas-main-{i}", host="localhost", address="127.0.0.1",
                               pg_port=20000 + 2 * i, api_port=20001 + 2 * i) for i in range(2)]
        s.add(inst)
        # a failover job that meant to promote pgaas-main-0 was running when Patroni promoted pgaas-main-1 on its own
        s.add(Job(kind="instance_failover", instance_name="main", status="failed", params={"candidate": "pgaas-main-0"},
                  started_at=t1 - timedelta(seconds=2), finished_at=t1 + timedelta(seconds=4)))
        s.add(Job(kind="instance_switchover", instance_name="main", status="succeeded",
                  started_at=t2 - timedelta(seconds=3), finished_at=t2 + timedelta(seconds=8)))
        s.add(Job(kind="instance_failover", instance_name="main", status="succeeded",
                  started_at=t3 - timedelta(seconds=2), finished_at=t3 + timedelta(seconds=6)))
    lines = [[1, 50331808, "no recovery target specified", t1.isoformat(), "pgaas-main-1"],
             [2, 67109024, "no recovery target specified", t2.isoformat(), "pgaas-main-0"],
             [3, 83886240, "no recovery target specified", t3.isoformat(), "pgaas-main-1"]]
    with store.session() as s:
        inst = s.query(Instance).one()
        added = failover.record_history(s, inst, lines[:2])
        assert [r.timeline for r in added] == [2, 3]
    with store.session() as s:
        inst = s.query(Instance).one()
        assert [r.timeline for r in failover.record_history(s, inst, lines)] == [4]  # the first two are known
        assert failover.record_history(s, inst, lines) == []
    with store.session() as s:
        rows = s.query(PrimaryChange).order_by(PrimaryChange.timeline).all()
        assert [(r.timeline, r.from_member, r.to_member, r.cause, r.switch_lsn) for r in rows] == [
            (2, "pgaas-main-0", "pgaas-main-1", "automatic", 50331808),
            (3, "pgaas-main-1", "pgaas-main-0", "switchover", 67109024),
            (4, "pgaas-main-0", "pgaas-main-1", "failover", 83886240)]
        assert rows[0].job_id is None and rows[1].job_id is not None and rows[2].job_id is not None
        assert [r.at.replace(tzinfo=None) for r in rows] == [t.replace(tzinfo=None) for t in (t1, t2, t3)]
    # deleting the instance deletes its history with it
    with store.session() as s:
        s.delete(s.query(Instance).one())
    with store.session() as s:
        assert s.query(PrimaryChange).count() == 0
    store.dispose()

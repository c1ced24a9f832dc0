"""Metrics history: raw samples older than the raw window fold into 5-minute roll-ups, and old roll-ups go."""
from datetime import timedelta

from webapp.services import metrics
from webapp.store import Store
from webapp.store.models import DatabaseSample, InstanceSample, utcnow


def db_sample(at, commits, size, conns=1):
    return DatabaseSample(at=at, instance_name="main", database_name="app", size_bytes=size, numbackends=conns,
                          numbackends_max=conns, xact_commit=commits, xact_rollback=0, blks_hit=90, blks_read=10,
                          tup_written=commits, deadlocks=0, temp_bytes=0, quota_mb=100)


def test_rollup_and_prune(database_url):
    store = Store(database_url)
    store.upgrade()
    now = utcnow().replace(microsecond=0)
    bucket = now - timedelta(days=2)
    bucket = bucket - timedelta(seconds=bucket.timestamp() % 300)
    with store.session() as s:
        # 10 raw samples 15 s apart, two days old: one 5-minute bucket with 4000 commits over 135 s
        for i in range(10):
            s.add(db_sample(bucket + timedelta(seconds=15 * i), 1000 + 444 * i, 10_000_000 + i, conns=i))
            s.add(InstanceSample(at=bucket + timedelta(seconds=15 * i), instance_name="main", connections=i,
                                 max_connections=100, wal_bytes=1000 * i, detail={}))
        # a fresh raw sample stays raw; a 40-day-old roll-up is pruned
        s.add(db_sample(now - timedelta(minutes=1), 99_999, 20_000_000))
        ancient = db_sample(now - timedelta(days=40), 1, 1)
        ancient.resolution = 300
        s.add(ancient)
    with store.session() as s:
        out = metrics.rollup_and_prune(s, metrics.Retention(), now=now)
    assert out == {"rolled_up": 20, "rollups_made": 2, "pruned": 1}
    with store.session() as s:
        rows = s.query(DatabaseSample).order_by(DatabaseSample.at).all()
        assert [(r.resolution, r.xact_commit) for r in rows] == [(300, 1000 + 444 * 9), (0, 99_999)]
        roll = rows[0]
        assert roll.numbackends_max == 9 and roll.numbackends == round(sum(range(10)) / 10)
        assert roll.size_bytes == 10_000_009
        inst = s.query(InstanceSample).one()
        assert inst.resolution == 300 and inst.wal_bytes == 9000 and inst.detail == {"samples": 10}
        # a second pass changes nothing
        assert metrics.rollup_and_prune(s, metrics.Retention(), now=now) == {
            "rolled_up": 0, "rollups_made": 0, "pruned": 0}
        # series read across the roll-up and the raw tail: rates between points
        pts = metrics.database_series(s, "main", "app", now - timedelta(days=3), now)
        assert [p["resolution"] for p in pts] == [300, 0] and pts[1]["tps"] > 0
    store.dispose()


def test_parse_range_rejects_bad_times():
    import pytest

    from webapp.services import Invalid

    with pytest.raises(Invalid):
        metrics.parse_range("yesterday", None)
    with pytest.raises(Invalid):
        metrics.parse_range("2026-11-28T10:00:00Z", "2026-11-28T09:00:00Z")
    start, end = metrics.parse_range(None, "2026-11-28T10:00:00Z")
    assert (end - start).total_seconds() == 3600

"""Monitoring against a real pair: pgbench load shows up as TPS, sizes grow, /metrics parses, and a monitoring
query on a locked catalog gives up at its timeout without piling up sessions."""
from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_api import error_of
from tests.e2e.helpers import INST, secrets_of

pytestmark = pytest.mark.slow
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"


@pytest.fixture(scope="module")
def bench_db(cp, pair):
    r = cp.admin.post("/api/v1/users", json={"username": "mona", "password": "mona-password-1"})
    assert r.status_code in (201, 409)
    mona = cp.anon.as_user("mona", "mona-password-1")
    r = mona.post(f"/api/v1/instances/{INST}/databases", json={"name": "bench_me", "quota_mb": 500})
    assert r.status_code == 201, r.text
    # every test here reads samples: wait for the first one of the new database, so that each test passes alone
    wait_points(mona, f"/api/v1/instances/{INST}/databases/bench_me/metrics", lambda pts: len(pts) >= 1)
    return mona, r.json()["database"]


def wait_points(api, path, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(path).json()
        pts = body.get("points", [])
        if pred(pts):
            return pts
        time.sleep(0.5)
    raise AssertionError(f"{path}: condition not met; last points {pts[-3:]}")


def test_pgbench_load_shows_as_tps_and_size_growth(cp, bench_db):
    mona, db = bench_db
    path = f"/api/v1/instances/{INST}/databases/bench_me/metrics"
    before = wait_points(mona, path, lambda pts: len(pts) >= 1)[-1]
    env = {**os.environ, "PGPASSWORD": db["password"]}
    subprocess.run([PGBENCH, "-i", "-s", "2", "-q", db["uri"]], env=env, check=True, capture_output=True)
    start = datetime.now(timezone.utc)
    with psycopg.connect(db["uri"], password=db["password"]) as c:
        commits0 = c.execute("select xact_commit from pg_stat_database where datname = current_database()"
                             ).fetchone()[0]
    subprocess.run([PGBENCH, "-T", "4", "-c", "2", "-n", db["uri"]], env=env, check=True, capture_output=True)
    with psycopg.connect(db["uri"], password=db["password"]) as c:
        commits1 = c.execute("select xact_commit from pg_stat_database where datname = current_database()"
                             ).fetchone()[0]
    time.sleep(2.5)  # at least two more samples after the load
    pts = mona.get(path, params={"from": (start - timedelta(seconds=2)).isoformat()}).json()["points"]
    tps = [p["tps"] for p in pts if p.get("tps") is not None]
    assert max(tps) > 10, pts
    assert pts[-1]["size_bytes"] > before["size_bytes"] + 20_000_000  # pgbench -s 2 is ~30 MB
    assert pts[-1]["cache_hit_ratio"] is None or 0 <= pts[-1]["cache_hit_ratio"] <= 1
    # the sampled counters agree with what SQL says over the same period
    sampled = sum(p["tps"] * (datetime.fromisoformat(p["at"]) - datetime.fromisoformat(q["at"])).total_seconds()
                  for q, p in zip(pts, pts[1:]) if p.get("tps") is not None)
    assert sampled >= (commits1 - commits0) * 0.95
    assert 0 < pts[-1]["quota_used"] < 1
    # another tenant cannot read these metrics
    error_of(cp.alice.get(path), 404)


def test_prometheus_endpoint_parses_with_labels(cp, bench_db):
    error_of(cp.alice.get("/api/v1/metrics"), 403)
    r = cp.admin.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    size = [s for s in families["pgaas_database_size_bytes"].samples if s.labels["database"] == "bench_me"]
    assert size and size[0].labels["instance"] == INST and size[0].value > 0
    assert any(s.labels["instance"] == INST and s.value == 1
               for s in families["pgaas_instance_healthy"].samples)
    assert any(s.labels["member"] == f"pgaas-{INST}-1" for s in families["pgaas_instance_replication_lag_bytes"]
               .samples)
    assert any(s.value > 0 for s in families["pgaas_container_memory_bytes"].samples)
    assert "pgaas_database_xact_commit" in families
    assert cp.anon.get("/metrics").status_code == 401


def test_admin_usage_and_instance_metrics(cp, bench_db):
    usage = cp.admin.get("/api/v1/admin/usage").json()
    inst = next(i for i in usage["instances"] if i["instance"] == INST)
    members = inst["members"]
    assert members[f"pgaas-{INST}-0"]["role"] == "primary" and members[f"pgaas-{INST}-1"]["role"] == "replica"
    assert members[f"pgaas-{INST}-0"]["memory_bytes"] > 0 and members[f"pgaas-{INST}-0"]["volume_bytes"] > 0
    assert inst["connections"] >= 0 and inst["max_connections"] >= 100
    # WAL of its own between two samples (the test must not rely on an earlier test's load)
    _, db = bench_db
    with psycopg.connect(db["uri"], password=db["password"], autocommit=True) as c:
        c.execute("create table if not exists wal_maker (id int)")
        c.execute("insert into wal_maker select generate_series(1, 20000)")
    pts = wait_points(cp.admin, f"/api/v1/instances/{INST}/metrics",
                      lambda pts: len(pts) >= 2 and any(p.get("wal_bytes_per_s", 0) > 0 for p in pts))
    error_of(cp.admin.get(f"/api/v1/instances/{INST}/metrics?from=yesterday"), 422)


def test_monitoring_gives_up_on_a_locked_table_without_piling_sessions(cp, bench_db):
    from webapp.services import instances as isvc
    from webapp.services import metrics

    mona, db = bench_db
    svc = cp.app.extensions["pgaas"]
    secrets = secrets_of(cp, INST)
    primary = cp.admin.get(f"/api/v1/instances/{INST}").json()["primary"]
    locker = psycopg.connect(db["uri"], password=db["password"], connect_timeout=5)
    try:
        locker.execute("lock table pgbench_accounts in access exclusive mode")
        with svc.store.session() as s:
            inst = isvc.get(s, INST)
            # a whole sampling cycle is not held up by the lock
            t0 = time.monotonic()
            detail = metrics.sample_instance(s, svc.box, inst, svc.provider)
            assert time.monotonic() - t0 < 5 and not detail.get("errors"), detail
            # and a monitoring session that does touch the locked table gives up at its lock timeout (the
            # sampler never connects to tenant databases; the test lets the monitor role in to prove the timeouts)
            password = metrics.ensure_monitor_role(s, svc.box, inst)
            with psycopg.connect(host=primary["address"], port=primary["port"], user="postgres", dbname="postgres",
                                 password=secrets["pgaas_superuser_password"], connect_timeout=5,
                                 autocommit=True) as su:
                su.execute("grant connect on database bench_me to pgaas_monitor")
            for _ in range(3):
                with metrics.monitor_connect(inst, password, "bench_me") as mon:
                    t0 = time.monotonic()
                    with pytest.raises(psycopg.errors.LockNotAvailable):
                        mon.execute("select count(*) from pgbench_accounts")
                    assert time.monotonic() - t0 < 2
        with psycopg.connect(host=primary["address"], port=primary["port"], user="postgres", dbname="postgres",
                             password=secrets["pgaas_superuser_password"], connect_timeout=5) as c:
            waiting = c.execute("select count(*) from pg_stat_activity where usename = 'pgaas_monitor' "
                                "and wait_event_type = 'Lock'").fetchone()[0]
        assert waiting == 0
    finally:
        locker.close()

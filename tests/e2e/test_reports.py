"""Reports and alerts against a real pair: a pgbench period's report agrees with what SQL says about the same
period, in json, csv, html (inline SVG) and pdf (pdftotext reads it back); a quota filled past 80% raises an alert
that its owner and admins see, another user does not, and a webhook hears when it starts and ends."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg
import pytest

from tests.api.test_api import error_of
from tests.e2e.helpers import INST

pytestmark = pytest.mark.slow
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def rita(cp, pair):
    r = cp.admin.post("/api/v1/users", json={"username": "rita", "password": "rita-password-1"})
    assert r.status_code in (201, 409)
    return cp.anon.as_user("rita", "rita-password-1")


@pytest.fixture(scope="module")
def report_db(rita):
    r = rita.post(f"/api/v1/instances/{INST}/databases", json={"name": "report_me", "quota_mb": 500})
    assert r.status_code == 201, r.text
    return r.json()["database"]


def sql(db, query):
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5) as c:
        return c.execute(query).fetchone()[0]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def wait_sample_after(api, name, after: str, timeout=30):
    """Until the sampler has taken a sample of the database after the given time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pts = api.get(f"/api/v1/instances/{INST}/databases/{name}/metrics", params={"from": after}).json()["points"]
        if pts:
            return pts[0]
        time.sleep(0.3)
    raise AssertionError(f"no sample of {name} after {after}")


@pytest.fixture(scope="module")
def period(rita, report_db):
    """A period with idle samples at both ends and pgbench load in the middle; what SQL said at its ends."""
    env = {**os.environ, "PGPASSWORD": report_db["password"]}
    subprocess.run([PGBENCH, "-i", "-s", "1", "-q", report_db["uri"]], env=env, check=True, capture_output=True)
    time.sleep(1.5)  # pgbench -i's own statistics are flushed before the period starts
    commits0 = sql(report_db, "select xact_commit + xact_rollback from pg_stat_database "
                              "where datname = current_database()")
    start = now_iso()
    wait_sample_after(rita, "report_me", start)  # an idle sample opens the period, counting all before the load
    subprocess.run([PGBENCH, "-T", "4", "-c", "3", "-n", report_db["uri"]], env=env, check=True, capture_output=True)
    time.sleep(1.0)
    commits1 = sql(report_db, "select xact_commit + xact_rollback from pg_stat_database "
                              "where datname = current_database()")
    size = sql(report_db, "select pg_database_size(current_database())")
    wait_sample_after(rita, "report_me", now_iso())  # and an idle one after the load closes it
    time.sleep(0.2)
    return {"from": start, "to": now_iso(), "transactions": commits1 - commits0, "size": size}


def report(api, fmt="json", name="report_me", **params):
    return api.get(f"/api/v1/instances/{INST}/databases/{name}/report", params={"format": fmt, **params})


def test_json_report_matches_sql_for_the_period(cp, rita, report_db, period):
    r = report(rita, "json", **{"from": period["from"], "to": period["to"]})
    assert r.status_code == 200, r.text
    body = r.json()
    sm = body["summary"]
    assert body["database"] == "report_me" and body["instance"] == INST and len(body["points"]) >= 4
    # transactions counted by the samples = what pg_stat_database says happened between the period's ends (the two
    # reading sessions each add a transaction or so at the edges)
    assert abs(sm["transactions"] - period["transactions"]) <= 3 + period["transactions"] * 0.005, \
        (sm["transactions"], period["transactions"])
    assert period["transactions"] > 200
    assert sm["tps"]["peak"] > 50 and 0 < sm["tps"]["mean"] < sm["tps"]["peak"]
    first, last = datetime.fromisoformat(sm["first_sample"]), datetime.fromisoformat(sm["last_sample"])
    assert sm["tps"]["mean"] == pytest.approx(sm["transactions"] / (last - first).total_seconds(), rel=0.01)
    assert sm["connections"]["peak"] >= 3 and sm["connections"]["mean"] >= 0
    assert abs(sm["size"]["last_bytes"] - period["size"]) <= 0.02 * period["size"]
    assert sm["size"]["delta_bytes"] == sm["size"]["last_bytes"] - sm["size"]["first_bytes"]
    assert 0 <= sm["cache_hit_ratio"]["min"] <= sm["cache_hit_ratio"]["mean"] <= 1
    assert sm["quota"]["quota_mb"] == 500
    assert sm["quota"]["peak_percent"] == pytest.approx(100 * sm["size"]["peak_bytes"] / (500 * MIB), rel=1e-6)
    assert sm["failovers"] == 0 and sm["availability"] == 1.0 and sm["instance_samples"] >= 4


def test_csv_html_and_pdf(rita, report_db, period, tmp_path):
    rng = {"from": period["from"], "to": period["to"]}
    points = report(rita, "json", **rng).json()["points"]
    r = report(rita, "csv", **rng)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == len(points) and [row["at"] for row in rows] == [p["at"] for p in points]
    assert max(float(row["tps"]) for row in rows if row["tps"]) > 50
    r = report(rita, "html", **rng)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert r.text.count("<svg") >= 4 and "<script" not in r.text and "http://" not in r.text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "report_me" in r.text
    r = report(rita, "pdf", **rng)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout
    sm = report(rita, "json", **rng).json()["summary"]
    assert "report_me" in text and INST in text
    assert f"{sm['transactions']} (" in text and "Transactions per second" in text and "Availability" in text
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 5000


def test_report_access_and_bad_requests(cp, rita, report_db):
    error_of(report(cp.alice), 404)
    assert report(cp.admin).status_code == 200
    error_of(report(rita, "docx"), 422)
    error_of(report(rita, "json", **{"from": "yesterday"}), 422)
    error_of(report(rita, "json", **{"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}), 422)
    empty = report(rita, "json", **{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}).json()
    assert empty["points"] == [] and empty["summary"]["transactions"] is None
    assert report(rita, "pdf", **{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"}
                  ).content.startswith(b"%PDF")


def test_instance_report_for_admins(cp, rita, report_db, period):
    path = f"/api/v1/instances/{INST}/report"
    error_of(rita.get(path), 403)
    body = cp.admin.get(path, params={"from": period["from"], "to": period["to"]}).json()
    sm = body["summary"]
    assert sm["failovers"] == 0 and sm["availability"] == 1.0
    assert sm["wal"]["bytes"] > 100_000 and sm["wal"]["peak_bytes_per_s"] > 0
    assert sm["connections"]["peak"] >= 3 and sm["connections"]["max_connections"] >= 100
    assert sm["lag"]["peak_bytes"] is not None
    r = cp.admin.get(path, params={"from": period["from"], "to": period["to"], "format": "pdf"})
    assert r.content.startswith(b"%PDF")
    r = cp.admin.get(path, params={"from": period["from"], "to": period["to"], "format": "csv"})
    assert len(list(csv.reader(io.StringIO(r.text)))) == len(body["points"]) + 1


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.got if pred(m)]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no such webhook message; got {self.got}")


def wait_alerts(api, pred, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = api.get("/api/v1/alerts").json()["alerts"]
        if pred(alerts):
            return alerts
        time.sleep(0.3)
    raise AssertionError(f"alerts condition not met: {alerts}")


def quota_alert(alerts, name):
    return [a for a in alerts if a["kind"] == "quota" and a.get("database") == name and a["instance"] == INST]


def test_quota_alert_for_owner_and_admin_and_webhook(cp, rita):
    receiver = Receiver()
    cp.app.config["ALERT_WEBHOOK_URL"] = receiver.url
    try:
        r = rita.post(f"/api/v1/instances/{INST}/databases", json={"name": "tiny_quota", "quota_mb": 20})
        assert r.status_code == 201, r.text
        db = r.json()["database"]
        time.sleep(2)
        assert not quota_alert(rita.get("/api/v1/alerts").json()["alerts"], "tiny_quota")
        with psycopg.connect(db["uri"], password=db["password"], autocommit=True) as c:
            c.execute("create table filler (v text)")
            while c.execute("select pg_database_size(current_database())").fetchone()[0] < 0.84 * 20 * MIB:
                c.execute("insert into filler select repeat('x', 1000) from generate_series(1, 800)")
            size = c.execute("select pg_database_size(current_database())").fetchone()[0]
        assert size < 20 * MIB
        mine = quota_alert(wait_alerts(rita, lambda a: quota_alert(a, "tiny_quota")), "tiny_quota")[0]
        assert mine["severity"] == "warning" and 80 <= mine["percent"] < 100 and mine["quota_mb"] == 20
        assert quota_alert(cp.admin.get("/api/v1/alerts").json()["alerts"], "tiny_quota")
        assert not quota_alert(cp.alice.get("/api/v1/alerts").json()["alerts"], "tiny_quota")
        assert all(a["kind"] == "quota" for a in rita.get("/api/v1/alerts").json()["alerts"])
        started = receiver.wait(lambda m: m["status"] == "firing" and m["alert"]["id"] == mine["id"])
        assert len(started) == 1 and started[0]["alert"]["database"] == "tiny_quota"
        # the alert ends when the data goes, and the webhook hears that once too
        with psycopg.connect(db["uri"], password=db["password"], autocommit=True) as c:
            c.execute("drop table filler")
        receiver.wait(lambda m: m["status"] == "resolved" and m["alert"]["id"] == mine["id"])
        wait_alerts(rita, lambda a: not quota_alert(a, "tiny_quota"))
        time.sleep(2)
        assert len([m for m in receiver.got if m["alert"]["id"] == mine["id"]]) == 2
    finally:
        cp.app.config["ALERT_WEBHOOK_URL"] = ""
        receiver.server.shutdown()

"""Monitoring in a real browser against the session's real pair (the control plane samples every second): the
admin dashboard updates in place without a reload, the database and instance pages chart real pgbench load and
offer reports for the period, and a database near its quota shows on the alerts page and in the nav count."""
from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest

from tests.e2e.helpers import INST
from tests.ui.conftest import login, nav, shot

pytestmark = pytest.mark.slow
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
USER, PASSWORD = "ui-mona", "mona-password-1"


@pytest.fixture(scope="module")
def tenant(cp, pair):
    """A user with a database under pgbench load and a database close to its quota (an empty database is about
    7.5 MB: 8 MB is over 80%)."""
    r = cp.admin.post("/api/v1/users", json={"username": USER, "password": PASSWORD})
    assert r.status_code == 201, r.text
    api = cp.anon.as_user(USER, PASSWORD)
    r = api.post(f"/api/v1/instances/{INST}/databases", json={"name": "mon_load", "quota_mb": 500})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    r = api.post(f"/api/v1/instances/{INST}/databases", json={"name": "mon_full", "quota_mb": 8})
    assert r.status_code == 201, r.text
    env = {**os.environ, "PGPASSWORD": db["password"]}
    subprocess.run([PGBENCH, "-i", "-s", "1", "-q", db["uri"]], env=env, check=True, capture_output=True)
    subprocess.run([PGBENCH, "-T", "3", "-c", "2", "-n", db["uri"]], env=env, check=True, capture_output=True)
    return db


def alerts_link(page):
    """The nav's Alerts link; its name carries the count when alerts fire ("Alerts 2 firing")."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(r"^Alerts\b"))


def svg_of(page, img) -> str:
    """The chart image's SVG, fetched by the page itself (its session cookie)."""
    return page.evaluate("src => fetch(src, {credentials: 'same-origin'}).then(r => r.text())", img.get_attribute("src"))


def wait_chart_line(page, selector: str, timeout_s: float = 20) -> str:
    """Reload until the chart draws a line (the sampler needs two samples after the load for a rate)."""
    for _ in range(int(timeout_s * 2)):
        img = page.locator(selector)
        img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
        svg = svg_of(page, img)
        if "<polyline" in svg:
            return svg
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"{selector}: no line drawn; last SVG {svg[:300]}")


def test_dashboard_updates_in_place_without_a_reload(page, cp, pair):
    login(page, cp.base, "root", "root-password-1")
    nav(page, "Dashboard")
    row = page.locator(f"#dash-instances tr[data-instance='{INST}']").first
    row.wait_for()
    page.evaluate("window.__noReload = 'still here'")
    conns = row.locator("td[data-field=connections]")
    before = int(conns.inner_text().split("/")[0])
    assert row.locator("td").nth(0).inner_text().strip() in ("healthy", "degraded")
    text = page.locator("#dash-instances").inner_text()
    assert "primary" in text and "standby" in text and "%" in text
    assert "localhost" in page.locator("#dash-hosts").inner_text()
    # three more sessions on the primary: the next samples count them, the next poll shows them
    extra = [psycopg.connect(pair["instance"]["uri"], password=pair["admin_password"], connect_timeout=5)
             for _ in range(3)]
    try:
        page.wait_for_function(
            "([inst, n]) => { const c = document.querySelector(`#dash-instances tr[data-instance='${inst}'] "
            "td[data-field=connections]`); return c && parseInt(c.textContent) >= n; }",
            arg=[INST, before + 3], timeout=20_000)
    finally:
        for c in extra:
            c.close()
    assert page.evaluate("window.__noReload") == "still here"
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.locator("#dash-state").inner_text() == "live"
    shot(page, "dashboard")


def test_database_and_instance_pages_chart_pgbench_load(page, cp, tenant):
    login(page, cp.base, USER, PASSWORD)
    page.goto(f"{cp.base}/instances/{INST}/databases/mon_load")
    tps = wait_chart_line(page, "img[data-chart=tps]")
    assert "Transactions per second" in tps and "no data" not in tps
    for chart in ("size", "connections", "cache", "quota"):
        assert "no data" not in svg_of(page, page.locator(f"img[data-chart={chart}]")), chart
    page.get_by_role("link", name="24h").click()
    page.wait_for_url(re.compile(r".*period=24h.*"))
    assert page.locator(".periods a[aria-current=true]").inner_text() == "24h"
    csv = page.evaluate("u => fetch(u).then(r => r.text())",
                        page.locator("#usage-report-csv").get_attribute("href"))
    lines = csv.strip().splitlines()
    assert lines[0].startswith("at,resolution,size_bytes") and len(lines) > 2
    assert any(float(r.split(",")[5] or 0) > 0 for r in lines[1:])  # a tps column above zero
    with page.expect_download() as dl:
        page.locator("#usage-report-pdf").click()
    assert dl.value.suggested_filename.endswith(".pdf")
    shot(page, "database-charts")

    page.context.clear_cookies()
    login(page, cp.base, "root", "root-password-1")
    page.goto(f"{cp.base}/instances/{INST}")
    itps = wait_chart_line(page, "img[data-chart=tps]")
    assert "all databases" in itps
    for chart in ("cpu", "memory", "disk"):
        svg = svg_of(page, page.locator(f"img[data-chart={chart}]"))
        assert svg.count("<polyline") >= 2, chart  # one line per member
    shot(page, "instance-charts")


def test_top_statements_page_shows_the_load_and_resets(page, cp, tenant):
    login(page, cp.base, USER, PASSWORD)
    page.goto(f"{cp.base}/instances/{INST}/databases/mon_load")
    page.get_by_role("link", name="Top statements").click()
    page.wait_for_url(re.compile(r".*/databases/mon_load/statements$"))
    table = page.locator("table.statements")
    assert "UPDATE pgbench_accounts SET abalance" in table.inner_text()  # pgbench's own statement, normalized
    page.get_by_role("link", name="calls").click()
    page.wait_for_url(re.compile(r".*order=calls$"))
    assert page.get_by_role("link", name="calls").get_attribute("aria-current") == "page"
    shot(page, "database-statements", phone=True)
    page.get_by_role("button", name="Reset the statement statistics of mon_load").click()
    page.wait_for_url(re.compile(r".*/databases/mon_load/statements$"))
    assert "Statement statistics reset." in page.inner_text("body")
    assert "pgbench_accounts" not in page.inner_text("body")
    # the admin's view of the instance (not offered to the tenant: 403)
    assert page.request.get(f"{cp.base}/instances/{INST}/statements").status == 403
    page.context.clear_cookies()
    login(page, cp.base, "root", "root-password-1")
    page.goto(f"{cp.base}/instances/{INST}")
    page.get_by_role("link", name="Top statements").click()
    page.wait_for_url(re.compile(rf".*/instances/{INST}/statements$"))
    assert page.locator("table.statements th", has_text="Database").count() == 1


def test_alerts_page_shows_the_quota_alert(page, cp, tenant):
    login(page, cp.base, USER, PASSWORD)
    alert_id = f"quota/{INST}/mon_full"
    for _ in range(30):  # the worker evaluates alerts every sample (1 s here)
        alerts_link(page).click()
        page.wait_for_url(re.compile(r".*/alerts$"))
        if page.locator(f"tr[data-alert='{alert_id}']").count() and page.locator("#nav-alert-count").count():
            break
        page.wait_for_timeout(500)
    row = page.locator(f"tr[data-alert='{alert_id}']")
    assert "mon_full" in row.inner_text() and "quota" in row.inner_text()
    assert int(page.locator("#nav-alert-count").inner_text()) >= 1
    assert f"quota/{INST}/mon_load" not in page.content()
    shot(page, "alerts")
    page.context.clear_cookies()
    login(page, cp.base, "alice", "alice-password-1")  # another user: not hers
    alerts_link(page).click()
    assert page.locator(f"tr[data-alert='{alert_id}']").count() == 0
    for path in ("charts/tps.svg", "report?format=csv"):  # nor are the charts and reports of mon_load
        assert page.request.get(f"{cp.base}/instances/{INST}/databases/mon_load/{path}").status == 404, path
    assert page.request.get(f"{cp.base}/dashboard/data").status == 403
    page.context.clear_cookies()
    login(page, cp.base, "root", "root-password-1")  # an admin sees every alert
    alerts_link(page).click()
    assert page.locator(f"tr[data-alert='{alert_id}']").count() == 1

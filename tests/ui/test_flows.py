"""The two long flows in a real browser against real instances: an administrator creates an instance and watches
its job; a database user creates a database on the session's pair, connects with what the page shows, changes
the password and deletes the database."""
from __future__ import annotations

import os
import re

import psycopg
import pytest

from tests.ui.conftest import login, nav, shot, web_session

UI_INST = os.environ.get("PGAAS_UI_INSTANCE", "ui-inst")


@pytest.mark.slow
def test_admin_creates_watches_and_deletes_an_instance(page, cp):
    login(page, cp.base, "root", "root-password-1")
    page.get_by_role("link", name="Create an instance").first.click()
    page.get_by_label("Instance name").fill("Not_valid")
    page.get_by_role("button", name="Create instance").click()
    assert "name must be 3 to 40 characters" in page.locator(".field.has-error .error").inner_text()
    page.get_by_label("Instance name").fill(UI_INST)
    page.get_by_label("Synchronous replication").check()
    shot(page, "instance-new")
    page.get_by_role("button", name="Create instance").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    job_url = page.url
    # the admin role's password, shown once on the job page
    assert len(page.locator("#admin-password").input_value()) >= 20
    rows_at_load = page.locator("#job-events tr").count()
    page.wait_for_selector("#job-status[data-status=running]", timeout=60_000)
    shot(page, "job-running")
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=240_000)
    assert page.locator("#job-events tr").count() > rows_at_load  # events arrived while the page was open
    assert page.locator("#job-failure").is_hidden()
    shot(page, "job-succeeded")
    # reloading does not show the password again
    page.goto(job_url)
    assert page.locator("#admin-password").count() == 0

    page.get_by_role("link", name=f"Open instance {UI_INST}").click()
    assert page.locator("#instance-status").inner_text().strip() == "available"
    members = page.locator("section[aria-labelledby=members-title] tbody tr")
    assert members.count() == 2
    page.wait_for_timeout(500)
    page.reload()  # the standby reports sync once Patroni's next loop ran
    text = page.locator("section[aria-labelledby=members-title]").inner_text()
    assert "primary" in text and "standby" in text and "running" in text
    shot(page, "instance", phone=True)

    nav(page, "Instances")
    row = page.get_by_role("row", name=re.compile(UI_INST))
    assert "available" in row.inner_text() and "same host" in row.inner_text()
    shot(page, "instances", phone=True)

    # delete behind a typed confirmation
    page.get_by_role("link", name=UI_INST).click()
    page.get_by_label("Type the name to confirm").fill("something-else")
    page.get_by_role("button", name="Delete instance").click()
    assert f"Type {UI_INST} exactly" in page.locator(".field.has-error .error").inner_text()
    page.get_by_label("Type the name to confirm").fill(UI_INST)
    page.get_by_role("button", name="Delete instance").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=180_000)
    nav(page, "Instances")
    assert page.get_by_role("row", name=re.compile(UI_INST)).count() == 0


@pytest.mark.slow
def test_user_creates_connects_rotates_and_deletes_a_database(page, cp, pair):
    from tests.e2e.helpers import INST
    from webapp.services import accounts

    with cp.app.extensions["pgaas"].store.session() as s:
        accounts.create_user(s, "ui-dana", "dana-password-1")
        accounts.create_user(s, "ui-eve", "eve-password-1")
    login(page, cp.base, "ui-dana", "dana-password-1")
    page.get_by_role("link", name="Create a database").first.click()
    page.get_by_label("Instance").select_option(INST)
    page.get_by_label("Database name").fill("select")
    page.get_by_label("Quota (MB)").fill("100")
    page.get_by_role("button", name="Create database").click()
    assert "is reserved" in page.locator(".field.has-error .error").inner_text()
    assert page.get_by_label("Quota (MB)").input_value() == "100"  # input kept
    shot(page, "database-new-error")
    page.get_by_label("Database name").fill("ui_shop")
    page.get_by_label("Connection limit").fill("5")
    page.get_by_role("button", name="Create database").click()
    page.wait_for_url(re.compile(rf".*/instances/{INST}/databases/ui_shop$"))
    password = page.locator("#password").input_value()
    uri = page.locator("#uri").input_value()
    assert uri.startswith("postgresql://ui_shop@") and "target_session_attrs=read-write" in uri
    assert password not in uri
    shot(page, "database-created", phone=True)
    with psycopg.connect(uri, password=password, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    # the password is gone once the page is loaded again
    page.reload()
    assert page.locator("#password").count() == 0 and password not in page.content()

    # another user gets a 404 for this page; so does an anonymous one (a redirect to log in)
    eve = web_session(cp.base, "ui-eve", "eve-password-1")
    assert eve.get(page.url, timeout=30).status_code == 404

    # limits and parameters
    page.get_by_label("Parameters", exact=True).fill("work_mem = 16MB\nnot_a_setting = 1")
    page.get_by_role("button", name="Save").click()
    error = page.locator(".field.has-error .error").inner_text()
    assert "parameter 'not_a_setting' cannot be set per database" in error
    page.get_by_label("Parameters", exact=True).fill("work_mem = 16MB")
    page.get_by_label("Quota (MB)").fill("200")
    page.get_by_role("button", name="Save").click()
    assert "Settings saved." in page.content()
    assert page.get_by_label("Quota (MB)").input_value() == "200"
    with psycopg.connect(uri, password=password, connect_timeout=5) as conn:
        assert conn.execute("SHOW work_mem").fetchone()[0] == "16MB"

    # change the password: the new one is shown once and works, the old one does not
    page.get_by_role("button", name="Change password").click()
    new_password = page.locator("#password").input_value()
    assert new_password and new_password != password
    assert "New password" in page.locator("#reveal-title").inner_text()
    with psycopg.connect(uri, password=new_password, connect_timeout=5) as conn:
        assert conn.execute("SELECT x FROM t").fetchone()[0] == 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, password=password, connect_timeout=5).close()

    nav(page, "My databases")
    row = page.get_by_role("row", name=re.compile("ui_shop"))
    assert INST in row.inner_text() and "200 MB" in row.inner_text()
    shot(page, "databases", phone=True)

    # delete behind a typed confirmation
    page.get_by_role("link", name="ui_shop").click()
    page.get_by_label("Type the name to confirm").fill("ui_sho")
    page.get_by_role("button", name="Delete database").click()
    assert "Type ui_shop exactly" in page.locator(".field.has-error .error").inner_text()
    shot(page, "database")
    page.get_by_label("Type the name to confirm").fill("ui_shop")
    page.get_by_role("button", name="Delete database").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))  # a job: the final dump, then the drop
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, password=new_password, connect_timeout=5).close()

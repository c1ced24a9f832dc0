"""The rest of what the API lets a person do, in a real browser against the session's control plane and pair: API
tokens, instance settings (through a canceled job and its retry), restore of a deleted database, deletion of a
user whose databases go to another user, and the advanced create forms."""
from __future__ import annotations

import re

import psycopg
import pytest
import requests

from tests.ui.conftest import login, nav, on_job_page, shot

PAIR_ADMIN_PASSWORD = "Admin-password-123"  # tests/conftest.py's pair fixture


def _user(cp, username: str, password: str, is_admin: bool = False) -> None:
    from webapp.services import accounts

    with cp.app.extensions["pgaas"].store.session() as s:
        accounts.create_user(s, username, password, is_admin=is_admin)


def assert_labelled(page) -> None:
    """Every form control on the page has a label (or an aria-label) that a screen reader announces."""
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label')
                     && !e.getAttribute('aria-labelledby'))
        .map(e => e.outerHTML.slice(0, 120))""")
    assert not unlabelled, unlabelled


def focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")


def test_api_tokens_create_use_and_revoke(page, cp):
    _user(cp, "ui-a-tess", "tess-password-1")
    login(page, cp.base, "ui-a-tess", "tess-password-1")
    page.get_by_role("link", name="API tokens").click()
    assert "You have no tokens yet." in page.content()
    page.get_by_role("button", name="Create token").click()
    assert page.locator("#name-error").inner_text() == "This field is required."
    page.get_by_label("Token name").fill("ci-deploy")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").input_value()
    assert token.startswith("pgaas_")
    shot(page, "tokens-created", phone=True)
    row = page.get_by_role("row", name=re.compile("ci-deploy"))
    assert token[:12] in row.inner_text() and "never" in row.inner_text()

    api = f"{cp.base}/api/v1/databases"
    r = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and r.json()["databases"] == []
    page.reload()  # shown once: gone now; the use is recorded
    assert page.locator("#new-token").count() == 0 and token not in page.content()
    row = page.get_by_role("row", name=re.compile("ci-deploy"))
    assert "never" not in row.inner_text()

    page.get_by_role("button", name="Revoke token ci-deploy").click()
    assert "Token ci-deploy was revoked" in page.content()
    assert "revoked" in page.get_by_role("row", name=re.compile("ci-deploy")).inner_text()
    r = requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert_labelled(page)

    # the keyboard alone: skip link, then Tab to the form, type, Enter
    page.keyboard.press("Tab")
    assert focused(page) == "Skip to content"
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("Tab")
        if focused(page) == "name":
            break
    assert focused(page) == "name"
    page.keyboard.type("laptop")
    page.keyboard.press("Enter")
    page.wait_for_selector("#new-token")
    assert page.locator("#reveal-title").inner_text() == "Token laptop was created"
    shot(page, "tokens")


def test_cancel_and_retry_from_the_job_page_before_a_worker_runs(page, live):
    """No worker here: a job stays queued, so cancel ends it at once and a retry queues a new one."""
    login(page, live.base, "root", "root-password-1")
    page.goto(live.base + "/instances/new")
    page.get_by_label("Instance name").fill("queued-only")
    page.get_by_role("button", name="Create instance").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    first = page.url
    assert page.locator("#job-status").get_attribute("data-status") == "queued"
    assert page.locator("#job-retry").is_hidden()
    page.get_by_role("button", name="Cancel job").click()
    assert page.locator("#job-status").get_attribute("data-status") == "canceled"
    assert "canceled by root before it started" in page.locator("#job-failure").inner_text()
    assert live.admin.get("/api/v1/instances/queued-only").json()["status"] == "failed"
    page.get_by_role("button", name="Retry job").click()
    assert on_job_page(page) != first and page.locator("#job-status").get_attribute("data-status") == "queued"
    assert live.admin.get("/api/v1/instances/queued-only").json()["status"] == "creating"
    # the canceled job is no longer the newest: no retry offered there
    page.goto(first)
    assert page.locator("#job-retry").is_hidden()
    page.go_back()
    page.get_by_role("button", name="Cancel job").click()
    assert page.locator("#job-status").get_attribute("data-status") == "canceled"


def test_advanced_create_forms_show_errors_beside_fields(page, cp):
    login(page, cp.base, "root", "root-password-1")
    page.goto(cp.base + "/instances/new")
    page.get_by_label("Instance name").fill("ui-a-never")
    page.get_by_label("Standbys").fill("5")
    page.get_by_label("Memory (MB)").fill("100")
    page.get_by_label("CPUs").fill("0.5")
    page.get_by_label("Administrator password").fill("short")
    page.get_by_role("button", name="Create instance").click()
    errors = {f: page.locator(f"#{f}-error").inner_text() for f in ("replicas", "memory_mb", "admin_password")}
    assert "between 1 and 3" in errors["replicas"] and "256" in errors["memory_mb"], errors
    assert "12" in errors["admin_password"], errors
    assert page.get_by_label("CPUs").input_value() == "0.5"  # the input is kept
    assert_labelled(page)
    shot(page, "instance-new-errors", phone=True)
    assert cp.admin.get("/api/v1/instances/ui-a-never").status_code == 404


@pytest.mark.slow
def test_settings_through_a_canceled_job_and_its_retry(page, cp, pair):
    from tests.e2e.helpers import INST

    login(page, cp.base, "root", "root-password-1")
    page.goto(f"{cp.base}/instances/{INST}")
    box = page.get_by_label("PostgreSQL settings")
    box.fill("log_min_duration_statement = 12 parsecs")
    page.get_by_role("button", name="Apply settings").click()
    assert "unknown unit 'parsecs'" in page.locator("#set-settings-error").inner_text()
    assert box.input_value() == "log_min_duration_statement = 12 parsecs"  # kept for fixing
    box.fill("log_min_duration_statement = 250ms")
    page.get_by_role("button", name="Apply settings").click()
    first = on_job_page(page)
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_selector("#job-status[data-status=canceled]", timeout=60_000)
    assert page.locator("#job-failure").is_visible()
    assert "This job was canceled" in page.locator("#job-failure").inner_text()
    assert page.locator("#job-cancel").is_hidden()
    assert_labelled(page)
    shot(page, "job-canceled", phone=True)

    page.get_by_role("button", name="Retry job").click()
    assert on_job_page(page) != first
    assert f"A retry of job {first.rsplit('/', 1)[1]}." in page.locator("main").inner_text()
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    assert page.locator("#job-retry").is_hidden() and page.locator("#job-failure").is_hidden()
    assert page.locator("#job-settings").inner_text() == "log_min_duration_statement = 250ms"

    uri = pair["instance"]["uri"]
    with psycopg.connect(uri, password=PAIR_ADMIN_PASSWORD, connect_timeout=5) as conn:
        assert conn.execute("SHOW log_min_duration_statement").fetchone()[0] == "250ms"
    page.get_by_role("link", name=f"Open instance {INST}").click()
    row = page.locator("#settings-table").get_by_role("row", name=re.compile("log_min_duration_statement"))
    assert row.inner_text().count("250") >= 3  # requested, and on both members
    assert page.get_by_label("PostgreSQL settings").input_value() == "log_min_duration_statement = 250ms"
    assert_labelled(page)
    page.locator("#settings").scroll_into_view_if_needed()
    shot(page, "instance-settings", phone=True)
    # the old, canceled job is not the newest any more: no retry offered
    page.goto(first)
    assert page.locator("#job-retry").is_hidden()


@pytest.mark.slow
def test_restore_brings_the_rows_back(page, cp, pair):
    from tests.e2e.helpers import INST

    _user(cp, "ui-a-rita", "rita-password-1")
    login(page, cp.base, "ui-a-rita", "rita-password-1")
    page.goto(cp.base + "/databases/new")
    page.get_by_label("Instance").select_option(INST)
    page.get_by_label("Database name").fill("ui_a_keep")
    page.get_by_label("Parameters").fill("work_mem = 8MB\nshared_buffers = 1GB")
    page.get_by_role("button", name="Create database").click()
    assert "cannot be set per database" in page.locator("#parameters-error").inner_text()
    assert cp.admin.get(f"/api/v1/instances/{INST}/databases/ui_a_keep").status_code == 404  # all or nothing
    page.get_by_label("Parameters").fill("work_mem = 8MB")
    page.get_by_role("button", name="Create database").click()
    page.wait_for_url(re.compile(r".*/databases/ui_a_keep$"))
    uri, password = page.locator("#uri").input_value(), page.locator("#password").input_value()
    with psycopg.connect(uri, password=password, connect_timeout=5) as conn:
        assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB"
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 500) AS x")

    page.get_by_label("Type the name to confirm").fill("ui_a_keep")
    page.get_by_role("button", name="Delete database").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))  # a job: the final dump, then the drop
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    nav(page, "My databases")
    row = page.locator("#restorable").get_by_role("row", name=re.compile("ui_a_keep"))
    assert INST in row.inner_text() and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row.inner_text())
    assert_labelled(page)
    shot(page, "databases-restorable", phone=True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, password=password, connect_timeout=5).close()

    page.get_by_role("button", name=f"Restore ui_a_keep on {INST}").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))  # created again now, restored by the job
    assert page.locator("#reveal-title").inner_text() == "Password of ui_a_keep"
    new_password = page.locator("#password").input_value()
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    assert new_password and new_password != password
    with psycopg.connect(uri, password=new_password, connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*), sum(x) FROM t").fetchone() == (500, 125250)
        assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB"
    nav(page, "My databases")
    assert page.locator("#restorable").count() == 0  # used: nothing left to restore
    cp.admin.delete(f"/api/v1/instances/{INST}/databases/ui_a_keep?final_dump=false")


@pytest.mark.slow
def test_delete_a_user_and_transfer_their_databases(page, cp, pair):
    from tests.e2e.helpers import INST

    _user(cp, "ui-a-bob", "bob-password-1")
    _user(cp, "ui-a-heir", "heir-password-1")
    bob = cp.anon.as_user("ui-a-bob", "bob-password-1")
    r = bob.post(f"/api/v1/instances/{INST}/databases", json={"name": "ui_a_bobs"})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5) as conn:
        conn.execute("CREATE TABLE t AS SELECT 42 AS x")

    login(page, cp.base, "root", "root-password-1")
    nav(page, "Users")
    page.get_by_role("link", name="ui-a-bob", exact=True).click()
    assert "ui_a_bobs" in page.locator("#user-databases").inner_text()
    page.get_by_label("Type the username to confirm").fill("ui-a-bob")
    page.get_by_role("button", name="Delete user").click()
    assert "Say what happens to their databases." in page.content()  # no choice, nothing deleted
    page.get_by_label("Transfer them to another user").check()
    page.get_by_role("button", name="Delete user").click()
    assert "Choose who gets their databases." in page.locator("#transfer_to-error").inner_text()
    page.get_by_label("New owner").select_option("ui-a-heir")
    page.get_by_label("Type the username to confirm").fill("ui-a-bo")
    page.get_by_role("button", name="Delete user").click()
    assert "Type ui-a-bob exactly" in page.locator("#confirm-error").inner_text()
    assert_labelled(page)
    shot(page, "user-delete", phone=True)
    assert bob.get("/api/v1/databases").status_code == 200  # still there

    page.get_by_label("Type the username to confirm").fill("ui-a-bob")
    page.get_by_role("button", name="Delete user").click()
    page.wait_for_url(re.compile(r".*/users$"))
    assert "User ui-a-bob was deleted; databases transferred to ui-a-heir." in page.content()
    assert page.get_by_role("row", name=re.compile(r"ui-a-bob\b")).count() == 0
    assert bob.get("/api/v1/databases").status_code == 401  # the token went with the user
    heir = cp.anon.as_user("ui-a-heir", "heir-password-1")
    mine = heir.get("/api/v1/databases").json()["databases"]
    assert [d["name"] for d in mine] == ["ui_a_bobs"] and mine[0]["owner"] == "ui-a-heir"
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=5) as conn:
        assert conn.execute("SELECT x FROM t").fetchone()[0] == 42  # the data is untouched

    # the other choice: the heir goes, and their databases with them (said explicitly)
    page.get_by_role("link", name="ui-a-heir", exact=True).click()
    page.get_by_label("Delete them (no final dump is kept)").check()
    page.get_by_label("Type the username to confirm").fill("ui-a-heir")
    page.get_by_role("button", name="Delete user").click()
    page.wait_for_url(re.compile(r".*/users$"))
    assert "User ui-a-heir was deleted; 1 database(s) deleted." in page.content()
    assert cp.admin.get(f"/api/v1/instances/{INST}/databases/ui_a_bobs").status_code == 404
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db["uri"], password=db["password"], connect_timeout=5).close()

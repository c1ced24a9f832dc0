"""Capacity allowances in a real browser (issue 12, part 3): an admin sets a user's allowance on their page (a
bad value comes back beside its field), the users list shows it, and the user sees allowance, used and left on
"My databases". No container is needed."""
from __future__ import annotations

import re

from tests.ui.conftest import csrf_token, login, shot, web_session


def test_admin_sets_an_allowance_and_the_user_sees_what_is_left(page, live):
    login(page, live.base, "root", "root-password-1")
    page.goto(live.base + "/users/alice")
    facts = page.locator("#capacity-facts")
    assert "10240 MB (default)" in facts.inner_text() and "of at most 10 (default)" in facts.inner_text()
    page.get_by_label("Storage allowance (MB)").fill("-5")
    page.get_by_label("Maximum databases").fill("3")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save allowance").click()
    assert answer.value.status == 422
    assert "between 0 and 1073741824" in page.locator("#allow-storage_allowance_mb-error").inner_text()
    assert page.get_by_label("Maximum databases").input_value() == "3"  # what was typed stays
    page.get_by_label("Storage allowance (MB)").fill("2048")
    page.get_by_role("button", name="Save allowance").click()
    page.wait_for_url(re.compile(r".*/users/alice$"))
    assert "The allowance of alice was saved." in page.content()
    assert "2048 MB" in facts.inner_text() and "of at most 3" in facts.inner_text()
    assert page.locator("#capacity-left").inner_text().startswith("2048 MB")
    shot(page, "user-capacity")
    page.goto(live.base + "/users")
    row = page.get_by_role("row").filter(has_text="alice")
    assert "0 / 3" in row.inner_text() and "2048 MB" in row.inner_text()

    events = live.admin.get("/api/v1/admin/audit?object=alice").json()["events"]
    assert [e["detail"] for e in events if e["action"] == "user.allowance"] == [
        "storage_allowance_mb=2048, max_databases=3"]

    page.context.clear_cookies()
    login(page, live.base, "alice", "alice-password-1")
    page.goto(live.base + "/databases")
    mine = page.locator("#capacity").inner_text()
    assert "2048 MB" in mine and "Left" in mine and "0 of at most 3" in mine
    shot(page, "my-databases-capacity", phone=True)


def test_the_allowance_form_needs_its_csrf_token_and_an_admin(live):
    admin = web_session(live.base, "root", "root-password-1")
    r = admin.post(live.base + "/users/alice/allowance", data={"allow-storage_allowance_mb": "1"}, timeout=30)
    assert r.status_code == 400  # no CSRF token: nothing changed
    tenant = web_session(live.base, "alice", "alice-password-1")
    token = csrf_token(tenant.get(live.base + "/databases", timeout=30).text)
    r = tenant.post(live.base + "/users/alice/allowance",
                    data={"csrf_token": token, "allow-csrf_token": token, "allow-storage_allowance_mb": "999999"},
                    timeout=30)
    assert r.status_code == 403
    alice = live.admin.get("/api/v1/users/alice").json()["user"]
    assert alice["capacity"]["storage_allowance_is_default"] and alice["storage_allowance_mb"] == 10240

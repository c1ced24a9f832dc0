"""The front door in a real browser (issue 12, part 4): the log in form under a guessing flood, who sees an
instance (the control on its page), and tokens with a scope and an expiry. No container is needed."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from tests.conftest import Live, make_app
from tests.ui.conftest import login, shot, web_session


@pytest.fixture
def guarded(database_url, tmp_path):
    srv = Live(make_app(database_url, tmp_path / "instance", LOGIN_LIMIT_PER_USERNAME="3 per minute"), workers=0)
    yield srv
    srv.close()


def test_a_login_flood_gets_the_form_back_saying_when_to_try_again(page, guarded):
    page.goto(guarded.base + "/login")
    for i in range(3):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(f"guess-number-{i}")
        page.get_by_role("button", name="Log in").click()
        assert page.get_by_role("alert").inner_text().strip() == "Wrong username or password."
    page.get_by_label("Password").fill("alice-password-1")  # even the right one waits now
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 429 and 1 <= int(answer.value.headers["retry-after"]) <= 60
    assert re.fullmatch(r"Too many failed logins for this username\. Try again in \d+ seconds\.",
                        page.get_by_role("alert").inner_text().strip())
    assert page.get_by_label("Username").input_value() == "alice"
    shot(page, "login-rate-limited", phone=True)
    # someone else logs in from the same browser meanwhile
    login(page, guarded.base, "root", "root-password-1")


def _choices(srv, username: str, password: str) -> list[str]:
    html = web_session(srv.base, username, password).get(srv.base + "/databases/new", timeout=30).text
    return re.findall(r'<option[^>]*value="([^"]+)"', html)


def test_admin_restricts_an_instance_on_its_page(page, live):
    from webapp.services import accounts
    from webapp.store.models import Instance

    assert live.admin.post("/api/v1/instances", json={"name": "main"}).status_code == 202
    with live.app.extensions["pgaas"].store.session() as s:
        s.scalar(select(Instance).where(Instance.name == "main")).status = "available"
        accounts.create_user(s, "bob", "bob-password-1")
    assert _choices(live, "alice", "alice-password-1") == ["main"]  # open to every user: the default

    login(page, live.base, "root", "root-password-1")
    page.goto(live.base + "/instances/main")
    state = page.locator("#access-state")
    assert state.inner_text().startswith("Open to every user.")
    assert page.get_by_label("Every user may see it").is_checked()
    page.get_by_label("Every user may see it").uncheck()
    page.get_by_label("Else only these users").fill("bob, nobody")
    page.get_by_role("button", name="Save who sees it").click()
    assert "no such user(s): nobody" in page.locator(".field.has-error .error").inner_text()
    page.get_by_label("Else only these users").fill("bob")
    page.get_by_role("button", name="Save who sees it").click()
    assert "Instance main is now restricted to: bob." in page.content()
    assert page.locator("#access-state").inner_text().startswith("Restricted: administrators and bob.")
    shot(page, "instance-access")

    assert _choices(live, "alice", "alice-password-1") == []  # she cannot even pick it for a database
    assert _choices(live, "bob", "bob-password-1") == ["main"]
    assert live.alice.get("/api/v1/instances/main").status_code == 404

    page.get_by_label("Every user may see it").check()
    page.get_by_role("button", name="Save who sees it").click()
    assert "Instance main is now open to every user." in page.content()
    assert _choices(live, "alice", "alice-password-1") == ["main"]


def test_a_read_token_from_the_tokens_page(page, live):
    login(page, live.base, "alice", "alice-password-1")
    page.goto(live.base + "/account/tokens")
    page.get_by_label("Token name").fill("prometheus")
    page.get_by_label("Scope").select_option("read")
    page.get_by_label("Expires in (days)").fill("400")
    page.get_by_role("button", name="Create token").click()
    assert "Number must be between 1 and 365." in page.locator("#expires_in_days-error").inner_text()
    page.get_by_label("Expires in (days)").fill("7")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").input_value()
    row = page.get_by_role("row", name=re.compile("prometheus")).inner_text()
    assert "read" in row and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row)
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(live.base + "/api/v1/databases", headers=headers, timeout=30).status_code == 200
    r = requests.post(live.base + "/api/v1/instances/x/databases", json={"name": "shop"}, headers=headers, timeout=30)
    assert r.status_code == 403 and "scope is read" in r.json()["error"]["message"]
    shot(page, "tokens-scope")

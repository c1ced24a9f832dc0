"""Pages that need no instance: log in and out, CSRF, admin-only pages, users, audit log, error pages."""
from __future__ import annotations

import re

from tests.ui.conftest import csrf_token, login, shot, web_session


def test_login_logout_and_wrong_password(page, live):
    page.goto(live.base + "/databases")
    page.wait_for_url(re.compile(r".*/login\?next=.*"))
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().strip() == "Wrong username or password."
    assert page.get_by_label("Username").input_value() == "alice"  # the input is kept
    shot(page, "login-error", phone=True)
    page.get_by_label("Password").fill("alice-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(live.base + "/databases")  # back where she wanted to go
    assert page.get_by_role("heading", level=1).inner_text() == "My databases"
    assert "You have no databases yet" in page.content()
    shot(page, "databases-empty")
    # a database user sees no admin pages: no link, and 403 in the site's look when typed
    assert page.get_by_role("link", name="Instances").count() == 0
    resp = page.goto(live.base + "/instances")
    assert resp.status == 403 and page.get_by_role("heading", level=1).inner_text() == "Forbidden"
    shot(page, "error-403")
    resp = page.goto(live.base + "/nowhere")
    assert resp.status == 404 and "Not Found" in page.get_by_role("heading", level=1).inner_text()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(live.base + "/login")
    assert "You are logged out." in page.content()
    page.goto(live.base + "/databases")
    page.wait_for_url(re.compile(r".*/login\?next=.*"))


def test_session_cookie_flags(live):
    s = web_session(live.base, "alice", "alice-password-1")
    cookie = next(c for c in s.cookies if c.name == "session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "Lax"
    r = s.get(live.base + "/databases", timeout=30)
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "no-store" and "default-src 'self'" in r.headers["Content-Security-Policy"]


def test_form_without_csrf_token_is_refused(live):
    s = web_session(live.base, "root", "root-password-1")
    r = s.post(live.base + "/users", data={"username": "mallory", "password": "mallory-pass-1"}, timeout=30)
    assert r.status_code == 400 and "Reload the page" in r.text
    r = s.post(live.base + "/users", data={"username": "mallory", "password": "mallory-pass-1",
                                           "csrf_token": "forged"}, timeout=30)
    assert r.status_code == 400
    assert "mallory" not in s.get(live.base + "/users", timeout=30).text
    # the same post with the page's token works (the token, not the cookie, was what was missing)
    token = csrf_token(s.get(live.base + "/users", timeout=30).text)
    r = s.post(live.base + "/users", data={"username": "mallory", "password": "mallory-pass-1",
                                           "csrf_token": token}, timeout=30)
    assert r.status_code == 200 and "mallory" in r.text
    # log out is a form too
    assert s.post(live.base + "/logout", timeout=30, allow_redirects=False).status_code == 400
    # the JSON API stays CSRF-exempt (Bearer tokens)
    assert live.admin.get("/api/v1/users").status_code == 200


def test_admin_users_audit_and_own_password(page, live):
    login(page, live.base, "root", "root-password-1")
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("Bad Name")
    page.get_by_role("button", name="Create user").click()
    assert "username must be" in page.locator(".field.has-error .error").inner_text()
    assert page.get_by_label("Username").input_value() == "Bad Name"
    page.get_by_label("Username").fill("carol")
    page.get_by_role("button", name="Create user").click()
    generated = page.locator("#new-user-password").input_value()
    assert len(generated) >= 16
    shot(page, "users", phone=True)
    assert page.get_by_role("row", name=re.compile(r"carol\s+database user")).count() == 1

    page.get_by_role("link", name="Audit log").click()
    assert page.get_by_role("row", name=re.compile(r"root\s+user\.create\s+user carol")).count() == 1
    page.get_by_label("Actor").fill("nobody")
    page.get_by_role("button", name="Filter").click()
    assert "No events." in page.content()
    page.get_by_label("Actor").fill("")
    page.get_by_role("button", name="Filter").click()
    shot(page, "audit")

    # carol logs in with the generated password and changes it; the old one stops working
    page.get_by_role("button", name="Log out").click()
    login(page, live.base, "carol", generated)
    page.get_by_role("link", name="carol").click()
    page.get_by_label("Current password").fill("wrong-one-1")
    page.get_by_label("New password", exact=True).fill("carol-new-pass-1")
    page.get_by_label("New password again").fill("carol-new-pass-1")
    page.get_by_role("button", name="Change password").click()
    assert "This is not your current password." in page.content()
    shot(page, "account-password")
    page.get_by_label("Current password").fill(generated)
    page.get_by_label("New password", exact=True).fill("carol-new-pass-1")
    page.get_by_label("New password again").fill("carol-new-pass-1")
    page.get_by_role("button", name="Change password").click()
    assert "Your password was changed" in page.content()
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(generated)
    page.get_by_role("button", name="Log in").click()
    assert "Wrong username or password." in page.content()
    login(page, live.base, "carol", "carol-new-pass-1")


def test_password_change_ends_other_sessions(live):
    other = web_session(live.base, "alice", "alice-password-1")
    me = web_session(live.base, "alice", "alice-password-1")
    token = csrf_token(me.get(live.base + "/account/password", timeout=30).text)
    r = me.post(live.base + "/account/password", timeout=30, data={
        "csrf_token": token, "current_password": "alice-password-1", "new_password": "alice-password-2",
        "confirm": "alice-password-2"})
    assert r.status_code == 200 and r.url.endswith("/databases")
    assert me.get(live.base + "/databases", timeout=30).status_code == 200
    r = other.get(live.base + "/databases", timeout=30, allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_a_pruned_job_page_says_its_events_were_pruned(live):
    from tests.api.test_job_retention import prune_a_canceled_job

    old, new = prune_a_canceled_job(live)
    s = web_session(live.base, "root", "root-password-1")
    page = s.get(f"{live.base}/jobs/{old}", timeout=30)
    assert page.status_code == 200
    assert "events and artifacts were pruned" in page.text and "canceled by root" in page.text
    page = s.get(f"{live.base}/jobs/{new}", timeout=30)
    assert page.status_code == 200 and "were pruned" not in page.text

"""Browser tests: Playwright driving Debian's chromium (never a downloaded browser), against the live server with
real workers and real instances. Screenshots of the pages land in test-artifacts/ui/ (gitignored)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    assert Path(CHROMIUM).exists(), "chromium is missing: run scripts/setup.sh --test (Debian's chromium package)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(15_000)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # console errors (CSP violations among them), but not the HTTP statuses the tests ask for (403, 404...)
    pg.on("console", lambda msg: errors.append(msg.text)
          if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    yield pg
    ctx.close()
    assert not errors, f"JavaScript errors or CSP violations on the pages: {errors}"


def shot(page, name: str, full_page: bool = True, phone: bool = False) -> None:
    """Save a screenshot of the page (and, with phone=True, one at a phone's width too)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)
    if phone:
        size = page.viewport_size
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=full_page)
        page.set_viewport_size(size)


def login(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r".*/(instances|databases)$"))


def on_job_page(page, timeout: float = 15_000) -> str:
    """Wait for a form's submit to land on its job's page; when it did not, fail with what the page said instead
    (its alerts: a field's error, the form's "busy with job N")."""
    try:
        page.wait_for_url(re.compile(r".*/jobs/\d+$"), timeout=timeout)
    except Exception:  # playwright's TimeoutError: say why, not only that the address did not change
        alerts = [a.inner_text() for a in page.get_by_role("alert").all()]
        raise AssertionError(f"no job page: still at {page.url}, alerts {alerts}") from None
    return page.url


def nav(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def web_session(base: str, username: str, password: str) -> requests.Session:
    """A requests session logged in through the login form (CSRF token included), like a browser."""
    s = requests.Session()
    token = csrf_token(s.get(base + "/login", timeout=30).text)
    r = s.post(base + "/login", data={"csrf_token": token, "username": username, "password": password},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    return s


def csrf_token(html: str) -> str:
    m = re.search(r'name="(?:\w+-)?csrf_token" type="hidden" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)

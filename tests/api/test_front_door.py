"""The front door (issue 12, parts 4 and 5), attacked over real HTTP on SQLite and PostgreSQL metadata: password
guessing floods, forged X-Forwarded-For, read-only and expired tokens, tokens and sessions that outlive a password
change, oversized bodies, lists cut without saying so, API answers without security headers, tenants reading the
placement of instances, a proxy that hides the client's address, and session cookies sent over plain http."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from tests.api.test_api import error_of
from tests.conftest import Api, Live, make_app
from tests.ui.conftest import csrf_token, web_session


@pytest.fixture
def start(database_url, tmp_path):
    """start(**config) -> a Live control plane (no workers) on this test's metadata; several share it."""
    servers = []

    def _start(**config) -> Live:
        srv = Live(make_app(database_url, tmp_path / f"instance{len(servers)}", **config), workers=0)
        servers.append(srv)
        return srv

    yield _start
    for srv in servers:
        srv.close()


@pytest.fixture
def hashes(monkeypatch):
    """How many password hashes were checked (each costs one scrypt: about 32 MiB and tens of milliseconds)."""
    from webapp.services import accounts

    calls = []
    real = accounts.check_password_hash

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(accounts, "check_password_hash", counting)
    return calls


def token_request(base: str, username: str, password: str, **headers) -> requests.Response:
    return requests.post(base + "/api/v1/tokens", json={"username": username, "password": password},
                         headers=headers, timeout=30)


def audit_events(srv: Live, **query) -> list[dict]:
    return srv.admin.get("/api/v1/admin/audit", params={"limit": 1000, **query}).json()["events"]


# -- rate limits ----------------------------------------------------------------------------------------------
def test_a_guessing_flood_from_one_address_is_refused_before_it_costs_a_hash(start, hashes):
    srv = start(LOGIN_LIMIT_PER_ADDRESS="5 per minute", LOGIN_LIMIT_PER_USERNAME="1000 per minute")
    hashes.clear()
    answers = [token_request(srv.base, f"guess{i}", "wrong-password-1") for i in range(12)]
    assert [r.status_code for r in answers] == [401] * 5 + [429] * 7
    assert len(hashes) == 5  # the 7 refused tries cost no scrypt
    err = error_of(answers[-1], 429)
    seconds = int(answers[-1].headers["Retry-After"])
    assert 1 <= seconds <= 60 and f"try again in {seconds} s" in err["message"] and "address" in err["message"]
    # while the address is limited even the right password waits: guessing on cannot find it
    error_of(token_request(srv.base, "root", "root-password-1"), 429)
    assert len(hashes) == 5
    # every refused password is in the audit log, with the address it came from
    failed = [e for e in audit_events(srv, object="guess3") if e["action"] == "user.login"]
    assert [(e["actor"], e["outcome"], e["remote_addr"]) for e in failed] == [("guess3", "denied", "127.0.0.1")]
    assert failed[0]["detail"] == "api: wrong username or password"
    # a user who logs in successfully is never limited (only refused passwords count)
    ok = start(LOGIN_LIMIT_PER_ADDRESS="2 per minute", LOGIN_LIMIT_PER_USERNAME="2 per minute",
               RATELIMIT_STORAGE_URI="memory://")
    for _ in range(6):
        assert token_request(ok.base, "alice", "alice-password-1").status_code == 201


def test_forged_forwarded_for_does_not_reset_the_address_limit(start):
    srv = start(LOGIN_LIMIT_PER_ADDRESS="3 per minute", LOGIN_LIMIT_PER_USERNAME="1000 per minute")
    codes = [token_request(srv.base, f"guess{i}", "wrong-password-1", **{"X-Forwarded-For": f"10.9.0.{i}"})
             .status_code for i in range(6)]
    assert codes == [401] * 3 + [429] * 3  # no proxy configured: the header is the client's word, not trusted
    assert {e["remote_addr"] for e in audit_events(srv, actor="guess1")} == {"127.0.0.1"}


def test_many_addresses_guessing_one_username_are_refused_api_and_website_together(start, hashes):
    srv = start(PROXY_FIX_HOPS=1, LOGIN_LIMIT_PER_ADDRESS="1000 per minute", LOGIN_LIMIT_PER_USERNAME="4 per minute")
    hashes.clear()
    codes = [token_request(srv.base, "alice", f"guess-{i}-password", **{"X-Forwarded-For": f"198.51.100.{i}"})
             .status_code for i in range(3)]
    web = requests.Session()
    form = {"csrf_token": csrf_token(web.get(srv.base + "/login", timeout=30).text), "username": "alice",
            "password": "guess-web-password"}
    r = web.post(srv.base + "/login", data=form, headers={"X-Forwarded-For": "198.51.100.50"}, timeout=30)
    codes.append(r.status_code)
    assert codes == [401] * 4
    # the fifth try, from yet another address, on the website then on the API: refused, no hash
    form["csrf_token"] = csrf_token(r.text)
    r = web.post(srv.base + "/login", data=form, headers={"X-Forwarded-For": "198.51.100.51"}, timeout=30)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "text/html" in r.headers["Content-Type"]
    assert re.search(r'role="alert">\s*<p>Too many failed logins for this username\. Try again in \d+ seconds', r.text)
    assert 'name="username"' in r.text  # the log in form, to try again later
    err = error_of(token_request(srv.base, "alice", "alice-password-1", **{"X-Forwarded-For": "198.51.100.52"}), 429)
    assert "username" in err["message"]
    assert len(hashes) == 4
    # another user from the same addresses is not affected
    assert token_request(srv.base, "root", "root-password-1", **{"X-Forwarded-For": "198.51.100.1"}).status_code \
        == 201
    # the website's refusals are audited like the API's, with the client's address as the proxy gave it
    tries = [(e["remote_addr"], e["detail"].split(":")[0]) for e in reversed(audit_events(srv, actor="alice"))
             if e["action"] == "user.login"]
    assert tries == [("198.51.100.0", "api"), ("198.51.100.1", "api"), ("198.51.100.2", "api"),
                     ("198.51.100.50", "website")]


def test_the_limits_hold_across_processes_on_one_metadata_store(start):
    """Two control planes (two `pgaas serve`) on the same store count the same failures."""
    one = start(LOGIN_LIMIT_PER_ADDRESS="1000 per minute", LOGIN_LIMIT_PER_USERNAME="4 per minute")
    two = start(LOGIN_LIMIT_PER_ADDRESS="1000 per minute", LOGIN_LIMIT_PER_USERNAME="4 per minute")
    codes = [token_request(srv.base, "root", "wrong-password-1").status_code for srv in (one, two, one, two, one, two)]
    assert codes == [401, 401, 401, 401, 429, 429]


# -- tokens: scope, expiry, password changes ------------------------------------------------------------------
def new_token(srv: Live, username: str, password: str, **body) -> dict:
    r = requests.post(srv.base + "/api/v1/tokens", json={"username": username, "password": password, **body},
                      timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_read_token_reads_and_changes_nothing(start):
    srv = start()
    got = new_token(srv, "root", "root-password-1", scope="read", name="prometheus")
    assert got["scope"] == "read" and got["expired"] is False
    reader = Api(srv.base, got["token"])
    assert reader.get("/api/v1/instances").status_code == 200
    metrics = requests.get(srv.base + "/metrics", headers={"Authorization": f"Bearer {got['token']}"}, timeout=30)
    assert metrics.status_code == 200 and "text/plain" in metrics.headers["Content-Type"]  # Prometheus' scrape
    for method, path, body in [("post", "/api/v1/instances", {"name": "sneaky"}),
                               ("post", "/api/v1/users", {"username": "mallory", "password": "mallory-pass-1"}),
                               ("delete", "/api/v1/users/alice", None),
                               ("put", "/api/v1/instances/x/access", {"users": None}),
                               ("patch", "/api/v1/instances/x", {"settings": {}}),
                               ("delete", f"/api/v1/tokens/{got['id']}", None),
                               ("post", "/api/v1/me/password", {"current_password": "root-password-1",
                                                                "new_password": "root-password-2"})]:
        err = error_of(getattr(reader, method)(path, json=body), 403)
        assert "scope is read" in err["message"], (method, path)
    assert srv.admin.get("/api/v1/users/alice").status_code == 200
    assert srv.admin.get("/api/v1/instances").json()["instances"] == []
    denied = [e for e in audit_events(srv, actor="root") if e["outcome"] == "denied"]
    assert {(e["action"], e["object"]) for e in denied} >= {("instance.create", "sneaky"), ("user.delete", "alice")}
    error_of(srv.anon.post("/api/v1/tokens", json={"username": "root", "password": "root-password-1",
                                                   "scope": "admin"}), 422)


def test_tokens_expire(start):
    from webapp.store.models import ApiToken, utcnow

    srv = start(TOKEN_DAYS=2)
    got = new_token(srv, "alice", "alice-password-1")
    assert got["scope"] == "write"
    expires = datetime.fromisoformat(got["expires_at"])
    assert abs((expires - utcnow()) - timedelta(days=2)) < timedelta(minutes=1)
    week = new_token(srv, "alice", "alice-password-1", expires_in_days=7)
    assert abs((datetime.fromisoformat(week["expires_at"]) - utcnow()) - timedelta(days=7)) < timedelta(minutes=1)
    for bad in (0, 366, "7", 1.5, True):
        err = error_of(srv.anon.post("/api/v1/tokens", json={"username": "alice", "password": "alice-password-1",
                                                             "expires_in_days": bad}), 422)
        assert err["details"]["field"] == "expires_in_days"
    user = Api(srv.base, got["token"])
    assert user.get("/api/v1/databases").status_code == 200
    with srv.app.extensions["pgaas"].store.session() as s:  # a day and a half later...
        s.scalar(select(ApiToken).where(ApiToken.id == got["id"])).expires_at = utcnow() - timedelta(seconds=1)
    err = error_of(user.get("/api/v1/databases"), 401)
    assert "expired at" in err["message"] and "POST /api/v1/tokens" in err["message"]
    listed = {t["id"]: t for t in Api(srv.base, week["token"]).get("/api/v1/tokens").json()["tokens"]}
    assert listed[got["id"]]["expired"] is True and listed[week["id"]]["expired"] is False


def test_a_password_change_revokes_every_token_and_ends_every_session(start):
    srv = start()
    second = srv.anon.as_user("alice", "alice-password-1")
    browser = web_session(srv.base, "alice", "alice-password-1")
    assert browser.get(srv.base + "/databases", timeout=30, allow_redirects=False).status_code == 200
    r = srv.alice.post("/api/v1/me/password", json={"current_password": "alice-password-1",
                                                    "new_password": "alice-password-2"})
    assert r.status_code == 204
    for api in (srv.alice, second):  # the one that changed it too: every token of hers
        err = error_of(api.get("/api/v1/databases"), 401)
        assert "revoked" in err["message"] and "password change" in err["message"]
    r = browser.get(srv.base + "/databases", timeout=30, allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert srv.anon.as_user("alice", "alice-password-2").get("/api/v1/databases").status_code == 200
    event = next(e for e in audit_events(srv, actor="alice") if e["action"] == "user.password")
    assert event["detail"] == "2 API token(s) revoked, website sessions ended"
    assert srv.admin.get("/api/v1/users").status_code == 200  # nobody else's


# -- request size, pagination, headers ------------------------------------------------------------------------
def test_oversized_bodies_are_refused_with_413(start):
    srv = start(MAX_CONTENT_LENGTH=64 * 1024)
    err = error_of(srv.admin.post("/api/v1/instances", json={"name": "a" * 100_000}), 413)
    assert err["code"] == "request_entity_too_large"
    error_of(srv.anon.post("/api/v1/tokens", json={"username": "root", "password": "x" * 100_000}), 413)
    r = requests.post(srv.base + "/login", data={"username": "root", "password": "x" * 100_000}, timeout=30)
    assert r.status_code == 413 and "text/html" in r.headers["Content-Type"]
    assert srv.admin.post("/api/v1/instances", json={"name": "a" * 41}).status_code == 422  # small ones still pass


def test_the_default_request_size_limit_is_one_mib(live):
    assert live.app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    error_of(live.admin.post("/api/v1/users", data=b"{" + b" " * (1024 * 1024) + b"}",
                             headers={"Content-Type": "application/json"}), 413)


def test_jobs_are_paged_not_cut_at_100(live):
    from webapp.store.models import Job

    with live.app.extensions["pgaas"].store.session() as s:
        s.add_all([Job(kind="instance_create", status="succeeded", created_by="root") for _ in range(103)])
        s.add_all([Job(kind="database_dump", status="succeeded", created_by="alice") for _ in range(3)])
    first = live.admin.get("/api/v1/jobs").json()
    assert len(first["jobs"]) == 100 and first["limit"] == 100 and first["offset"] == 0
    assert first["next"] == "/api/v1/jobs?limit=100&offset=100"
    rest = live.admin.get(first["next"]).json()
    assert len(rest["jobs"]) == 6 and rest["next"] is None
    ids = [j["id"] for j in first["jobs"] + rest["jobs"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 106
    mine = live.alice.get("/api/v1/jobs?limit=2").json()  # a user's own jobs, paged in the store
    assert [j["created_by"] for j in mine["jobs"]] == ["alice"] * 2 and mine["next"]
    assert len(live.alice.get(mine["next"]).json()["jobs"]) == 1
    for bad in ("0", "-1", "abc", "1001"):
        assert "limit" in error_of(live.admin.get(f"/api/v1/jobs?limit={bad}"), 400)["message"]
    error_of(live.admin.get("/api/v1/jobs?offset=x"), 400)


LISTS = [("/api/v1/instances", "instances"), ("/api/v1/jobs", "jobs"), ("/api/v1/users", "users"),
         ("/api/v1/tokens", "tokens"), ("/api/v1/databases", "databases"), ("/api/v1/admin/audit", "events"),
         ("/api/v1/hosts", "hosts"), ("/api/v1/alerts", "alerts"), ("/api/v1/instances/main/history", "changes"),
         ("/api/v1/instances/main/databases", "databases")]


def test_every_list_is_paged(live):
    live.admin.post("/api/v1/instances", json={"name": "main"})
    live.anon.as_user("root", "root-password-1")  # root has two tokens now
    for path, key in LISTS:
        body = live.admin.get(path + "?limit=1").json()
        assert {key, "limit", "offset", "next"} <= set(body) and len(body[key]) <= 1, path
        assert body["limit"] == 1 and body["offset"] == 0, path
    users = live.admin.get("/api/v1/users?limit=1").json()
    assert [u["username"] for u in users["users"]] == ["alice"] and users["next"] == "/api/v1/users?limit=1&offset=1"
    assert [u["username"] for u in live.admin.get(users["next"]).json()["users"]] == ["root"]
    audit = live.admin.get("/api/v1/admin/audit?actor=root&limit=1").json()
    assert audit["next"] == "/api/v1/admin/audit?actor=root&limit=1&offset=1"  # the filter goes on to the next page


def test_api_answers_carry_the_website_security_headers(live):
    for r in (live.admin.get("/api/v1/instances"), live.anon.get("/api/v1/instances"),
              live.admin.get("/api/v1/instances/nope"), live.anon.get("/api/v1/openapi.json"),
              live.admin.get("/metrics"), live.anon.post("/api/v1/tokens", json={})):
        assert r.headers["Cache-Control"] == "no-store", r.url
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert "Strict-Transport-Security" not in r.headers  # no https public URL configured


# -- what users who are not admins see of instances -----------------------------------------------------------
@pytest.fixture
def main(live):
    """An available instance whose members nobody answers for (no container), with a deploy's metadata."""
    from webapp.store.models import Instance

    assert live.admin.post("/api/v1/instances", json={"name": "main"}).status_code == 202
    with live.app.extensions["pgaas"].store.session() as s:
        inst = s.scalar(select(Instance).where(Instance.name == "main"))
        inst.status, inst.status_reason = "available", "retry failed on host-secret-7 (job 1): boom at 10.1.2.3"
        inst.meta = {"deploy": {"server_version": "15.8", "leader": "pgaas-main-0", "image": "secret-image"},
                     "facts": {"localhost": {"kernel": "6.1-secret-kernel"}},
                     "settings": {"work_mem": {"value": "9MB"}}}
        placement = [(m.name, m.host, m.address, str(m.pg_port), str(m.api_port)) for m in inst.members]
    return placement


def test_a_tenant_sees_name_status_and_version_only(live, main):
    listed = live.alice.get("/api/v1/instances")
    shown = live.alice.get("/api/v1/instances/main")
    assert [set(i) for i in listed.json()["instances"]] == [{"name", "status", "version", "url", "ca_cert_url"}]
    assert set(shown.json()) == {"name", "status", "version", "url", "ca_cert_url"}
    assert shown.json()["version"] == "15.8"
    for text in (listed.text, shown.text):
        for secret in ("127.0.0.1", "host-secret-7", "10.1.2.3", "secret-image", "6.1-secret-kernel", "9MB",
                       "dbadmin", "uri", *[part for member in main for part in member]):
            assert secret not in text, secret
    admin = live.admin.get("/api/v1/instances/main").json()  # admins see it all
    assert admin["metadata"]["deploy"]["leader"] == "pgaas-main-0" and admin["access"] == {"users": None}
    assert admin["version"] == "15.8"
    # and no job of the instance: the create job is the admin's
    assert live.alice.get("/api/v1/jobs").json()["jobs"] == []
    job_id = live.admin.get("/api/v1/jobs").json()["jobs"][0]["id"]
    error_of(live.alice.get(f"/api/v1/jobs/{job_id}"), 404)


def test_admins_restrict_an_instance_to_named_users(live, main):
    from webapp.services import accounts

    with live.app.extensions["pgaas"].store.session() as s:
        accounts.create_user(s, "bob", "bob-password-1")
    bob = live.anon.as_user("bob", "bob-password-1")
    error_of(live.alice.put("/api/v1/instances/main/access", json={"users": ["alice"]}), 403)
    error_of(live.alice.get("/api/v1/instances/main/access"), 403)
    err = error_of(live.admin.put("/api/v1/instances/main/access", json={"users": ["bob", "nobody"]}), 422)
    assert "nobody" in err["message"] and err["details"]["field"] == "users"
    error_of(live.admin.put("/api/v1/instances/main/access", json={"users": "bob"}), 422)
    error_of(live.admin.put("/api/v1/instances/main/access", json={}), 400)
    error_of(live.admin.put("/api/v1/instances/nope/access", json={"users": None}), 404)

    r = live.admin.put("/api/v1/instances/main/access", json={"users": ["bob"]})
    assert r.status_code == 200 and r.json() == {"instance": "main", "users": ["bob"]}
    assert live.admin.get("/api/v1/instances/main/access").json() == {"instance": "main", "users": ["bob"]}
    # alice: the instance does not exist for her, and she cannot put a database on it
    assert live.alice.get("/api/v1/instances").json()["instances"] == []
    assert error_of(live.alice.get("/api/v1/instances/main"), 404)["message"] == "no instance 'main'"
    error_of(live.alice.get("/api/v1/instances/main/databases"), 404)
    error_of(live.alice.post("/api/v1/instances/main/databases", json={"name": "shop"}), 404)
    # bob and the admins still see it
    assert [i["name"] for i in bob.get("/api/v1/instances").json()["instances"]] == ["main"]
    assert bob.get("/api/v1/instances/main").status_code == 200
    assert live.admin.get("/api/v1/instances/main").json()["access"] == {"users": ["bob"]}
    # admins only, then open to all again
    assert live.admin.put("/api/v1/instances/main/access", json={"users": []}).json()["users"] == []
    error_of(bob.get("/api/v1/instances/main"), 404)
    assert live.admin.put("/api/v1/instances/main/access", json={"users": None}).json()["users"] is None
    assert live.alice.get("/api/v1/instances/main").status_code == 200
    # open again: her create goes past the access check to the instance (which no container answers for here)
    assert live.alice.post("/api/v1/instances/main/databases", json={"name": "shop"}).status_code != 404
    details = [e["detail"] for e in reversed(audit_events(live, object="main"))
               if e["action"] == "instance.access" and e["outcome"] == "ok"]
    assert details == ["restricted to: bob", "restricted to: (admins only)", "open to every user"]


# -- behind a proxy -------------------------------------------------------------------------------------------
def test_the_audit_log_names_the_client_behind_a_trusted_proxy(start):
    srv = start(PROXY_FIX_HOPS=1)
    proxied = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    srv.admin.post("/api/v1/users", json={"username": "bob", "password": "bob-password-1"}, headers=proxied)
    token_request(srv.base, "bob", "wrong-password-1", **proxied)
    events = audit_events(srv, object="bob")
    assert {(e["action"], e["remote_addr"]) for e in events} == {("user.create", "203.0.113.7"),
                                                                   ("user.login", "203.0.113.7")}
    # only the nearest proxy's word counts: an address the client put in front of it is not believed
    srv.admin.post("/api/v1/users", json={"username": "carol", "password": "carol-password-1"},
                   headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.8"})
    assert [e["remote_addr"] for e in audit_events(srv, object="carol")] == ["203.0.113.8"]


def test_session_cookies_are_secure_when_the_public_url_is_https(start):
    plain = start()
    cookies = web_session(plain.base, "alice", "alice-password-1").cookies
    assert not next(c for c in cookies if c.name == "session").secure
    srv = start(PUBLIC_URL="https://pgaas.example.org", PROXY_FIX_HOPS=1)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pgaas.example.org"}
    page = requests.get(srv.base + "/login", headers=proxied, timeout=30)
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "; Secure" in page.headers["Set-Cookie"]  # a client on plain http would not even send it back
    # as the browser does over https: the cookie back, and a Referer of the site (Flask-WTF checks it on https)
    r = requests.post(srv.base + "/login", allow_redirects=False, timeout=30,
                      headers={**proxied, "Cookie": page.headers["Set-Cookie"].split(";")[0],
                               "Referer": "https://pgaas.example.org/login"},
                      data={"csrf_token": csrf_token(page.text), "username": "alice", "password": "alice-password-1"})
    assert r.status_code == 302, r.text
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "; Secure" in cookie and "; HttpOnly" in cookie
    # the API's token answer over the same proxy carries HSTS too
    assert srv.admin.get("/api/v1/instances").headers["Strict-Transport-Security"] == "max-age=31536000"


def test_rate_limit_counters_are_pruned(start):
    from webapp.store import ratelimit
    from webapp.store.models import RateLimit

    srv = start(LOGIN_LIMIT_PER_ADDRESS="1000 per second", LOGIN_LIMIT_PER_USERNAME="1000 per second")
    token_request(srv.base, "root", "wrong-password-1")
    store = srv.app.extensions["pgaas"].store
    with store.session() as s:
        assert len(list(s.scalars(select(RateLimit)))) == 2  # per address, per username
    time.sleep(1.1)
    with store.session() as s:
        assert ratelimit.prune(s) == 2

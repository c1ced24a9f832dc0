"""Users, tokens, own password and the audit log, over real HTTP, on both metadata backends."""
from tests.api.test_api import error_of


def test_admins_manage_users(live):
    r = live.admin.post("/api/v1/users", json={"username": "bob", "password": "bob-password-1"})
    assert r.status_code == 201 and r.json()["user"] == {**r.json()["user"], "username": "bob", "is_admin": False}
    assert r.headers["Location"].endswith("/api/v1/users/bob")
    error_of(live.admin.post("/api/v1/users", json={"username": "bob", "password": "bob-password-1"}), 409)
    error_of(live.admin.post("/api/v1/users", json={"username": "Bad Name", "password": "x" * 12}), 422)
    error_of(live.admin.post("/api/v1/users", json={"username": "dave", "password": "short"}), 422)
    error_of(live.admin.post("/api/v1/users", json={"username": "dave", "password": "x" * 12, "is_admin": "yes"}),
             422)
    error_of(live.alice.post("/api/v1/users", json={"username": "eve", "password": "eve-password-1"}), 403)
    error_of(live.alice.get("/api/v1/users"), 403)
    names = [u["username"] for u in live.admin.get("/api/v1/users").json()["users"]]
    assert names == ["alice", "bob", "root"]
    bob = live.anon.as_user("bob", "bob-password-1")
    assert bob.get("/api/v1/instances").status_code == 200
    assert live.admin.delete("/api/v1/users/bob").status_code == 204
    error_of(bob.get("/api/v1/instances"), 401)  # his tokens went with him
    error_of(live.admin.delete("/api/v1/users/bob"), 404)
    error_of(live.admin.delete("/api/v1/users/root"), 409)  # not yourself


def test_change_own_password(live):
    error_of(live.alice.post("/api/v1/me/password", json={"current_password": "wrong-one-123",
                                                          "new_password": "new-password-123"}), 401)
    error_of(live.alice.post("/api/v1/me/password", json={"current_password": "alice-password-1",
                                                          "new_password": "short"}), 422)
    r = live.alice.post("/api/v1/me/password", json={"current_password": "alice-password-1",
                                                     "new_password": "new-password-123"})
    assert r.status_code == 204
    error_of(live.anon.post("/api/v1/tokens", json={"username": "alice", "password": "alice-password-1"}), 401)
    assert live.anon.as_user("alice", "new-password-123")


def test_tokens_are_listed_and_revoked(live):
    second = live.anon.as_user("alice", "alice-password-1")
    tokens = second.get("/api/v1/tokens").json()["tokens"]
    assert len(tokens) == 2 and all(not t["revoked"] and t["prefix"].startswith("pgaas_") for t in tokens)
    assert all("token" not in t for t in tokens)
    first_id = tokens[0]["id"]
    error_of(live.alice.delete("/api/v1/tokens/999999"), 404)
    root_token = live.admin.get("/api/v1/tokens").json()["tokens"][0]["id"]
    error_of(live.alice.delete(f"/api/v1/tokens/{root_token}"), 404)  # not hers
    assert second.delete(f"/api/v1/tokens/{first_id}").status_code == 204
    error_of(live.alice.get("/api/v1/instances"), 401)  # the revoked one
    assert second.get("/api/v1/instances").status_code == 200


def test_audit_log_records_who_what_where_and_outcome(live):
    live.admin.post("/api/v1/users", json={"username": "bob", "password": "bob-password-1"})
    live.admin.post("/api/v1/users", json={"username": "bob", "password": "bob-password-1"})  # 409
    live.alice.post("/api/v1/instances", json={"name": "sneaky"})  # 403
    live.admin.post("/api/v1/instances", json={"name": "main"})
    error_of(live.alice.get("/api/v1/admin/audit"), 403)
    events = live.admin.get("/api/v1/admin/audit").json()["events"]
    got = [(e["actor"], e["action"], e["object"], e["outcome"]) for e in reversed(events)]
    # the fixture's two tokens (root's, alice's) were audited first
    assert [(a, act, o) for a, act, _, o in got[:2]] == [("root", "token.create", "ok"),
                                                         ("alice", "token.create", "ok")]
    assert got[2:] == [("root", "user.create", "bob", "ok"), ("root", "user.create", "bob", "failed"),
                   ("alice", "instance.create", "sneaky", "denied"), ("root", "instance.create", "main", "ok"),
                   ("alice", "audit_log", "GET /api/v1/admin/audit", "denied")]
    assert all(e["remote_addr"] == "127.0.0.1" and e["at"] for e in events)
    only_bob = live.admin.get("/api/v1/admin/audit?object=bob").json()["events"]
    assert len(only_bob) == 2

"""Capacity allowances over the API, on SQLite and PostgreSQL metadata: admins give each user a storage allowance
and a number of databases; quotas stay within it (whoever asks), and the answers say how much is left. The
instance here has no containers: every check runs before the control plane reaches for the instance, so a change
that passes them ends in 409 (instance not available), and one that fails them in 422."""
from __future__ import annotations

import pytest

from tests.api.test_api import error_of


@pytest.fixture
def main(live):
    assert live.admin.post("/api/v1/instances", json={"name": "main"}).status_code == 202
    return live


def add_database(live, name: str, quota_mb: int | None, owner: str = "alice") -> None:
    """A database as the store has it (made before, or on a live instance): only its claim matters here."""
    from webapp.services import accounts
    from webapp.services import instances as isvc
    from webapp.store.models import Database

    with live.app.extensions["pgaas"].store.session() as s:
        s.add(Database(instance=isvc.get(s, "main"), owner_id=accounts.get_user(s, owner).id, name=name,
                       role_name=name, quota_mb=quota_mb, parameters={}))


def create(api, name: str, **body):
    return api.post("/api/v1/instances/main/databases", json={"name": name, **body})


def test_users_have_the_configured_allowance_until_an_admin_sets_theirs(live):
    alice = live.admin.get("/api/v1/users/alice").json()["user"]
    assert (alice["storage_allowance_mb"], alice["max_databases"]) == (10240, 10)
    assert alice["capacity"] == {"storage_allowance_mb": 10240, "storage_allowance_is_default": True,
                                 "storage_allocated_mb": 0, "storage_used_bytes": 0, "storage_left_mb": 10240,
                                 "max_databases": 10, "max_databases_is_default": True, "databases": 0,
                                 "databases_left": 10, "databases_without_quota": []}
    root = live.admin.get("/api/v1/users/root").json()["user"]
    assert (root["storage_allowance_mb"], root["max_databases"]) == (None, None)  # admins: no limit
    r = live.admin.patch("/api/v1/users/alice", json={"storage_allowance_mb": 300, "max_databases": 2})
    assert r.status_code == 200, r.text
    cap = r.json()["user"]["capacity"]
    assert (cap["storage_allowance_mb"], cap["storage_left_mb"], cap["max_databases"]) == (300, 300, 2)
    assert not cap["storage_allowance_is_default"]
    listed = {u["username"]: u for u in live.admin.get("/api/v1/users").json()["users"]}
    assert (listed["alice"]["storage_allowance_mb"], listed["alice"]["max_databases"]) == (300, 2)
    # null: back to the default
    cap = live.admin.patch("/api/v1/users/alice", json={"max_databases": None}).json()["user"]["capacity"]
    assert (cap["storage_allowance_mb"], cap["max_databases"], cap["max_databases_is_default"]) == (300, 10, True)
    events = live.admin.get("/api/v1/admin/audit?object=alice").json()["events"]
    assert [e["detail"] for e in events if e["action"] == "user.allowance"] == [
        "max_databases=default", "storage_allowance_mb=300, max_databases=2"]


def test_only_admins_set_allowances_and_users_see_their_own(live):
    error_of(live.alice.patch("/api/v1/users/alice", json={"storage_allowance_mb": 10 ** 6}), 403)
    error_of(live.alice.get("/api/v1/users/root"), 403)
    me = live.alice.get("/api/v1/me").json()["user"]
    assert me["username"] == "alice" and me["capacity"]["storage_left_mb"] == 10240
    assert live.alice.get("/api/v1/users/alice").json() == live.alice.get("/api/v1/me").json()
    assert live.admin.get("/api/v1/users/alice").json()["user"]["storage_allowance_mb"] == 10240


@pytest.mark.parametrize("body,status", [
    ({"storage_allowance_mb": -1}, 422), ({"storage_allowance_mb": "100"}, 422), ({"storage_allowance_mb": 1.5}, 422),
    ({"storage_allowance_mb": True}, 422), ({"storage_allowance_mb": 1024 ** 3 + 1}, 422),
    ({"max_databases": -2}, 422), ({"max_databases": 100001}, 422), ({}, 422), ({"quota": 1}, 400),
])
def test_bad_allowances_are_refused(live, body, status):
    err = error_of(live.admin.patch("/api/v1/users/alice", json=body), status)
    if status == 422 and body:
        assert err["details"]["field"] == next(iter(body))
    error_of(live.admin.patch("/api/v1/users/nobody", json={"max_databases": 1}), 404)


def test_a_quota_past_the_allowance_is_refused_with_what_is_left(main):
    main.admin.patch("/api/v1/users/alice", json={"storage_allowance_mb": 100, "max_databases": 4})
    err = error_of(create(main.alice, "big", quota_mb=150), 422)
    assert "100 MB left" in err["message"] and err["details"] == {"field": "quota_mb", "left_mb": 100}
    add_database(main, "first", 60)
    err = error_of(create(main.alice, "second", quota_mb=50), 422)
    assert "40 MB left of 100 MB" in err["message"], err
    error_of(create(main.alice, "second", quota_mb=40), 409)  # within it: on to the instance (not available here)
    error_of(create(main.alice, "second"), 409)  # no quota given: a share of the allowance (40 MB left)
    assert main.alice.get("/api/v1/me").json()["user"]["capacity"]["storage_left_mb"] == 40
    add_database(main, "second", 40)
    err = error_of(create(main.alice, "third"), 422)
    assert "0 MB left" in err["message"] and err["details"]["field"] == "quota_mb"
    add_database(main, "third", None)  # made before allowances: no quota
    err = error_of(create(main.alice, "fourth", quota_mb=1), 422)
    assert "main/third has no quota" in err["message"], err


def test_the_number_of_databases_is_limited(main):
    main.admin.patch("/api/v1/users/alice", json={"max_databases": 2})
    add_database(main, "one", 10)
    add_database(main, "two", 10)
    err = error_of(create(main.alice, "three", quota_mb=10), 422)
    assert "at most 2 databases" in err["message"] and err["details"]["field"] == "name"
    cap = main.alice.get("/api/v1/me").json()["user"]["capacity"]
    assert (cap["databases"], cap["databases_left"], cap["storage_allocated_mb"]) == (2, 0, 20)


def test_quota_changes_stay_within_the_owners_allowance_whoever_asks(main):
    main.admin.patch("/api/v1/users/alice", json={"storage_allowance_mb": 100})
    add_database(main, "shop", 50)
    add_database(main, "blog", 30)
    path = "/api/v1/instances/main/databases/shop"
    err = error_of(main.alice.patch(path, json={"quota_mb": 80}), 422)
    assert "70 MB left of 100 MB for shop" in err["message"], err
    err = error_of(main.alice.patch(path, json={"quota_mb": None}), 422)  # no quota: unlimited
    assert "needs a quota" in err["message"] and "at most 70 MB" in err["message"], err
    error_of(main.alice.patch(path, json={"quota_mb": 70}), 409)  # fits
    error_of(main.alice.patch(path, json={"quota_mb": 10}), 409)  # lowering always fits
    # an admin acting for alice is bound by her allowance too, until they raise it
    err = error_of(main.admin.patch(path, json={"quota_mb": 80}), 422)
    assert "alice's storage allowance" in err["message"], err
    error_of(main.admin.patch(path, json={"quota_mb": None}), 422)
    main.admin.patch("/api/v1/users/alice", json={"storage_allowance_mb": 200})
    error_of(main.admin.patch(path, json={"quota_mb": 80}), 409)
    # a database made before allowances may get a quota, within what the others leave
    add_database(main, "old", None)
    err = error_of(main.alice.patch("/api/v1/instances/main/databases/old", json={"quota_mb": 200}), 422)
    assert "120 MB left" in err["message"], err
    error_of(main.alice.patch("/api/v1/instances/main/databases/old", json={"quota_mb": 120}), 409)


def test_admins_own_databases_have_no_allowance_unless_set(main):
    error_of(create(main.admin, "huge", quota_mb=16 * 1024 * 1024), 409)
    error_of(create(main.admin, "unlimited"), 409)
    main.admin.patch("/api/v1/users/root", json={"storage_allowance_mb": 5})
    assert "5 MB left" in error_of(create(main.admin, "huge", quota_mb=6), 422)["message"]


@pytest.mark.parametrize("name", ["default_transaction_read_only", "transaction_read_only",
                                  "Default_Transaction_Read_Only", "session_replication_role", "temp_tablespaces",
                                  "synchronous_commit", "role"])
def test_parameters_that_undo_enforcement_are_refused_before_the_instance_is_asked(main, name):
    add_database(main, "shop", 50)
    err = error_of(main.alice.patch("/api/v1/instances/main/databases/shop", json={"parameters": {name: "off"}}), 422)
    assert "cannot be set per database" in err["message"] and name in err["message"]
    err = error_of(create(main.alice, "fresh", quota_mb=10, parameters={"work_mem": "4MB", name: "off"}), 422)
    assert name in err["message"]
    error_of(main.alice.patch("/api/v1/instances/main/databases/shop", json={"parameters": {"work_mem": "8MB"}}),
             409)  # allowed: on to the instance


def test_the_answers_fit_the_openapi_document(main):
    from tests.api.test_openapi import validator

    spec = main.anon.get("/api/v1/openapi.json").json()
    add_database(main, "shop", 50)
    add_database(main, "old", None)
    for body in (main.alice.get("/api/v1/me").json(), main.admin.get("/api/v1/users/root").json(),
                 main.admin.patch("/api/v1/users/alice", json={"storage_allowance_mb": 70}).json()):
        validator(spec, "#/components/schemas/UserOf").validate(body)
        validator(spec, "#/components/schemas/Capacity").validate(body["user"]["capacity"])
    cap = main.alice.get("/api/v1/me").json()["user"]["capacity"]
    assert cap["databases_without_quota"] == ["main/old"] and cap["storage_left_mb"] == 0
    assert cap["storage_used_bytes"] is None  # the instance did not answer

"""Switchover, failover, rebuild and history: the refusals that need no container (auth, malformed bodies,
unknown members, an instance that is not available), on SQLite and PostgreSQL metadata. The refusals that need a
live pair (a candidate that is the primary, a rebuild of the primary) are in tests/e2e/test_operations.py."""
import pytest


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], body
    return body["error"]


@pytest.fixture
def main(live):
    r = live.admin.post("/api/v1/instances", json={"name": "main", "synchronous": True})
    assert r.status_code == 202, r.text
    return r.json()["instance"]


OPERATIONS = [("switchover", "candidate"), ("failover", "candidate"), ("rebuild", "member")]


def test_only_admins_move_or_rebuild(live, main):
    for what, field in OPERATIONS:
        error_of(live.anon.post(f"/api/v1/instances/main/{what}", json={field: "pgaas-main-1"}), 401)
        error_of(live.alice.post(f"/api/v1/instances/main/{what}", json={field: "pgaas-main-1"}), 403)
    error_of(live.alice.get("/api/v1/instances/main/history"), 403)


def test_unknown_member_is_422_naming_the_members(live, main):
    for (what, field), bad in zip(OPERATIONS * 3, ["pgaas-other-1"] * 3 + [42] * 3 + [["pgaas-main-1"]] * 3):
        err = error_of(live.admin.post(f"/api/v1/instances/main/{what}", json={field: bad}), 422)
        assert err["details"]["field"] == field
        assert "pgaas-main-0" in err["message"] and "pgaas-main-1" in err["message"], err
    # no job was queued: the create job is still the only one
    assert [j["kind"] for j in live.admin.get("/api/v1/jobs?instance=main").json()["jobs"]] == ["instance_create"]


def test_malformed_bodies_are_400(live, main):
    error_of(live.admin.post("/api/v1/instances/main/failover", json={}), 400)       # candidate is required
    error_of(live.admin.post("/api/v1/instances/main/rebuild", json={}), 400)        # member is required
    error_of(live.admin.post("/api/v1/instances/main/switchover", json={"leader": "x"}), 400)
    error_of(live.admin.post("/api/v1/instances/main/rebuild", json=["pgaas-main-1"]), 400)


def test_not_available_is_409_unknown_instance_404(live, main):
    # still creating (no worker runs here): nothing to move or rebuild yet
    for what, field in OPERATIONS:
        err = error_of(live.admin.post(f"/api/v1/instances/main/{what}", json={field: "pgaas-main-1"}), 409)
        assert "creating" in err["message"]
        error_of(live.admin.post(f"/api/v1/instances/nope/{what}", json={field: "pgaas-nope-1"}), 404)
    error_of(live.admin.get("/api/v1/instances/nope/history"), 404)
    r = live.admin.get("/api/v1/instances/main/history")
    assert r.status_code == 200 and r.json() == {"instance": "main", "changes": [], "limit": 100, "offset": 0,
                                                 "next": None}
    audit = live.admin.get("/api/v1/admin/audit?object=main").json()["events"]
    assert {("instance.switchover", "failed"), ("instance.rebuild", "failed")} <= \
        {(e["action"], e["outcome"]) for e in audit}

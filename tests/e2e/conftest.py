"""Shared by the end-to-end modules: one control plane (PostgreSQL metadata, two workers) and one instance pair
for the whole session, so the slow deploy happens once."""
from __future__ import annotations

import pytest

from tests.conftest import Live, make_app
from tests.e2e.helpers import INST, create


@pytest.fixture(scope="session")
def cp(tmp_path_factory, metadata_pg):
    """The control plane with PostgreSQL metadata and two worker threads."""
    srv = Live(make_app(metadata_pg.new_database(), tmp_path_factory.mktemp("cp") / "instance",
                        QUOTA_CHECK_SECONDS=1, SAMPLE_SECONDS=1), workers=2)
    yield srv
    for inst in srv.admin.get("/api/v1/instances").json()["instances"]:
        r = srv.admin.delete(f"/api/v1/instances/{inst['name']}?force=true")
        if r.status_code == 202:
            srv.admin.wait_job(r.json()["job"]["id"], timeout=120)
    srv.close()


@pytest.fixture(scope="session")
def pair(cp):
    created, job = create(cp, INST, admin_password="Admin-password-123")
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    return created



"""Dump and restore from the database page, in a real browser: the buttons start jobs and land on the job page,
the download link appears when the dump is done, and the downloaded file restores into another database."""
from __future__ import annotations

import re

import psycopg
import pytest

from tests.ui.conftest import login, shot, web_session

pytestmark = pytest.mark.slow


def test_dump_download_and_restore_from_the_pages(page, cp, pair, tmp_path, monkeypatch):
    from tests.e2e.helpers import INST

    r = cp.admin.get(f"/api/v1/instances/{INST}/ca.crt")  # with TLS the URIs name the CA file in the client's folder
    if r.status_code == 200:
        (tmp_path / f"pgaas-{INST}-ca.crt").write_text(r.text)
    monkeypatch.chdir(tmp_path)

    r = cp.admin.post("/api/v1/users", json={"username": "ui-d-dina", "password": "dina-password-1"})
    assert r.status_code in (201, 409), r.text
    dina = cp.anon.as_user("ui-d-dina", "dina-password-1")
    src = dina.post(f"/api/v1/instances/{INST}/databases", json={"name": "ui_d_src"}).json()["database"]
    dst = dina.post(f"/api/v1/instances/{INST}/databases", json={"name": "ui_d_dst"}).json()["database"]
    with psycopg.connect(src["uri"], password=src["password"], connect_timeout=5, autocommit=True) as c:
        c.execute("CREATE TABLE t AS SELECT generate_series(1, 700) AS x")

    login(page, cp.base, "ui-d-dina", "dina-password-1")
    page.goto(f"{cp.base}/instances/{INST}/databases/ui_d_src")
    page.get_by_role("button", name="Dump for download").click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    assert "database dump" in page.locator("h1").inner_text()
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    link = page.get_by_role("link", name="Download the dump")
    link.wait_for(state="visible")  # shown by the poller when the job is done, without a reload
    shot(page, "job-dump")
    with page.expect_download() as dl:
        link.click()
    archive = tmp_path / "src.dump"
    dl.value.save_as(archive)
    assert archive.read_bytes().startswith(b"PGDMP") and dl.value.suggested_filename.endswith(".dump")

    page.goto(f"{cp.base}/instances/{INST}/databases/ui_d_dst")
    not_a_dump = tmp_path / "notes.txt"
    not_a_dump.write_text("SELECT 1;\n")
    page.get_by_label("Archive (pg_dump custom format)").set_input_files(str(not_a_dump))
    page.get_by_role("button", name="Restore", exact=True).click()
    assert "not a pg_dump archive" in page.locator("#up-file-error").inner_text()  # beside the field, no job
    page.get_by_label("Archive (pg_dump custom format)").set_input_files(str(archive))
    page.get_by_role("button", name="Restore", exact=True).click()
    page.wait_for_url(re.compile(r".*/jobs/\d+$"))
    page.wait_for_selector("#job-status[data-status=succeeded]", timeout=120_000)
    with psycopg.connect(dst["uri"], password=dst["password"], connect_timeout=5) as c:
        assert c.execute("SELECT count(*), sum(x) FROM t").fetchone() == (700, 245350)

    # the forms need their CSRF token: a post without one starts nothing
    s = web_session(cp.base, "ui-d-dina", "dina-password-1")
    before = len(dina.get("/api/v1/jobs").json()["jobs"])
    assert s.post(f"{cp.base}/instances/{INST}/databases/ui_d_src/dump", timeout=30).status_code == 400
    assert s.post(f"{cp.base}/instances/{INST}/databases/ui_d_dst/restore-upload", timeout=30,
                  files={"up-file": ("a.dump", archive.read_bytes())}).status_code == 400
    assert len(dina.get("/api/v1/jobs").json()["jobs"]) == before

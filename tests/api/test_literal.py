"""No user text is ever templated by Ansible (issue 12): the payload that ran a command on the control plane through
a setting is tried on every other path that takes user text toward a job. Names are refused before anything is
stored (422); free text (host labels, a key file's path) is stored as typed and reaches the play as those
characters. The settings path and the runner's own mechanism: tests/jobs/test_runner.py."""
from __future__ import annotations

from pathlib import Path

from tests.api.test_hosts import KEY, _load_inventory
from tests.conftest import Live, make_app
from webapp.jobs.runner import run_playbook
from webapp.jobs.types import RunSpec

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "project"


def _payload(marker: Path) -> str:
    return "{{ lookup('pipe','touch %s; echo x') }}" % marker


def _refused(r, field: str | None = None):
    assert r.status_code == 422, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["message"] and (field is None or err.get("details", {}).get("field") == field), err


def test_names_that_reach_jobs_are_refused(live, tmp_path):
    marker = tmp_path / "pwned-names"
    p = _payload(marker)
    _refused(live.admin.post("/api/v1/instances", json={"name": p}), "name")
    _refused(live.admin.post("/api/v1/instances", json={"name": "lit", "admin_database": p}), "admin_database")
    # the admin password is a secret of the deploy: quotes and spaces are refused outright
    _refused(live.admin.post("/api/v1/instances", json={"name": "lit", "admin_password": p}), "admin_password")
    assert live.admin.get("/api/v1/instances/lit").status_code == 404
    _refused(live.admin.post("/api/v1/users", json={"username": p, "password": "a-long-password-1"}))
    # database names (the dump and restore jobs carry them): an instance to ask on (its create job never runs)
    assert live.admin.post("/api/v1/instances", json={"name": "lit"}).status_code == 202
    _refused(live.admin.post("/api/v1/instances/lit/databases", json={"name": p}), "name")
    _refused(live.admin.post("/api/v1/hosts", json={"name": p, "address": "10.0.0.1", "ssh_user": "root",
                                                    "private_key": KEY}))
    assert not marker.exists()


def test_host_fields_are_data_in_the_ssh_inventory(tmp_path):
    """Host fields reach every job through the ssh provider's inventory. The validated ones refuse the payload;
    free text (labels, the path of a key file) is stored and handed to Ansible as typed."""
    marker = tmp_path / "pwned-host"
    p = _payload(marker)
    # a key file whose path is the payload (its '/' make directories)
    key_path = Path(f"{tmp_path}/keys/{p}")
    key_path.parent.mkdir(parents=True)
    key_path.write_text(KEY)
    srv = Live(make_app(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "instance", PROVIDER="ssh"), workers=0)
    try:
        base = {"name": "lit1", "address": "10.0.0.1", "ssh_user": "pgaas", "key_path": str(key_path)}
        for field in ("address", "ssh_user", "name"):
            _refused(srv.admin.post("/api/v1/hosts", json={**base, field: p}), field)
        r = srv.admin.post("/api/v1/hosts", json={**base, "labels": {"rack": p}})
        assert r.status_code == 201, r.text
        shown = srv.admin.get("/api/v1/hosts/lit1").json()
        assert shown["labels"] == {"rack": p}
        provider = srv.app.extensions["pgaas"].provider
        inv_dir = tmp_path / "inv"
        inv_dir.mkdir()
        inventory = provider.inventory(inv_dir)
        assert _load_inventory(inventory)["all"]["hosts"]["lit1"]["ansible_ssh_private_key_file"] == str(key_path)
        out = run_playbook(tmp_path / "job", "1", RunSpec("playbooks/hostvars.yml",
                                                           {"fixture_dir": str(tmp_path), "fixture_host": "lit1"}),
                           project_dir=str(FIXTURE), inventory=inventory)
        assert out.status == "successful", out.error
        assert (tmp_path / "key_file.txt").read_text() == str(key_path)
        assert (tmp_path / "address.txt").read_text() == "10.0.0.1"
        assert "UserKnownHostsFile=" in (tmp_path / "common_args.txt").read_text()
    finally:
        srv.close()
    assert not marker.exists(), "a host field ran a command on the control plane"

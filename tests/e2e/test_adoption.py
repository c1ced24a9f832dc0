"""Adoption, both ways (issue 14, items 2 and 4), on this machine with a real pair: a pair deployed with plain
ansible-playbook (an operator's vars file and secrets file, certificates made with services/certificates.py) is
adopted through the API with a real worker; its job converges it and fills its metadata; a tenant database is
created on it and reached over TLS; GET .../inventory gives the same members back (secrets only when asked, and
audited); the job's replay names the playbook, inventory, vars file and secrets file; bad inputs are 4xx with a
message. Its own control plane (SQLite metadata, one worker), its own instance names and ports (33100-33199)."""
from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess

import psycopg
import pytest
import yaml

from tests.conftest import REPO, Live, make_app
from tests.e2e.helpers import PODMAN_ENV, remove_leftovers

NAME = "adopt-pair"
PORT = 33100  # the pair's ports: 33100-33103; the control plane's own range is 33150-33199


def _secrets(name: str, members: list[dict]) -> dict:
    from webapp.services import certificates as c

    ca, ca_key = c.new_ca(name)
    names = {m["name"]: [m["name"], m["address"], "localhost", "127.0.0.1"] for m in members}
    names[f"pgaas-{name}-etcd"] = [f"pgaas-{name}-etcd", "localhost", "127.0.0.1"]
    certs = {n: dict(zip(("cert", "key"), c.issue(ca, ca_key, n, sans))) for n, sans in names.items()}
    client = c.issue(ca, ca_key, "operator", [], server=False)
    return {"pgaas_superuser_password": "Super-adopt-pw-0123456", "pgaas_replication_password": "Repl-adopt-pw-0123456",
            "pgaas_restapi_password": "Rest-adopt-pw-0123456", "pgaas_admin_password": "Admin-adopt-pw-0123456",
            "pgaas_tls_ca_cert": ca, "pgaas_tls_ca_key": ca_key, "pgaas_tls_certs": certs,
            "pgaas_tls_client": {"cert": client[0], "key": client[1]}}


def _write(path, data) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def _playbook(*args, cwd=REPO) -> subprocess.CompletedProcess:
    r = subprocess.run(["ansible-playbook", *args], cwd=cwd, env=PODMAN_ENV, capture_output=True, text=True,
                       timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return r


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, str):
        yield v


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    """A pair deployed with ansible-playbook alone: inventory, vars file and secrets file as an operator has them."""
    d = tmp_path_factory.mktemp("operator")
    members = [{"name": f"pgaas-{NAME}-{i}", "host": "localhost", "address": "127.0.0.1", "pg_port": PORT + 2 * i,
                "api_port": PORT + 2 * i + 1} for i in range(2)]
    inventory = yaml.safe_load((REPO / "inventory" / "local" / "hosts.yml").read_text())
    vars_ = {"pgaas_instance_name": NAME, "pgaas_members": members, "pgaas_synchronous": True,
             "pgaas_admin_database": "app"}
    secrets = _secrets(NAME, members)
    files = {"inventory": _write(d / "hosts.yml", inventory), "vars": _write(d / "pair.yml", vars_),
             "secrets": _write(d / f"pgaas-{NAME}.secrets.yml", secrets)}
    remove_leftovers(NAME)
    _playbook("playbooks/instance_deploy.yml", "-i", files["inventory"], "-e", f"@{files['vars']}",
              "-e", f"pgaas_secrets_file={files['secrets']}")
    yield {"inventory": inventory, "vars": vars_, "secrets": secrets, "files": files, "dir": d}
    remove_leftovers(NAME)


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    d = tmp_path_factory.mktemp("adopt-cp")
    srv = Live(make_app(f"sqlite:///{d / 'pgaas.sqlite'}", d / "instance", PORT_RANGE_START=PORT + 50,
                        PORT_RANGE_END=PORT + 99), workers=1)
    yield srv
    srv.close()


def test_adopt_a_pair_deployed_with_ansible_playbook(operator, plane):
    admin = plane.admin
    body = {"name": NAME, "inventory": operator["inventory"], "vars": operator["vars"], "secrets": operator["secrets"]}

    # bad inputs first: each a 4xx with a message, nothing stored
    def refused(change, status, words, who=admin):
        b = copy.deepcopy(body)
        change(b)
        r = who.post("/api/v1/instances/adopt", json=b)
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.json()
    refused(lambda b: b["vars"]["pgaas_members"][1].update(host="elsewhere"), 422, "host 'elsewhere' is not one")
    refused(lambda b: b["secrets"].pop("pgaas_replication_password"), 422, "pgaas_replication_password missing")
    refused(lambda b: b.pop("secrets"), 422, "secrets are required")
    refused(lambda b: b["secrets"].update(pgaas_tls_ca_key=_secrets(NAME, [])["pgaas_tls_ca_key"]), 422,
            "is not the key of pgaas_tls_ca_cert")
    refused(lambda b: b.update(name="adopt-other"), 422, "pgaas_instance_name is 'adopt-pair', not 'adopt-other'")
    refused(lambda b: b["vars"]["pgaas_members"][0].update(name="pgaas-other-0"), 422, "pgaas-adopt-pair-<N>")
    refused(lambda b: None, 403, "administrator", who=plane.alice)
    assert admin.get("/api/v1/instances").json()["instances"] == []

    r = admin.post("/api/v1/instances/adopt", json=body)
    assert r.status_code == 202, r.text
    assert r.headers["Location"].endswith(f"/api/v1/instances/{NAME}")
    job = admin.wait_ok(r.json()["job"]["id"], timeout=180)
    assert job["kind"] == "instance_adopt"
    # the converge changed nothing on the pair deployed with the same inputs
    assert [e["message"].split("; ")[1] for e in job["events"] if e["status"] == "stats"] == ["changed=0"], job

    inst = admin.get(f"/api/v1/instances/{NAME}").json()
    assert inst["status"] == "available", inst
    assert sorted(m["name"] for m in [inst["primary"], *inst["replicas"]]) == [f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]
    assert inst["version"] and inst["version"].startswith("15"), inst
    assert inst["metadata"]["facts"] and inst["metadata"]["deploy"], inst["metadata"]  # from the adoption's run
    assert inst["primary"] and inst["replicas"][0]["sync_state"] == "sync", inst  # Patroni's live view, over TLS

    # the same name again, or its ports under another name: 409
    refused(lambda b: None, 409, "already exists")
    refused(lambda b: (b.update(name="adopt-other"), b["vars"].update(
        pgaas_instance_name="adopt-other", pgaas_members=[{**m, "name": m["name"].replace(NAME, "adopt-other")}
                                                          for m in b["vars"]["pgaas_members"]])), 409,
            f"port {PORT} on host localhost is taken")

    # a tenant database on it, reached over TLS with the URI of the answer
    r = plane.alice.post(f"/api/v1/instances/{NAME}/databases", json={"name": "shop"})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    with psycopg.connect(db["uri"], password=db["password"], connect_timeout=10) as c:
        c.execute("CREATE TABLE items (name text)")
        assert c.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True

    # the reverse: the same members back, no secret unless asked; asking is audited
    plain = admin.get(f"/api/v1/instances/{NAME}/inventory")
    assert plain.status_code == 200, plain.text
    exported = plain.json()
    assert exported["vars"]["pgaas_members"] == operator["vars"]["pgaas_members"]
    assert exported["inventory"]["all"]["vars"] == exported["vars"]
    assert "localhost" in exported["inventory"]["all"]["hosts"] and "secrets" not in exported
    secret_values = [v for v in _leaves(operator["secrets"]) if "CERTIFICATE" not in v]
    assert not [v for v in secret_values if v in plain.text]
    full = admin.get(f"/api/v1/instances/{NAME}/inventory?secrets=true").json()["secrets"]
    for k in ("pgaas_superuser_password", "pgaas_replication_password", "pgaas_restapi_password",
              "pgaas_admin_password", "pgaas_tls_ca_cert", "pgaas_tls_ca_key", "pgaas_tls_certs"):
        assert full[k] == operator["secrets"][k], k
    sealed = plane.app.extensions["pgaas"].box
    from webapp.services import instances as isvc
    with plane.app.extensions["pgaas"].store.session() as s:
        own_client = sealed.open(isvc.get(s, NAME).secrets_enc)["tls"]["client"]["key"]
    assert full["pgaas_tls_client"]["key"] != own_client  # the control plane's own key never leaves it
    assert admin.get(f"/api/v1/instances/{NAME}/inventory?secrets=maybe").status_code == 400
    actions = [e["action"] for e in admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]]
    assert actions.count("instance.inventory_secrets") == 1 and "instance.adopt" in actions, actions

    # the adoption job's run, as an operator replays it: no secret value in the answer; the command converges it
    r = admin.get(f"/api/v1/jobs/{job['id']}")
    (run,) = r.json()["replay"]
    assert not [v for v in secret_values if v in r.text]
    assert run["command"] == (f"ansible-playbook playbooks/instance_deploy.yml -i inventory/local/hosts.yml "
                              f"-e @pgaas-{NAME}.job-{job['id']}.vars.yml -e @pgaas-{NAME}.secrets.yml "
                              f"-e pgaas_secrets_file=$PWD/pgaas-{NAME}.secrets.yml")
    assert plane.alice.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    from ansible.parsing.utils.yaml import from_yaml
    assert from_yaml(run["vars"]) == exported["vars"]  # the vars file Ansible reads is the instance's vars

    # the website's job page shows the same command, no secret
    from tests.ui.conftest import web_session
    page = web_session(plane.base, "root", "root-password-1").get(f"{plane.base}/jobs/{job['id']}", timeout=30)
    assert "Replay with ansible-playbook" in page.text and shlex.quote(f"@pgaas-{NAME}.secrets.yml") in page.text
    assert not [v for v in secret_values if v in page.text]

    r = admin.delete(f"/api/v1/instances/{NAME}?force=true")
    assert r.status_code == 202, r.text
    admin.wait_ok(r.json()["job"]["id"], timeout=120)
    assert json.loads(admin.get("/api/v1/instances").text)["instances"] == []

"""Adoption's checks and what it stores, without a pair (no worker: the adoption job stays queued): certificates
the operator did not give (or that do not name what the control plane connects to) are issued from the operator's
CA, the given ones are kept; every refusal is a 4xx with a message; `pgaas instance adopt` reads the operator's
files and calls the same service. The pair itself, its converge and the export of a running instance are in
tests/e2e/test_adoption.py."""
from __future__ import annotations

import copy

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509

from tests.conftest import Live, make_app
from tests.e2e.test_adoption import _secrets, _write

NAME = "adopt-checks"


@pytest.fixture
def srv(tmp_path):
    s = Live(make_app(f"sqlite:///{tmp_path / 'pgaas.sqlite'}", tmp_path / "instance"), workers=0)
    yield s
    s.close()


def _body(name=NAME, port=33120):
    members = [{"name": f"pgaas-{name}-{i}", "host": "localhost", "pg_port": port + 2 * i,
                "api_port": port + 2 * i + 1} for i in range(2)]
    inventory = {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    return {"name": name, "inventory": inventory, "vars": {"pgaas_instance_name": name, "pgaas_members": members},
            "secrets": _secrets(name, [{**m, "address": "127.0.0.1"} for m in members])}


def _sealed_tls(srv, name):
    from webapp.services import instances as isvc

    svc = srv.app.extensions["pgaas"]
    with svc.store.session() as s:
        inst = isvc.get(s, name)
        return svc.box.open(inst.secrets_enc)["tls"], dict(inst.meta)


def test_missing_certificates_are_issued_from_the_operators_ca(srv):
    body = _body()
    given = body["secrets"]["pgaas_tls_certs"]
    del given[f"pgaas-{NAME}-1"]
    from webapp.services import certificates as c

    # member 0's certificate names 10.9.9.9, not the address the control plane connects to
    given[f"pgaas-{NAME}-0"] = dict(zip(("cert", "key"), c.issue(body["secrets"]["pgaas_tls_ca_cert"],
                                                                  body["secrets"]["pgaas_tls_ca_key"],
                                                                  f"pgaas-{NAME}-0", ["10.9.9.9"])))
    r = srv.admin.post("/api/v1/instances/adopt", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["job"]["kind"] == "instance_adopt" and r.json()["instance"]["status"] == "creating"
    assert r.json()["instance"]["admin_user"] == "adopt_checks_admin"  # the playbooks' default
    tls, meta = _sealed_tls(srv, NAME)
    assert sorted(meta["adopted"]["issued_certificates"]) == [f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"]
    assert tls["certs"][f"pgaas-{NAME}-etcd"] == given[f"pgaas-{NAME}-etcd"]  # kept as given
    ca = x509.load_pem_x509_certificate(body["secrets"]["pgaas_tls_ca_cert"].encode())
    for name in (f"pgaas-{NAME}-0", f"pgaas-{NAME}-1"):
        cert = x509.load_pem_x509_certificate(tls["certs"][name]["cert"].encode())
        cert.verify_directly_issued_by(ca)
        assert "127.0.0.1" in str(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    assert tls["ca_key"] == body["secrets"]["pgaas_tls_ca_key"]  # kept: the control plane renews with it
    x509.load_pem_x509_certificate(tls["client"]["cert"].encode()).verify_directly_issued_by(ca)
    events = srv.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
    assert [e["action"] for e in events] == ["instance.adopt"] and "certificates issued" in events[0]["detail"]
    # the same ports under another name are taken now
    r = srv.admin.post("/api/v1/instances/adopt", json=_body("adopt-second"))
    assert r.status_code == 409 and "port 33120 on host localhost is taken" in r.json()["error"]["message"]


REFUSALS = [
    (lambda b: b["vars"].update(pgaas_etcd_members=[{"name": f"pgaas-{NAME}-etcd-0", "host": "localhost",
                                                     "address": "127.0.0.1", "client_port": 33130,
                                                     "peer_port": 33131}]), 422, "must be empty with the local"),
    (lambda b: b["vars"].update(pgaas_image="quay.io/other:1"), 422, "but the control plane deploys"),
    (lambda b: b["secrets"]["pgaas_tls_certs"].update(
        {f"pgaas-{NAME}-0": _secrets(NAME, [{"name": f"pgaas-{NAME}-0", "address": "127.0.0.1"}])[
            "pgaas_tls_certs"][f"pgaas-{NAME}-0"]}), 422, "is not signed by pgaas_tls_ca_cert"),
    (lambda b: b["secrets"]["pgaas_tls_certs"].update({"pgaas-x-9": {"cert": "", "key": ""}}), 422,
     "not a container of this instance"),
    (lambda b: b["secrets"].update(pgaas_admin_password="has a space in it"), 422, "pgaas_admin_password may not"),
    (lambda b: b["inventory"]["all"].update(hosts={"other": None}), 422, "host 'localhost' of the vars is not in"),
    (lambda b: b["vars"]["pgaas_members"][0].update(pg_port=80), 422, "from 1024 to 65535"),
    (lambda b: b["vars"]["pgaas_members"][0].update(host=["localhost"]), 422, "is not one the control plane knows"),
    (lambda b: b["inventory"].update(all=[1]), 422, "inventory group 'all' must be a mapping"),
    (lambda b: b["secrets"].update(pgaas_tls_ca_cert=7), 422, "pgaas_tls_ca_cert must be a PEM certificate"),
    (lambda b: b["vars"]["pgaas_members"][1].update(pg_port=33120), 422, "is given twice"),
    (lambda b: b["vars"].update(pgaas_members=b["vars"]["pgaas_members"][:1]), 422, "pgaas_members must be a list"),
    (lambda b: b["vars"].update(pgaas_synchronous="yes"), 422, "pgaas_synchronous must be true or false"),
    (lambda b: b.update(vars=[1]), 422, "vars must be an object"),
    (lambda b: b.update(unknown=1), 400, "unknown"),
]


def test_refusals_are_4xx_with_a_message(srv):
    for change, status, words in REFUSALS:
        body = copy.deepcopy(_body())
        change(body)
        r = srv.admin.post("/api/v1/instances/adopt", json=body)
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.json()
    assert srv.admin.get("/api/v1/instances").json()["instances"] == []
    assert len([e for e in srv.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
                if e["action"] == "instance.adopt" and e["outcome"] == "failed"]) == len(REFUSALS) - 1


def test_cli_reads_the_operators_files_short_form_too(srv, tmp_path, monkeypatch):
    from webapp.cli import main

    body = _body()
    inv = _write(tmp_path / "hosts.yml", body["inventory"])
    # the operators' short form (examples/pair.yml): the same members as _body's
    vars_file = _write(tmp_path / "pair.yml", {"pgaas_instance_name": NAME, "pgaas_hosts": ["localhost"],
                                               "pgaas_member_count": 2, "pgaas_base_port": 33120})
    env = {"PGAAS_DATABASE_URL": srv.app.config["DATABASE_URL"], "PGAAS_INSTANCE_PATH": srv.app.config["INSTANCE_PATH"]}
    runner = CliRunner()
    r = runner.invoke(main, ["instance", "adopt", NAME, "--inventory", inv, "--vars", vars_file], env=env)
    assert r.exit_code == 1 and f"pgaas-{NAME}.secrets.yml" in r.output, r.output  # beside the inventory
    _write(tmp_path / f"pgaas-{NAME}.secrets.yml", yaml.safe_dump(body["secrets"]))
    r = runner.invoke(main, ["instance", "adopt", NAME, "--inventory", inv, "--vars", vars_file], env=env)
    assert r.exit_code == 0 and "adoption job" in r.output, r.output
    got = srv.admin.get(f"/api/v1/instances/{NAME}/inventory").json()
    assert got["vars"]["pgaas_members"] == [{**m, "address": "127.0.0.1"} for m in body["vars"]["pgaas_members"]]
    assert "secrets" not in got
    r = runner.invoke(main, ["instance", "adopt", NAME, "--inventory", inv, "--vars", vars_file], env=env)
    assert r.exit_code == 1 and "already exists" in r.output
    events = srv.admin.get(f"/api/v1/admin/audit?object={NAME}").json()["events"]
    actions = [(e["action"], e["outcome"]) for e in events]
    assert ("instance.adopt", "failed") in actions and ("instance.adopt", "ok") in actions, actions


def test_short_form_on_two_hosts_is_the_playbooks():
    """playbooks/vars/instance_defaults.yml's expansion: members round robin, an etcd member on each host (up to
    three) on the two ports after the members', addresses from the inventory."""
    from webapp.services.adoption import short_form

    v = short_form("two", {"pgaas_instance_name": "two", "pgaas_hosts": ["db1", "db2"], "pgaas_base_port": 30000,
                           "pgaas_member_count": 3},
                   {"db1": {"ansible_host": "192.0.2.11"}, "db2": {"pgaas_host_publish_address": "192.0.2.12"}})
    assert [(m["name"], m["host"], m["address"], m["pg_port"], m["api_port"]) for m in v["pgaas_members"]] == [
        ("pgaas-two-0", "db1", "192.0.2.11", 30000, 30001), ("pgaas-two-1", "db2", "192.0.2.12", 30002, 30003),
        ("pgaas-two-2", "db1", "192.0.2.11", 30004, 30005)]
    assert [(e["name"], e["host"], e["client_port"], e["peer_port"]) for e in v["pgaas_etcd_members"]] == [
        ("pgaas-two-etcd-0", "db1", 30006, 30007), ("pgaas-two-etcd-1", "db2", 30006, 30007)]

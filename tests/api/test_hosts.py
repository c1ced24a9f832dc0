"""Hosts API (ssh provider's machines): validation answers 4xx with a message, a stored key never comes back,
configured hosts are read-only, admins only."""
from __future__ import annotations

import json

from tests.conftest import Live, make_app

KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       "-----END OPENSSH PRIVATE KEY-----\n")


def test_register_list_show_delete_and_key_never_returned(live, tmp_path):
    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    r = live.admin.post("/api/v1/hosts", json={"name": "db1", "address": "10.0.0.11", "ssh_user": "debian",
                                               "private_key": KEY, "labels": {"rack": "a"}, "capacity": 2})
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith("/api/v1/hosts/db1")
    assert r.json()["key"] == {"type": "stored"}
    r = live.admin.post("/api/v1/hosts", json={"name": "db2", "address": "db2.example.net", "ssh_user": "root",
                                               "ssh_port": 2222, "key_path": str(keyfile)})
    assert r.status_code == 201, r.text
    assert r.json()["key"] == {"type": "path", "path": str(keyfile)}

    listed = live.admin.get("/api/v1/hosts")
    assert listed.status_code == 200
    hosts = {h["name"]: h for h in listed.json()["hosts"]}
    assert set(hosts) == {"db1", "db2"}
    assert hosts["db1"]["free"] == 2 and hosts["db1"]["used"] == 0 and hosts["db1"]["instances"] == []
    assert hosts["db1"]["labels"] == {"rack": "a"} and hosts["db2"]["ssh_port"] == 2222
    for path in ("/api/v1/hosts", "/api/v1/hosts/db1"):
        assert "PRIVATE KEY" not in live.admin.get(path).text
    # nor in the store in clear, nor in the audit log
    svc = live.app.extensions["pgaas"]
    from webapp.store.models import AuditEvent, Host

    with svc.store.session() as s:
        row = s.query(Host).filter_by(name="db1").one()
        assert "PRIVATE KEY" not in (row.key_enc or "") and row.key_enc
        assert all("PRIVATE KEY" not in (a.detail or "") for a in s.query(AuditEvent))

    assert live.admin.post("/api/v1/hosts", json={"name": "db1", "address": "10.0.0.12", "ssh_user": "debian",
                                                  "key_path": str(keyfile)}).status_code == 409
    assert live.admin.delete("/api/v1/hosts/db1").status_code == 204
    assert live.admin.get("/api/v1/hosts/db1").status_code == 404
    assert live.admin.delete("/api/v1/hosts/db1").status_code == 404


def test_validation_is_4xx_with_a_message(live, tmp_path):
    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    good = {"name": "db1", "address": "10.0.0.11", "ssh_user": "debian", "key_path": str(keyfile)}
    bad = [
        ({**good, "name": "Bad_Name"}, "name"),
        ({**good, "name": "localhost"}, "name"),
        ({**good, "address": "not an address!"}, "address"),
        ({**good, "ssh_user": "root; rm"}, "ssh_user"),
        ({**good, "ssh_port": 0}, "ssh_port"),
        ({**good, "ssh_port": "22"}, "ssh_port"),
        ({**good, "key_path": "relative/id"}, "key_path"),
        ({**good, "key_path": str(tmp_path / "missing")}, "key_path"),
        ({k: v for k, v in good.items() if k != "key_path"}, "key_path"),
        ({**good, "private_key": KEY}, "key_path"),
        ({**{k: v for k, v in good.items() if k != "key_path"}, "private_key": "hunter2"}, "private_key"),
        ({**good, "labels": ["a"]}, "labels"),
        ({**good, "labels": {"a": 1}}, "labels"),
        ({**good, "capacity": 0}, "capacity"),
        ({**good, "capacity": True}, "capacity"),
        ({**good, "colour": "red"}, "colour"),
        ({"address": "10.0.0.1", "ssh_user": "x"}, "name"),
    ]
    for body, field in bad:
        r = live.admin.post("/api/v1/hosts", json=body)
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
        err = r.json()["error"]
        assert err["message"] and field in err["message"] + json.dumps(err.get("details", {})), (body, err)
    r = live.admin.post("/api/v1/hosts", data="[1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert live.admin.get("/api/v1/hosts").json()["hosts"] == []


def test_admins_only(live):
    assert live.anon.get("/api/v1/hosts").status_code == 401
    assert live.alice.get("/api/v1/hosts").status_code == 403
    assert live.alice.post("/api/v1/hosts", json={}).status_code == 403
    assert live.alice.delete("/api/v1/hosts/x").status_code == 403


def test_configured_hosts_are_listed_and_read_only(tmp_path):
    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    conf = [{"name": "cfg1", "address": "10.1.0.1", "ssh_user": "pgaas", "key_path": str(keyfile), "capacity": 3}]
    srv = Live(make_app(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "instance", PROVIDER="ssh",
                        SSH_HOSTS=json.dumps(conf)), workers=0)
    try:
        hosts = srv.admin.get("/api/v1/hosts").json()
        assert hosts["provider"] == "ssh"
        assert [(h["name"], h["source"], h["free"]) for h in hosts["hosts"]] == [("cfg1", "config", 3)]
        r = srv.admin.delete("/api/v1/hosts/cfg1")
        assert r.status_code == 409 and "configuration" in r.json()["error"]["message"]
        assert srv.admin.post("/api/v1/hosts", json={**conf[0]}).status_code == 409
        # four members do not fit on hosts with room for three -> 409 with the reason, nothing created
        r = srv.admin.post("/api/v1/instances", json={"name": "toobig", "replicas": 3})
        assert r.status_code == 409 and "room" in r.json()["error"]["message"], r.text
        assert srv.admin.get("/api/v1/instances/toobig").status_code == 404
    finally:
        srv.close()

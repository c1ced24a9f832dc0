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


def _host_key(tmp_path, name="hostkey"):
    """A freshly generated ed25519 public key (the line of its .pub) and its SHA256 fingerprint per ssh-keygen."""
    import subprocess

    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    fp = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True, text=True).stdout
    return (tmp_path / f"{name}.pub").read_text().strip(), fp.split()[1]


def _pinned(known_hosts: str, name: str) -> str:
    import subprocess

    return subprocess.run(["ssh-keygen", "-F", name, "-f", known_hosts], capture_output=True, text=True).stdout


def test_host_key_validated_pinned_shown_replaced_and_removed(live, tmp_path):
    import os
    import stat

    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    good = {"name": "db1", "address": "10.0.0.11", "ssh_user": "debian", "ssh_port": 2222, "key_path": str(keyfile)}
    pub, fp = _host_key(tmp_path)
    pub2, fp2 = _host_key(tmp_path, "other")
    blob = pub.split()[1]
    for bad in ("garbage", "ssh-ed25519", "ssh-ed25519 not-base64!", f"ssh-rsa {blob}", "ssh-ed25519 AAAA",
                ["ok", 1], 42, "-----BEGIN OPENSSH PRIVATE KEY-----"):
        r = live.admin.post("/api/v1/hosts", json={**good, "host_key": bad})
        assert r.status_code == 422, (bad, r.status_code, r.text)  # the API's answer to an invalid field
        assert "host_key" in r.json()["error"]["message"], r.text
    assert live.admin.get("/api/v1/hosts").json()["hosts"] == []

    # ssh-keyscan's form ("<host> <type> <key>") is taken too
    r = live.admin.post("/api/v1/hosts", json={**good, "host_key": f"10.0.0.11 {pub}\n"})
    assert r.status_code == 201, r.text
    assert r.json()["host_keys"] == [{"type": "ssh-ed25519", "sha256": fp}]
    known = live.app.config["SSH_KNOWN_HOSTS"]
    assert stat.S_IMODE(os.stat(known).st_mode) == 0o600
    assert blob in _pinned(known, "[10.0.0.11]:2222")
    assert live.admin.get("/api/v1/hosts/db1").json()["host_keys"] == [{"type": "ssh-ed25519", "sha256": fp}]
    # another host, no host_key: nothing pinned until the first connection
    r = live.admin.post("/api/v1/hosts", json={**good, "name": "db2", "address": "10.0.0.12"})
    assert r.status_code == 201 and r.json()["host_keys"] == []

    # re-pinning (a reinstalled host): the old key goes, the new one is the only one
    assert live.admin.put("/api/v1/hosts/db1/host_key", json={"host_key": "nope"}).status_code == 422
    assert live.admin.put("/api/v1/hosts/db1/host_key", json={}).status_code == 400
    r = live.admin.put("/api/v1/hosts/db1/host_key", json={"host_key": pub2})
    assert r.status_code == 200 and r.json()["host_keys"] == [{"type": "ssh-ed25519", "sha256": fp2}], r.text
    assert blob not in _pinned(known, "[10.0.0.11]:2222")
    assert live.alice.put("/api/v1/hosts/db1/host_key", json={"host_key": pub}).status_code == 403
    assert live.admin.put("/api/v1/hosts/nope/host_key", json={"host_key": pub}).status_code == 404

    # delete removes the host's entries (and leaves no ssh-keygen backup behind)
    assert live.admin.delete("/api/v1/hosts/db1").status_code == 204
    assert _pinned(known, "[10.0.0.11]:2222") == ""
    assert not os.path.exists(known + ".old")


def test_configured_host_key_is_pinned(tmp_path):
    keyfile = tmp_path / "id"
    keyfile.write_text(KEY)
    pub, fp = _host_key(tmp_path)
    conf = [{"name": "cfg1", "address": "10.1.0.1", "ssh_user": "pgaas", "key_path": str(keyfile), "host_key": pub}]
    srv = Live(make_app(f"sqlite:///{tmp_path / 'm.sqlite'}", tmp_path / "instance", PROVIDER="ssh",
                        SSH_HOSTS=json.dumps(conf)), workers=0)
    try:
        assert srv.admin.get("/api/v1/hosts/cfg1").json()["host_keys"] == [{"type": "ssh-ed25519", "sha256": fp}]
        r = srv.admin.put("/api/v1/hosts/cfg1/host_key", json={"host_key": None})
        assert r.status_code == 409 and "configuration" in r.json()["error"]["message"]
        # every run's inventory pins it, with strict checking against the control plane's file
        provider = srv.app.extensions["pgaas"].provider
        inv = _load_inventory(provider.inventory(tmp_path))["all"]["hosts"]["cfg1"]
        known = srv.app.config["SSH_KNOWN_HOSTS"]
        assert pub.split()[1] in _pinned(known, "10.1.0.1")
        assert inv["ansible_host_key_checking"] is True
        assert f"StrictHostKeyChecking=accept-new -o UserKnownHostsFile={known}" in inv["ansible_ssh_common_args"]
    finally:
        srv.close()


def _load_inventory(path: str) -> dict:
    """The provider's inventory is YAML whose template-like strings are tagged !unsafe (Ansible's tag)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    with open(path) as f:
        return yaml.load(f, Loader=Loader)  # noqa: S506 (SafeLoader with one more tag)

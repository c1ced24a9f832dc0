"""The admin's host page: hosts with used/free capacity, registering one with a pasted key (stored, never shown
again, not even after an error) and optionally its host key (fingerprint shown), errors beside the field, CSRF on
the forms, removal, admins only."""
from __future__ import annotations

from tests.api.test_hosts import KEY, _host_key
from tests.ui.conftest import csrf_token, web_session


def test_hosts_page_register_error_and_remove(live, tmp_path):
    s = web_session(live.base, "root", "root-password-1")
    page = s.get(live.base + "/hosts", timeout=30)
    assert page.status_code == 200 and "No hosts yet" in page.text
    form = {"name": "db1", "address": "10.0.0.11", "ssh_user": "debian", "ssh_port": "22", "private_key": KEY,
            "labels": "rack=a, zone=1", "capacity": "2"}
    # without the page's token: refused, nothing registered
    assert s.post(live.base + "/hosts", data=form, timeout=30).status_code == 400
    # a bad address: the message beside the field, and the pasted key is not sent back
    r = s.post(live.base + "/hosts", data={**form, "address": "not an address!",
                                           "csrf_token": csrf_token(page.text)}, timeout=30)
    assert r.status_code == 200 and "address must be an IP address" in r.text
    assert "PRIVATE KEY" not in r.text
    # a bad host key: its message beside its field; then a good one, whose fingerprint the list shows
    assert 'name="host_key"' in page.text and "Host public key" in page.text
    r = s.post(live.base + "/hosts", data={**form, "host_key": "ssh-ed25519 garbage!",
                                           "csrf_token": csrf_token(r.text)}, timeout=30)
    assert r.status_code == 200 and "host_key: the ssh-ed25519 key is not valid" in r.text
    assert 'id="host_key-error"' in r.text
    assert "PRIVATE KEY" not in r.text
    pub, fp = _host_key(tmp_path)
    r = s.post(live.base + "/hosts", data={**form, "host_key": pub, "csrf_token": csrf_token(r.text)}, timeout=30)
    assert r.status_code == 200 and "Host db1 was registered" in r.text
    assert fp in r.text
    assert "stored (encrypted)" in r.text and "PRIVATE KEY" not in r.text
    assert "rack=a" in r.text and "0 / 2" in r.text
    assert [h["name"] for h in live.admin.get("/api/v1/hosts").json()["hosts"]] == ["db1"]
    r = s.post(live.base + "/hosts/db1/delete", data={"csrf_token": csrf_token(r.text)}, timeout=30)
    assert r.status_code == 200 and "Host db1 was removed" in r.text
    assert live.admin.get("/api/v1/hosts").json()["hosts"] == []
    alice = web_session(live.base, "alice", "alice-password-1")
    assert alice.get(live.base + "/hosts", timeout=30).status_code == 403

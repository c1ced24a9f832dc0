"""TLS on every hop (issue 12), attacked on a real pair: clients without TLS, without the instance's CA, or without
a client certificate of it are refused by PostgreSQL, Patroni's REST API and etcd; the printed URI with only the
downloaded CA certificate connects with sslmode=verify-full; no key reaches a job's artifacts or events; a renewal
puts new certificates in place without a restart."""
from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.e2e.helpers import INST, PODMAN_ENV, patroni_tls, secrets_of
from webapp.services import certificates

pytestmark = pytest.mark.slow


def _inst(cp) -> dict:
    return cp.admin.get(f"/api/v1/instances/{INST}").json()


def _members(cp) -> list:
    from webapp.services import instances as isvc

    svc = cp.app.extensions["pgaas"]
    with svc.store.session() as s:
        return [(m.name, m.address, m.pg_port, m.api_port) for m in isvc.get(s, INST).members]


def _download_ca(cp, where: Path) -> Path:
    r = cp.admin.get(f"/api/v1/instances/{INST}/ca.crt")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/x-pem-file")
    assert f'filename="pgaas-{INST}-ca.crt"' in r.headers["Content-Disposition"]
    assert r.text.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" not in r.text
    path = where / f"pgaas-{INST}-ca.crt"
    path.write_text(r.text)
    return path


def test_printed_uri_connects_with_only_the_downloaded_ca_and_plain_is_refused(cp, pair, tmp_path, monkeypatch):
    inst = _inst(cp)
    uri = inst["uri"]
    assert "sslmode=verify-full" in uri and f"sslrootcert=pgaas-{INST}-ca.crt" in uri, uri
    _download_ca(cp, tmp_path)
    monkeypatch.chdir(tmp_path)  # the URI names the CA file relative to where the client runs
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": pair["admin_password"], "HOME": str(tmp_path),
           "PGCONNECT_TIMEOUT": "5"}
    # psql, with nothing but the downloaded CA file (an empty HOME: no ~/.postgresql)
    sql = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
    out = subprocess.run(["psql", "-XAtq", uri, "-c", sql], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("t|TLSv1."), out
    with psycopg.connect(uri, password=pair["admin_password"], connect_timeout=5) as c:
        assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (True,)
    # the same server without TLS: refused by the server (no pg_hba line for a connection without encryption)
    host, port = inst["primary"]["address"], inst["primary"]["port"]
    for user, pw, db in (("dbadmin", pair["admin_password"], "app"),
                         ("postgres", secrets_of(cp, INST)["pgaas_superuser_password"], "postgres")):
        with pytest.raises(psycopg.OperationalError) as err:
            psycopg.connect(host=host, port=port, user=user, password=pw, dbname=db, sslmode="disable",
                            connect_timeout=5)
        assert "no encryption" in str(err.value), err.value
    # a server certificate from another CA (a man in the middle) is refused with verify-full
    other_ca, _ = certificates.new_ca("someone-else")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / f"pgaas-{INST}-ca.crt").write_text(other_ca)
    monkeypatch.chdir(tmp_path / "other")
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(uri, password=pair["admin_password"], connect_timeout=5)
    assert "certificate verify failed" in str(err.value), err.value


def test_replication_runs_over_tls(cp, pair):
    primary = _inst(cp)["primary"]
    with psycopg.connect(host=primary["address"], port=primary["port"], user="postgres", dbname="postgres",
                         password=secrets_of(cp, INST)["pgaas_superuser_password"], sslmode="verify-full",
                         sslrootcert=certificates.ca_file(_instance_row(cp)), connect_timeout=5) as c:
        rows = c.execute("select r.state, s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid)").fetchall()
    assert rows and all(r == ("streaming", True) for r in rows), rows


def _instance_row(cp):
    from webapp.services import instances as isvc

    svc = cp.app.extensions["pgaas"]
    with svc.store.session() as s:
        inst = isvc.get(s, INST)
        s.expunge(inst)
        return inst


def _get(url: str, ctx=None, auth: str | None = None, method: str = "GET"):
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    req = urllib.request.Request(url, method=method, headers=headers, data=b"{}" if method != "GET" else None)
    with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
        return r.status, r.read()


def _refused(url: str, ctx=None, **kw) -> str:
    try:
        status, body = _get(url, ctx, **kw)
    except urllib.error.HTTPError as exc:
        return f"http {exc.code}"
    except (OSError, ssl.SSLError) as exc:
        return f"refused: {exc}"
    raise AssertionError(f"{url} answered {status}: {body[:200]!r}")


def _ca_only_context(cp) -> ssl.SSLContext:
    """Trusts the instance's CA, presents no client certificate: someone who downloaded the CA."""
    return ssl.create_default_context(cadata=cp.admin.get(f"/api/v1/instances/{INST}/ca.crt").text)


def test_patroni_rest_api_answers_only_https_with_a_client_certificate_of_the_instance(cp, pair):
    name, address, _, api_port = _members(cp)[0]
    base = f"https://{address}:{api_port}"
    for path in ("/cluster", "/config", "/history", "/patroni"):
        assert _refused(f"http://{address}:{api_port}{path}").startswith("refused"), path  # no plain HTTP
        assert _refused(base + path, _ca_only_context(cp)).startswith("refused"), path  # no client certificate
    # a client certificate from another CA: refused too
    other_ca, other_key = certificates.new_ca("someone-else")
    cert, key = certificates.issue(other_ca, other_key, "intruder", [], server=False)
    intruder = certificates.client_context(cp.admin.get(f"/api/v1/instances/{INST}/ca.crt").text, cert, key)
    assert _refused(base + "/cluster", intruder).startswith("refused")
    # the control plane's own certificate: answered
    ctx = patroni_tls(cp, INST)
    status, body = _get(base + "/cluster", ctx)
    assert status == 200 and json.loads(body)["members"]
    # an unsafe request still needs the REST API password besides the certificate
    assert _refused(base + "/restart", ctx, method="POST") == "http 401"


def _etcd_endpoint(cp) -> str:
    from webapp.services.leader_guard import dcs_endpoints

    svc = cp.app.extensions["pgaas"]
    endpoints = dcs_endpoints(_instance_row(cp), svc.provider)
    assert endpoints and endpoints[0].startswith("https://"), endpoints
    return endpoints[0]


def test_etcd_talks_only_to_holders_of_a_certificate_of_the_instance(cp, pair):
    endpoint = _etcd_endpoint(cp)
    key = base64.b64encode(f"/pgaas/{INST}/leader".encode()).decode()
    body = json.dumps({"key": key}).encode()

    def post(url, ctx, path="/v3/kv/range", data=body):
        req = urllib.request.Request(url + path, data=data, method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return json.load(r)

    ca_only = _ca_only_context(cp)
    ca_only.check_hostname = False
    for ctx, url in ((None, endpoint.replace("https://", "http://")), (ca_only, endpoint)):
        with pytest.raises((OSError, ssl.SSLError)):
            post(url, ctx)  # read the leader key
        with pytest.raises((OSError, ssl.SSLError)):  # or take the instance over by rewriting it
            post(url, ctx, "/v3/kv/put", json.dumps({"key": key, "value": base64.b64encode(b"x").decode()}).encode())
    # the control plane's certificate reads it (the leader guard's way)
    ctx = certificates.context_for(_instance_row(cp), check_hostname=False)
    kvs = post(endpoint, ctx).get("kvs") or []
    assert kvs and base64.b64decode(kvs[0]["value"]).decode() == _inst(cp)["primary"]["name"]


def test_no_key_reaches_a_jobs_artifacts_or_events(cp, pair):
    secrets = secrets_of(cp, INST)
    tls = secrets["tls"]
    keys = [tls["ca_key"], tls["client"]["key"], *(c["key"] for c in tls["certs"].values())]
    bodies = [line for k in keys for line in k.splitlines() if "PRIVATE KEY" not in line and len(line) >= 16]
    jobs = cp.admin.get(f"/api/v1/jobs?instance={INST}").json()["jobs"]
    assert jobs
    jobs_dir = Path(cp.app.config["JOBS_DIR"])
    seen_files = 0
    for j in jobs:
        job = cp.admin.get(f"/api/v1/jobs/{j['id']}").json()
        text = json.dumps(job)
        assert not any(b in text for b in bodies), f"a key in the events of job {j['id']}"
        for path in (jobs_dir / str(j["id"])).rglob("*"):
            if path.is_file():
                seen_files += 1
                data = path.read_bytes().decode(errors="replace")
                assert not any(b in data for b in bodies), f"a key in {path}"
    assert seen_files > 0  # the artifacts were there to search


def test_certificates_are_renewed_in_place_and_shown(cp, pair, monkeypatch):
    before = _inst(cp)["tls"]
    assert before["active"] and before["not_after"] and before["ca_cert_url"].endswith("/ca.crt"), before
    name, address, _, api_port = _members(cp)[0]
    old_leaf = _served_cert(address, api_port, patroni_tls(cp, INST))
    containers_before = {c: _started_at(c) for c in (m[0] for m in _members(cp))}
    # the maintenance queues a renewal when fewer than TLS_RENEW_DAYS are left (here: any)
    svc = cp.app.extensions["pgaas"]
    with svc.store.session() as s:
        queued = certificates.renew_due(s, renew_days=100000)
    job_id = next(j.id for j in queued if j.instance_name == INST)
    job = cp.admin.wait_job(job_id, timeout=180)
    assert job["status"] == "succeeded", (job["error"], job["events"][-5:])
    after = _inst(cp)["tls"]
    assert after["active"] and after["issued_at"] > before["issued_at"] and not after["renewing"], after
    assert after["ca_fingerprint_sha256"] == before["ca_fingerprint_sha256"]  # same CA: clients keep theirs
    new_leaf = _served_cert(address, api_port, patroni_tls(cp, INST))
    assert new_leaf != old_leaf  # Patroni serves the new certificate ...
    assert {c: _started_at(c) for c in containers_before} == containers_before  # ... and nothing restarted
    sealed = secrets_of(cp, INST)["tls"]["certs"][name]["cert"]
    assert ssl.DER_cert_to_PEM_cert(new_leaf).strip() == sealed.strip()
    # PostgreSQL serves it too (openssl's STARTTLS for postgres)
    out = subprocess.run(["openssl", "s_client", "-starttls", "postgres", "-connect", f"127.0.0.1:{_members(cp)[0][2]}",
                          "-showcerts"], input="", capture_output=True, text=True, timeout=30)
    assert sealed.strip().splitlines()[1] in out.stdout, out.stdout[-2000:]
    # and the printed URI still connects with the same downloaded CA
    uri = _inst(cp)["uri"]
    with psycopg.connect(uri + f"&sslrootcert={certificates.ca_file(_instance_row(cp))}".replace(
            f"sslrootcert=pgaas-{INST}-ca.crt&", ""), password=pair["admin_password"], connect_timeout=5) as c:
        assert c.execute("select 1").fetchone() == (1,)


def _served_cert(address: str, port: int, ctx) -> bytes:
    import socket

    with socket.create_connection((address, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=address) as tls:
            return tls.getpeercert(binary_form=True)


def _started_at(container: str) -> str:
    return subprocess.run(["podman", "inspect", "--format", "{{.State.StartedAt}}", container], capture_output=True,
                          text=True, env=PODMAN_ENV, check=True).stdout.strip()


def test_pages_offer_the_ca_certificate_and_show_when_certificates_end(cp, pair):
    from tests.ui.conftest import web_session

    web = web_session(cp.base, "root", "root-password-1")
    page = web.get(f"{cp.base}/instances/{INST}").text
    assert f"/instances/{INST}/ca.crt" in page and f"pgaas-{INST}-ca.crt" in page
    assert 'id="tls-expiry"' in page and "days left" in page
    r = web.get(f"{cp.base}/instances/{INST}/ca.crt")
    assert r.status_code == 200 and r.text.startswith("-----BEGIN CERTIFICATE-----")


def test_a_tenant_gets_the_ca_for_their_database_and_connects_with_verify_full(cp, pair, tmp_path, monkeypatch):
    for name in ("tls-tenant", "tls-outsider"):
        r = cp.admin.post("/api/v1/users", json={"username": name, "password": f"{name}-password-1"})
        assert r.status_code in (201, 409), r.text
    tenant = cp.anon.as_user("tls-tenant", "tls-tenant-password-1")
    outsider = cp.anon.as_user("tls-outsider", "tls-outsider-password-1")
    r = tenant.post(f"/api/v1/instances/{INST}/databases", json={"name": "tls_tenant_db"})
    assert r.status_code == 201, r.text
    db = r.json()["database"]
    password = db["password"]
    assert db["ca_cert_url"].endswith(f"/instances/{INST}/ca.crt") and "sslmode=verify-full" in db["uri"], db
    try:
        # the instance is then restricted to others: the tenant keeps their database, its URI and its CA
        assert cp.admin.put(f"/api/v1/instances/{INST}/access", json={"users": []}).status_code == 200
        r = tenant.get(f"/api/v1/instances/{INST}/ca.crt")
        assert r.status_code == 200 and r.text == cp.admin.get(f"/api/v1/instances/{INST}/ca.crt").text
        r = outsider.get(f"/api/v1/instances/{INST}/ca.crt")  # not open to them, no database there: no instance
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json"), r.text
        (tmp_path / f"pgaas-{INST}-ca.crt").write_text(tenant.get(f"/api/v1/instances/{INST}/ca.crt").text)
        monkeypatch.chdir(tmp_path)
        with psycopg.connect(db["uri"], password=password, connect_timeout=5) as c:
            assert c.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone() == (True,)
    finally:
        cp.admin.put(f"/api/v1/instances/{INST}/access", json={"users": None})
        r = cp.admin.delete(f"/api/v1/instances/{INST}/databases/tls_tenant_db")
        if r.status_code == 202:  # the delete is a job (a final dump, then the drop): the next test finds it done
            cp.admin.wait_ok(r.json()["job"]["id"])

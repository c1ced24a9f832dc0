"""The console command, run as a real process: `pgaas run` serves the API with workers and prints the first
admin's login once; `pgaas user create` makes users."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import free_port

PGAAS = str(Path(sys.executable).parent / "pgaas")


def env_for(tmp_path):
    return {**os.environ, "PGAAS_INSTANCE_PATH": str(tmp_path / "instance"), "PYTHONUNBUFFERED": "1"}


def start_run(port, env) -> tuple[subprocess.Popen, str]:
    """Start `pgaas run`; return the process and what it printed until it serves."""
    proc = subprocess.Popen([PGAAS, "run", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = ""
    deadline = time.monotonic() + 60
    while "serving" not in out and time.monotonic() < deadline and proc.poll() is None:
        out += proc.stdout.readline()
    return proc, out


def test_run_prints_the_admin_login_once_and_serves_the_api(tmp_path):
    port = free_port()
    env = env_for(tmp_path)
    proc, out = start_run(port, env)
    try:
        password = re.search(r"password: (\S+)", out).group(1)
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                if requests.get(base + "/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        r = requests.post(base + "/api/v1/tokens", json={"username": "admin", "password": password}, timeout=10)
        assert r.status_code == 201 and r.json()["is_admin"] is True
        r = requests.get(base + "/api/v1/instances", headers={"Authorization": f"Bearer {r.json()['token']}"},
                         timeout=10)
        assert r.status_code == 200 and r.json()["instances"] == []
        assert oct((tmp_path / "instance").stat().st_mode & 0o777) == "0o700"
        assert oct((tmp_path / "instance" / "encryption.key").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # a second start does not print (or reset) the password again
    proc, out = start_run(port, env)
    try:
        assert "serving" in out and "password" not in out
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_user_create(tmp_path):
    env = env_for(tmp_path)
    r = subprocess.run([PGAAS, "user", "create", "bob"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and re.search(r"password: \S{16,}", r.stdout)
    r = subprocess.run([PGAAS, "user", "create", "carol", "--admin", "--password-stdin"], env=env,
                       input="carol-password-1\n", capture_output=True, text=True)
    assert r.returncode == 0 and "administrator carol" in r.stdout and "password" not in r.stdout
    r = subprocess.run([PGAAS, "user", "create", "carol", "--password-stdin"], env=env, input="another-pass-1\n",
                       capture_output=True, text=True)
    assert r.returncode != 0 and "already exists" in r.stderr
    r = subprocess.run([PGAAS, "user", "create", "Bad Name"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "username must be" in r.stderr and "Traceback" not in r.stderr


def test_instance_show_and_a_pruned_job_without_a_request(tmp_path):
    """`pgaas instance show` prints the API's shape, its URLs included, with no request to build them in; `pgaas
    job follow` of a job past its retention says its events were pruned."""
    import json

    from webapp.store import Store
    from webapp.store.models import Instance, Job, utcnow

    env = env_for(tmp_path)
    assert subprocess.run([PGAAS, "user", "create", "bob"], env=env, capture_output=True).returncode == 0
    store = Store(f"sqlite:///{tmp_path / 'instance' / 'pgaas.sqlite'}")
    with store.session() as s:
        s.add(Instance(name="main", status="failed", provider="local", admin_user="dbadmin", secrets_enc="x",
                       meta={"tls": {"ca_cert": "-----BEGIN CERTIFICATE-----", "active": True}}))
        job = Job(kind="instance_create", status="failed", instance_name="main", error="it broke",
                  finished_at=utcnow(), events_pruned_at=utcnow())
        s.add(job)
        s.flush()
        job_id = job.id
    store.dispose()
    r = subprocess.run([PGAAS, "instance", "show", "main"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["url"] == "/api/v1/instances/main" and body["tls"]["ca_cert_url"] == "/api/v1/instances/main/ca.crt"
    r = subprocess.run([PGAAS, "job", "follow", str(job_id)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout.splitlines() == [
        f"job {job_id}: its events were pruned after the retention period (JOB_RETENTION_DAYS)",
        f"job {job_id}: failed: it broke"], r.stdout + r.stderr


def test_console_actions_are_audited_like_the_api_and_the_website(tmp_path):
    """The CLI's creates and deletes land in the audit log as cli:<os user>, refusals included."""
    env = env_for(tmp_path)

    def pgaas(*args):
        return subprocess.run([PGAAS, *args], env=env, capture_output=True, text=True, timeout=120)

    assert pgaas("user", "create", "carol").returncode == 0
    assert pgaas("user", "create", "Not A Name").returncode != 0
    created = pgaas("instance", "create", "cliaudit")  # no worker runs: the job stays queued
    assert created.returncode == 0, created.stderr
    bad = pgaas("instance", "create", "Bad_Name")
    assert bad.returncode != 0 and "name" in bad.stderr
    busy = pgaas("instance", "delete", "cliaudit")  # its create is still queued: refused
    assert busy.returncode != 0

    from webapp import create_app
    from webapp.services import audit

    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance")})
    with app.extensions["pgaas"].store.session() as s:
        rows = [(e.actor.split(":")[0], e.action, e.object_name, e.outcome) for e in reversed(audit.list_events(s))]
    assert [r for r in rows if r[0] == "cli"] == [
        ("cli", "user.create", "carol", "ok"), ("cli", "user.create", "Not A Name", "failed"),
        ("cli", "instance.create", "cliaudit", "ok"), ("cli", "instance.create", "Bad_Name", "failed"),
        ("cli", "instance.delete", "cliaudit", "failed")]

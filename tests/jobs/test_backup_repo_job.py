"""The backup_repo job for real: a real worker runs the real playbooks/backup_repo.yml (ansible-runner, podman) with
what the control plane built (the clients from the store, the sealed repository secrets), in a repository container
of this test's own (BACKUP_REPO_NAME). Then the repository host answers over mutual TLS on its port: a member's
certificate issued by the control plane's backup CA is accepted and the server's certificate verifies against that
CA under the address the members are given; a certificate from another CA is refused."""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import REPO, Live, make_app

PROJECT = REPO
IMAGE = os.environ.get("PGAAS_IMAGE", "localhost/pgaas-postgres:15")  # the image setup.sh builds, with pgBackRest
NAME, PORT = "pgaas-backup-repo-bkctl", 36191


def podman(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")})


@pytest.fixture
def srv(tmp_path):
    repo_dir = Path(tempfile.mkdtemp(prefix="pgaas-bkctl-repo-"))
    live = Live(make_app(f"sqlite:///{tmp_path / 'pgaas.sqlite'}", tmp_path / "instance", PROJECT_DIR=str(PROJECT),
                         IMAGE=IMAGE, PORT_RANGE_START=36100, PORT_RANGE_END=36189, BACKUPS_ENABLED=True,
                         BACKUP_REPO_NAME=NAME, BACKUP_REPO_PORT=PORT, BACKUP_REPO_HOST="127.0.0.1",
                         BACKUP_REPO_DIR=str(repo_dir)), workers=0)
    yield live
    live.close()
    podman("rm", "-f", "-t", "0", NAME)
    shutil.rmtree(f"/var/lib/pgaas/{NAME}", ignore_errors=True)
    shutil.rmtree(repo_dir, ignore_errors=True)


def handshake(ca: str, cert: str, key: str, tmp: Path) -> str:
    """A TLS handshake with the repository host as a client with this certificate: the server's certificate
    subject CN, or the error."""
    for n, pem in (("ca", ca), ("cert", cert), ("key", key)):
        (tmp / n).write_text(pem)
    ctx = ssl.create_default_context(cafile=str(tmp / "ca"))
    ctx.load_cert_chain(str(tmp / "cert"), str(tmp / "key"))
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.write(b"\n")  # TLS 1.3: the server's verdict on the client certificate comes after the handshake
                tls.settimeout(5)
                try:
                    tls.recv(1)
                except (TimeoutError, socket.timeout):
                    pass
                return dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def test_the_repository_job_runs_the_play_and_lets_the_members_in(srv, tmp_path):
    from webapp.services import backups, certificates
    from webapp.services import instances as isvc
    from webapp.store.models import Job

    assert srv.admin.post("/api/v1/instances", json={"name": "bkctl-r"}).status_code == 202
    svc = srv.app.extensions["pgaas"]
    worker = svc.make_worker(maintenance=False)
    with svc.store.session() as s:  # the create's prepare gives it backups and queues the repository's job
        create = s.scalar(select(Job).where(Job.kind == "instance_create"))
        worker.handlers["instance_create"].prepare(s, create)
        create.status = "canceled"  # no deploy here: only the repository host is under test
        assert not backups.repo_current(s)
    started = time.monotonic()
    job_id = worker.run_one()
    job = srv.admin.wait_job(job_id, timeout=240)
    assert job["kind"] == "backup_repo" and job["status"] == "succeeded", (job["error"], job["events"][-5:])
    print(f"backup_repo job: {time.monotonic() - started:.1f} s")
    with svc.store.session() as s:
        assert backups.repo_current(s)
        inst = isvc.get(s, "bkctl-r")
        tls = svc.box.open(inst.secrets_enc)["pgaas_backup_tls"]
        stanza = backups.stanza_of(s, inst).stanza
    conf = Path(f"/var/lib/pgaas/{NAME}/pgbackrest.conf").read_text()
    assert f"tls-server-auth=pgaas-bkctl-r-0={stanza}" in conf and f"tls-server-auth=pgaas-bkctl-r-1={stanza}" in conf
    assert "cipher-pass" in conf and "cipher-pass" not in str(job)  # the key reached the config, not the job

    member = tls["members"]["pgaas-bkctl-r-0"]
    for _ in range(20):  # the server may take a moment to listen after the container starts
        answer = handshake(tls["ca_cert"], member["cert"], member["key"], tmp_path)
        if not answer.startswith("refused") or "Connection refused" not in answer:
            break
        time.sleep(0.5)
    assert answer == backups.REPO_CN, answer
    print(f"member certificate: accepted, server {answer}")
    other_ca, other_key = certificates.new_ca("stranger")
    cert, key = certificates.issue(other_ca, other_key, "pgaas-bkctl-r-0", ["pgaas-bkctl-r-0"])
    stranger = handshake(tls["ca_cert"] + other_ca, cert, key, tmp_path)
    print(f"certificate of another CA: {stranger}")
    assert stranger.startswith("refused") and ("unknown ca" in stranger.lower() or "certificate" in stranger), stranger

    # the machine restarted with the repository stopped: the control plane's start queues one repository job
    # (audited), which starts the container again; with backups off, or while that job waits, nothing more
    from webapp.services import startup
    assert podman("stop", "-t", "5", NAME).returncode == 0
    assert podman("inspect", "--format", "{{.State.Status}}", NAME).stdout.strip() == "exited"
    assert startup.start_repo(svc.store.session, False) is None
    first = startup.start_repo(svc.store.session, True)
    assert first is not None and first.created_by == "pgaas-startup"
    assert startup.start_repo(svc.store.session, True) is None  # one is queued already
    job = srv.admin.wait_job(worker.run_one(), timeout=240)
    assert job["id"] == first.id and job["status"] == "succeeded", (job["error"], job["events"][-5:])
    assert podman("inspect", "--format", "{{.State.Status}}", NAME).stdout.strip() == "running"
    audit = srv.admin.get("/api/v1/admin/audit?actor=pgaas-startup").json()["events"]
    assert [e["action"] for e in audit] == ["backup.repo_start"], audit

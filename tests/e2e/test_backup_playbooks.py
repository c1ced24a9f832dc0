"""The Ansible side of backups (issue 15, docs/backups-design.md), with real ansible-playbook runs, real pgBackRest
and a real pair on this machine: the repository host (playbooks/backup_repo.yml) converges and reloads, a pair
deployed with backups archives its WAL there, playbooks/instance_backup.yml takes a full backup from the standby
and reports it, a member's certificate opens only its own stanza, and the instance's teardown leaves the
repository alone.

The image is the project's (scripts/setup.sh builds it with pgBackRest)."""
from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.conftest import REPO
from tests.e2e.helpers import leftovers, podman, remove_leftovers

NAME = "bkcore-pair"
STANZA = f"{NAME}-7"
OTHER_STANZA = "bkcore-other-8"           # another tenant's stanza: the pair's certificates must not open it
BASE = int(os.environ.get("PGAAS_BKCORE_BASE_PORT", "36010"))
REPO_PORT = BASE + 40
REPO_NAME = "pgaas-bkcore-repo"           # not the control plane's pgaas-backup-repo: tests run beside one
IMAGE = os.environ.get("PGAAS_IMAGE", "localhost/pgaas-postgres:15")  # the image setup.sh builds, with pgBackRest
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
MEMBERS = [{"name": f"pgaas-{NAME}-{i}", "host": "localhost", "address": "127.0.0.1", "pg_port": BASE + 3 * i,
            "api_port": BASE + 3 * i + 1, "backup_port": BASE + 3 * i + 2} for i in range(2)]
BACKUP = {"enabled": True, "stanza": STANZA, "repo_host": "host.containers.internal", "repo_port": REPO_PORT,
          "repo_container": REPO_NAME}



def play(tmp: Path, playbook: str, extravars: dict, check: bool = True, json_out: bool = False):
    """ansible-playbook with the extravars in a file (as the control plane passes them) and this test's inventory."""
    vars_file = tmp / f"{playbook}.vars.json"
    vars_file.write_text(json.dumps(extravars))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    if json_out:
        env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_SHOW_CUSTOM_STATS="1")
    started = time.monotonic()
    out = subprocess.run([PLAYBOOK, f"playbooks/{playbook}", "-i", str(tmp / "hosts.yml"), "-e", f"@{vars_file}"],
                         cwd=REPO, capture_output=True, text=True, env=env)
    print(f"{playbook} took {time.monotonic() - started:.1f} s")
    if check:
        failed = "\n".join(line for line in out.stdout.splitlines() if "fatal:" in line or "failed:" in line)
        assert out.returncode == 0, failed[-5000:] + out.stdout[-3000:] + out.stderr[-2000:]
    return out


def changed(out) -> dict[str, int]:
    recap = out.stdout.split("PLAY RECAP", 1)[1]
    return {h: int(n) for h, n in re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", recap, re.M)}


def result(out) -> dict:
    return json.loads(out.stdout)["global_custom_stats"]["pgaas_result"]


def issue(ca: str, ca_key: str, cn: str, names: list[str]) -> dict:
    """A backup certificate (the control plane's helper): IP addresses named as DNS names too, since pgBackRest
    2.45 compares the host it dials only with the CN and the DNS names."""
    from webapp.services import certificates

    cert, key = certificates.issue(ca, ca_key, cn, names, ip_as_dns=True)
    return {"cert": cert, "key": key}


def backup_tls() -> dict:
    """The backup CA (the control plane's own helper), the repository host's certificate and one per member; a
    member of another instance too."""
    from webapp.services import certificates

    ca, ca_key = certificates.new_ca("backup")
    local = ["localhost", "127.0.0.1"]
    repo_names = ["pgaas-backup-repo", BACKUP["repo_host"], *local]
    return {"ca": ca, "repo": issue(ca, ca_key, "pgaas-backup-repo", repo_names),
            "members": {m["name"]: issue(ca, ca_key, m["name"], [m["name"], m["address"], *local]) for m in MEMBERS},
            "other": issue(ca, ca_key, "pgaas-bkcore-other-0", ["pgaas-bkcore-other-0", *local])}


def cleanup(tmp: Path | None = None) -> None:
    remove_leftovers(NAME)
    subprocess.run(["podman", "rm", "-f", "-t", "0", REPO_NAME], capture_output=True,
                   env={**os.environ, "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")})
    shutil.rmtree(f"/var/lib/pgaas/instances/{NAME}", ignore_errors=True)
    shutil.rmtree(f"/var/lib/pgaas/{REPO_NAME}", ignore_errors=True)
    if tmp is not None:
        shutil.rmtree(tmp / "repository", ignore_errors=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bkcore")
    shutil.copy(REPO / "inventory" / "example" / "hosts.yml", tmp / "hosts.yml")
    cleanup()
    tls = backup_tls()
    repo_secrets = tmp / "repo.secrets.yml"
    repo_secrets.write_text(yaml.safe_dump({"pgaas_backup_repo_secrets": {
        "cipher_pass": base64.b64encode(secrets.token_bytes(48)).decode(), "ca_cert": tls["ca"],
        "cert": tls["repo"]["cert"], "key": tls["repo"]["key"]}}))
    repo_secrets.chmod(0o600)
    # the deploy's secrets: the operator's file beside the inventory, which the deploy completes (it keeps what
    # it finds, here the backup certificates)
    pair_secrets = tmp / f"pgaas-{NAME}.secrets.yml"
    pair_secrets.write_text(yaml.safe_dump({"pgaas_backup_tls": {"ca_cert": tls["ca"], "members": tls["members"]}}))
    pair_secrets.chmod(0o600)
    repo_vars = {"pgaas_secrets_file": str(repo_secrets),
                 "pgaas_backup_repo": {"dir": str(tmp / "repository"), "port": REPO_PORT, "image": IMAGE,
                                       "name": REPO_NAME},
                 "pgaas_backup_clients": [{"cn": m["name"], "stanzas": [STANZA]} for m in MEMBERS]
                 + [{"cn": "pgaas-bkcore-other-0", "stanzas": [OTHER_STANZA]}]}
    try:
        first_repo = play(tmp, "backup_repo.yml", repo_vars)
        started = time.monotonic()
        deploy = play(tmp, "instance_deploy.yml", {"pgaas_instance_name": NAME, "pgaas_members": MEMBERS,
                                                   "pgaas_image": IMAGE, "pgaas_backup": BACKUP})
        print(f"deploy with backups took {time.monotonic() - started:.1f} s")
        yield {"tmp": tmp, "tls": tls, "repo_vars": repo_vars, "first_repo": first_repo, "deploy": deploy,
               "cipher_pass": yaml.safe_load(repo_secrets.read_text())["pgaas_backup_repo_secrets"]["cipher_pass"],
               "secrets": yaml.safe_load(pair_secrets.read_text())}
    finally:
        if not os.environ.get("PGAAS_BKCORE_KEEP"):
            cleanup(tmp)


def connect(lab, port: int):
    s = lab["secrets"]
    ca = lab["tmp"] / "ca.crt"
    ca.write_text(s["pgaas_tls_ca_cert"])
    return psycopg.connect(host="localhost", port=port, user=NAME.replace("-", "_") + "_admin",
                           password=s["pgaas_admin_password"], dbname="app", sslmode="verify-full",
                           sslrootcert=str(ca), connect_timeout=5, autocommit=True)


def backup_vars(**extra) -> dict:
    return {"pgaas_instance_name": NAME, "pgaas_members": MEMBERS, "pgaas_backup": BACKUP, **extra}


def test_repository_host_converges_then_changes_nothing(lab):
    assert changed(lab["first_repo"])["localhost"] > 0
    again = play(lab["tmp"], "backup_repo.yml", lab["repo_vars"])
    assert changed(again) == {"localhost": 0}
    conf = Path(f"/var/lib/pgaas/{REPO_NAME}")
    assert conf.stat().st_mode & 0o777 == 0o700 and (conf / "tls").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in [conf / "pgbackrest.conf", *(conf / "tls").iterdir()]} == {0o600}
    assert podman("inspect", "-f", "{{.HostConfig.NetworkMode}}", REPO_NAME).strip() == "host"


def test_no_backup_secret_in_the_plays_output(lab):
    keys = [lab["tls"]["repo"]["key"], *(m["key"] for m in lab["tls"]["members"].values())]
    secret_lines = {line for k in keys for line in k.splitlines() if "-----" not in line} | {lab["cipher_pass"]}
    text = lab["first_repo"].stdout + lab["first_repo"].stderr + lab["deploy"].stdout + lab["deploy"].stderr
    assert [v[:6] for v in secret_lines if v in text] == []


def test_full_backup_from_the_standby_and_wal_archiving(lab):
    primary = None
    for m in MEMBERS:
        with connect(lab, m["pg_port"]) as c:
            if not c.execute("select pg_is_in_recovery()").fetchone()[0]:
                primary = m
    assert primary is not None
    with connect(lab, primary["pg_port"]) as c:
        c.execute("create table kept (id int primary key, at timestamptz default now())")
        c.execute("insert into kept (id) select generate_series(1, 1000)")
    started = time.monotonic()
    out = play(lab["tmp"], "instance_backup.yml", backup_vars(pgaas_backup_type="full"), json_out=True)
    print(f"full backup (play) took {time.monotonic() - started:.1f} s")
    res = result(out)
    assert res["backup_standby"] is True                     # a standby streams: data files come from it
    info = res["info"]
    assert info["name"] == STANZA and info["status"]["code"] == 0, info
    assert [b["type"] for b in info["backup"]] == ["full"]
    assert info["cipher"] == "aes-256-cbc"
    assert info["backup"][0]["info"]["size"] > 0 and info["backup"][0]["archive"]["stop"]
    archiver = res["archiver"]
    assert archiver["last_archived_wal"] and archiver["failed_count"] == 0, archiver
    # the same answer, nothing taken
    again = result(play(lab["tmp"], "backup_info.yml", backup_vars(), json_out=True))
    assert [b["label"] for b in again["info"]["backup"]] == [b["label"] for b in info["backup"]]


def test_a_member_certificate_opens_only_its_own_stanza(lab):
    member = MEMBERS[0]["name"]

    def info(stanza):
        return subprocess.run(["podman", "exec", "-u", "postgres", member, "pgbackrest", f"--stanza={stanza}",
                               "--log-level-console=warn", "info"], capture_output=True, text=True,
                              env={**os.environ, "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")})
    own = info(STANZA)
    assert own.returncode == 0 and STANZA in own.stdout, own.stdout + own.stderr
    other = info(OTHER_STANZA)  # info answers 0 and names the error as the stanza's status
    assert "[AccessError]" in other.stdout and "access denied" in other.stdout, other.stdout + other.stderr
    assert "full backup" not in other.stdout and "wal archive" not in other.stdout


def test_a_failed_backup_reports_pgbackrests_own_error(lab):
    bad = {**BACKUP, "stanza": f"{NAME}-9"}  # a stanza the repository host does not allow... for the members
    out = play(lab["tmp"], "instance_backup.yml", backup_vars(pgaas_backup=bad, pgaas_backup_type="incr"),
               check=False)
    assert out.returncode != 0
    assert re.search(r"pgBackRest \S+ failed: .*ERROR: \[\d+\]", out.stdout), out.stdout[-3000:]


def test_teardown_removes_the_pair_but_not_the_repository(lab):
    play(lab["tmp"], "instance_teardown.yml", {"pgaas_instance_name": NAME, "pgaas_members": MEMBERS})
    assert leftovers(NAME) == {"containers": [], "volumes": [], "networks": []}
    repository = lab["tmp"] / "repository"
    assert (repository / "backup" / STANZA / "backup.info").is_file()
    assert list((repository / "archive" / STANZA).glob("15-1/*/*.lz4"))  # WAL, compressed on the member

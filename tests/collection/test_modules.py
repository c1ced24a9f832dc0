"""The pgaas.pgaas collection against a real control plane: `pgaas run` (website, API, workers) on loopback with a
fresh SQLite store and ports of its own, driven by the real `ansible-playbook` and `ansible` commands with
ANSIBLE_COLLECTIONS_PATH at collections/. One instance pair for the whole module; the tests run in file order
(each builds on the one before: created, unchanged, checked, refused, removed)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO
from tests.e2e.helpers import leftovers, remove_leftovers

pytestmark = [pytest.mark.slow, pytest.mark.random_order(disabled=True)]

COLLECTION = REPO / "collections" / "ansible_collections" / "pgaas" / "pgaas"
EXAMPLE = COLLECTION / "playbooks" / "example.yml"
INSTANCE = os.environ.get("PGAAS_COLLECTION_INSTANCE", "collection-pair")
HTTP_PORT = 32999
PORTS = ("32000", "32499")  # the members' published ports
BIN = Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"


class Plane:
    def __init__(self, home: Path):
        self.home = home
        self.base = f"http://127.0.0.1:{HTTP_PORT}"
        self.env = {**os.environ, "PGAAS_INSTANCE_PATH": str(home / "instance"),
                    "PGAAS_DATABASE_URL": f"sqlite:///{home / 'pgaas.sqlite'}",
                    "PGAAS_PORT_RANGE_START": PORTS[0], "PGAAS_PORT_RANGE_END": PORTS[1],
                    "PGAAS_PORT": str(HTTP_PORT), "PGAAS_TLS_CA_EXPORT_DIR": str(home),
                    "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf"), "PYTHONUNBUFFERED": "1"}
        self.log = open(home / "pgaas.log", "wb")
        self.proc = subprocess.Popen([str(BIN / "pgaas"), "run"], env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:  # the first start prints the administrator it created, once (as scripts/run.sh shows it)
            admin = re.search(r"username: (\S+)\n.*?password: (\S+)\n", self.log_text(), re.S)
            try:
                if admin and requests.get(self.base + "/api/v1/openapi.json", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log_tail()
            time.sleep(0.3)
        self.token = self.login(*admin.groups())

    def login(self, username: str, password: str) -> str:
        r = requests.post(self.base + "/api/v1/tokens", json={"username": username, "password": password}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def api(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return requests.request(method, self.base + "/api/v1" + path, headers=headers, timeout=60, **kw)

    def log_text(self) -> str:
        return (self.home / "pgaas.log").read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-3000:]

    def ansible(self, *args: str, playbook: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "PGAAS_API_URL": self.base, "PGAAS_API_TOKEN": self.token,
               "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_NOCOLOR": "1"}
        cmd = [str(BIN / ("ansible-playbook" if playbook else "ansible")), *args]
        t = time.monotonic()
        run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=480)
        print(f"{Path(cmd[0]).name} {' '.join(args[:3])}: {time.monotonic() - t:.1f} s")
        return run

    def close(self):
        r = self.api("DELETE", f"/instances/{INSTANCE}?force=true")
        if r.status_code == 202:
            job_id = r.json()["job"]["id"]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and self.api("GET", f"/jobs/{job_id}").json()["status"] in (
                    "queued", "running"):
                time.sleep(1)
        os.killpg(self.proc.pid, signal.SIGTERM)  # the process group this fixture started
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


def recap(run: subprocess.CompletedProcess) -> dict[str, int]:
    """The counts of PLAY RECAP's localhost line."""
    m = re.search(r"^localhost\s+:\s+(.*)$", run.stdout, re.M)
    assert m, run.stdout[-3000:] + run.stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    remove_leftovers(INSTANCE)
    p = Plane(tmp_path_factory.mktemp("collection"))
    yield p
    p.close()
    remove_leftovers(INSTANCE)


@pytest.fixture(scope="module")
def example(plane):
    """The example playbook's first run, and how to run it again."""
    secrets = plane.home / "secrets"

    def run(*extra: str) -> subprocess.CompletedProcess:
        return plane.ansible(str(EXAMPLE), "-e", f"pgaas_example_instance={INSTANCE}",
                             "-e", f"pgaas_example_secrets_dir={secrets}", *extra)

    first = run()
    return first, run, secrets


def test_example_creates_the_instance_and_two_tenants_databases(plane, example):
    first, _, secrets = example
    counts = recap(first)
    assert counts["failed"] == 0 and counts["changed"] == 3, first.stdout[-4000:] + plane.log_tail()
    inst = plane.api("GET", f"/instances/{INSTANCE}").json()
    assert inst["status"] == "available" and inst["synchronous"] and inst["memory_mb"] == 512, inst
    assert [r["sync_state"] for r in inst["replicas"]] == ["sync"], inst["replicas"]
    dbs = {d["name"]: d for d in plane.api("GET", "/databases", params={"instance": INSTANCE}).json()["databases"]}
    assert {n: (d["owner"], d["quota_mb"], d["connection_limit"], d["parameters"]) for n, d in dbs.items()} == {
        "ann_orders": ("ann", 200, 10, {"statement_timeout": "30s"}),
        "bob_orders": ("bob", 200, 10, {"statement_timeout": "30s"})}
    # each tenant's database is its own: made with its token, invisible to the other tenant
    bob = plane.login("bob", (secrets / "user-bob").read_text().strip())
    assert plane.api("GET", f"/instances/{INSTANCE}/databases/ann_orders", token=bob).status_code == 404
    assert plane.api("GET", f"/instances/{INSTANCE}/databases/bob_orders", token=bob).status_code == 200
    # the passwords the play used (admin, users, databases) appear nowhere in its output
    for f in secrets.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f
        assert f.read_text().strip() not in first.stdout + first.stderr, f.name


def test_second_run_changes_nothing(example):
    _, run, _ = example
    again = run()
    counts = recap(again)
    assert counts["failed"] == 0 and counts["changed"] == 0, again.stdout[-4000:]


def test_check_mode_reports_changes_without_making_them(plane, example):
    _, run, _ = example
    jobs_before = plane.api("GET", "/jobs", params={"instance": INSTANCE}).json()["jobs"]
    checked = run("--check", "--diff", "-e", "pgaas_example_quota_mb=300", "-e", "pgaas_example_memory_mb=768")
    counts = recap(checked)
    assert counts["failed"] == 0 and counts["changed"] == 2, checked.stdout[-4000:]
    assert '-    "memory_mb": 512,\n+    "memory_mb": 768,' in checked.stdout
    assert '-    "quota_mb": 200,\n+    "quota_mb": 300,' in checked.stdout
    assert plane.api("GET", f"/instances/{INSTANCE}").json()["memory_mb"] == 512
    assert {d["quota_mb"] for d in plane.api("GET", "/databases").json()["databases"]} == {200}
    assert plane.api("GET", "/jobs", params={"instance": INSTANCE}).json()["jobs"] == jobs_before


def test_bad_input_fails_with_the_api_message(plane, example):
    refused = plane.ansible("localhost", "-m", "pgaas.pgaas.instance", "-a",
                            f"name={INSTANCE} memory_mb=1", playbook=False)
    assert refused.returncode != 0
    # the API's own answer to the same change (refused before any job: nothing is changed by asking)
    api = plane.api("PATCH", f"/instances/{INSTANCE}", json={"memory_mb": 1})
    assert api.status_code == 422
    message = api.json()["error"]["message"]
    assert f'"msg": "{message}"' in refused.stdout, refused.stdout
    assert '"changed": false' in refused.stdout and '"status": 422' in refused.stdout
    assert plane.api("GET", f"/instances/{INSTANCE}").json()["memory_mb"] == 512


ABSENT = """\
- name: Remove the example's databases, users and instance
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Drop ann's database after a final dump (a job)
      pgaas.pgaas.database:
        instance: {instance}
        name: ann_orders
        state: absent
    - name: Drop bob's database at once
      pgaas.pgaas.database:
        instance: {instance}
        name: bob_orders
        state: absent
        final_dump: false
    - name: Delete the tenants
      pgaas.pgaas.user:
        username: "{{{{ item }}}}"
        state: absent
      loop: [ann, bob]
    - name: Delete the instance
      pgaas.pgaas.instance:
        name: {instance}
        state: absent
"""


def test_absent_removes_the_databases_then_the_instance(plane, example):
    play = plane.home / "absent.yml"
    play.write_text(ABSENT.format(instance=INSTANCE))
    removed = plane.ansible(str(play))
    counts = recap(removed)
    assert counts["failed"] == 0 and counts["changed"] == 4, removed.stdout[-4000:] + plane.log_tail()
    assert plane.api("GET", f"/instances/{INSTANCE}").status_code == 404
    assert plane.api("GET", "/databases").json()["databases"] == []
    assert plane.api("GET", "/users/ann").status_code == 404
    kinds = [(j["kind"], j["status"]) for j in plane.api("GET", "/jobs").json()["jobs"]]
    assert ("database_delete", "succeeded") in kinds and ("instance_delete", "succeeded") in kinds, kinds
    assert leftovers(INSTANCE) == {"containers": [], "volumes": [], "networks": []}
    again = plane.ansible("localhost", "-m", "pgaas.pgaas.instance", "-a", f"name={INSTANCE} state=absent",
                          playbook=False)
    assert again.returncode == 0 and '"changed": false' in again.stdout, again.stdout
    info = plane.ansible("localhost", "-m", "pgaas.pgaas.instance_info", "-a", f"name={INSTANCE}", playbook=False)
    assert info.returncode == 0 and '"instances": []' in info.stdout, info.stdout

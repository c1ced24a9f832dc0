"""Shared fixtures: a metadata store on SQLite or on a real PostgreSQL server, the app served over real HTTP
(waitress on a free loopback port) with real job workers, and an API client speaking to it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
import logging
logging.getLogger("werkzeug").setLevel(logging.WARNING)
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "etc" / "containers.conf"))


# The fixed port ranges of tests and benches (36010 and up for test_backup_playbooks, 36100 for the backup
# control tests, 31100, 32999, 33100, 34000...) lie inside the kernel's ephemeral range (32768-60999): a port
# the kernel picks for a long-lived server of the session (the metadata PostgreSQL, a control plane) must not be
# one of them (seen: the metadata server on 36010, then a backup test's member could not bind it). scripts/test.sh
# also reserves them in the kernel (net.ipv4.ip_local_reserved_ports), so that no client's source port takes one.
RESERVED_PORTS = range(30000, 38000)


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port


# -- a real PostgreSQL server for the metadata store ---------------------------------------------------------
class MetadataPostgres:
    """A throwaway PostgreSQL 15 cluster (Debian's binaries) on loopback, scram-sha-256, one database per test."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pgaas-meta-"))
        self.port = free_port()
        self.password = uuid.uuid4().hex
        shutil.chown(self.dir, "postgres", "postgres")
        pwfile = self.dir / "pw"
        pwfile.write_text(self.password)
        shutil.chown(pwfile, "postgres", "postgres")
        self._as_pg([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "--auth=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8"])
        self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                     "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])

    def _as_pg(self, cmd):
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        import psycopg

        name = "meta_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def metadata_pg():
    assert (PG_BIN / "initdb").exists(), "PostgreSQL 15 server binaries are missing: run scripts/setup.sh --test"
    server = MetadataPostgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each test that uses it runs twice: metadata on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'pgaas.sqlite'}"
    return request.getfixturevalue("metadata_pg").new_database()


def make_app(database_url: str, instance_path: Path, **extra):
    from webapp import create_app

    # The printed URIs name sslrootcert=pgaas-NAME-ca.crt, relative to the client's directory: the tests (and the
    # benches) run from the repository's root, where the control plane writes each instance's CA (.gitignore).
    cfg = {"TESTING": True, "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance_path),
           "JOB_HEARTBEAT_SECONDS": 0.5, "JOB_STALE_SECONDS": 5, "WORKER_POLL_SECONDS": 0.1,
           "TLS_CA_EXPORT_DIR": os.getcwd()}
    cfg.update(extra)
    return create_app(cfg)


# -- the app over real HTTP ----------------------------------------------------------------------------------
class Api:
    """A small requests-based client for the live server."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __getattr__(self, method):
        def call(path, **kw):
            kw.setdefault("timeout", 30)
            return self.session.request(method.upper(), self.base + path, **kw)

        return call

    def as_user(self, username: str, password: str) -> "Api":
        r = requests.post(self.base + "/api/v1/tokens", json={"username": username, "password": password},
                          timeout=30)
        assert r.status_code == 201, r.text
        return Api(self.base, r.json()["token"])

    def wait_job(self, job_id: int, timeout: float = 120, until=("succeeded", "failed", "canceled", "error")):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] in until:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not reach {until} in {timeout}s: {job}")

    def wait_ok(self, job_id: int, timeout: float = 240) -> dict:
        """Wait for a job and insist that it succeeded; the message names the failed tasks."""
        job = self.wait_job(job_id, timeout)
        failed = [(e["task"], e["message"][-500:]) for e in job.get("events", []) if e["status"] == "failed"]
        assert job["status"] == "succeeded", (job_id, job["status"], job["error"], failed)
        return job


class Live:
    def __init__(self, app, workers: int, before_workers=None, tokens: dict[str, str] | None = None):
        """before_workers(app): what a control plane does at start before its workers run (a second control
        plane on the same metadata: its users exist already and are kept). tokens: root's and alice's API tokens
        when the metadata is a copy of a seeded store (no users to make, no logins to pay)."""
        from werkzeug.serving import make_server

        self.app = app
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)  # quick shutdown
        self.thread.start()
        self.stop = threading.Event()
        self.workers = []
        if before_workers is not None:
            before_workers(app)
        for i in range(workers):
            w = app.extensions["pgaas"].make_worker(maintenance=(i == 0))
            t = threading.Thread(target=w.run_forever, args=(self.stop,), daemon=True)
            t.start()
            self.workers.append(t)
        self.base = f"http://127.0.0.1:{self.port}"
        from webapp.services import accounts

        from sqlalchemy import select

        from webapp.store.models import User

        self.anon = Api(self.base)
        if tokens:
            self.admin, self.alice = Api(self.base, tokens["root"]), Api(self.base, tokens["alice"])
            return
        with app.extensions["pgaas"].store.session() as s:
            known = set(s.scalars(select(User.username)))
            for name, admin in (("root", True), ("alice", False)):
                if name not in known:
                    accounts.create_user(s, name, f"{name}-password-1", is_admin=admin)
        self.admin = self.anon.as_user("root", "root-password-1")
        self.alice = self.anon.as_user("alice", "alice-password-1")

    def tokens(self) -> dict[str, str]:
        return {"root": self.admin.session.headers["Authorization"].removeprefix("Bearer "),
                "alice": self.alice.session.headers["Authorization"].removeprefix("Bearer ")}

    def close(self):
        self.stop.set()
        for t in self.workers:
            t.join(timeout=30)
        self.server.shutdown()
        self.server.server_close()
        self.app.extensions["pgaas"].store.dispose()


class Seeds:
    """A store as Live leaves it at start (migrated; root and alice made, each logged in once through the API),
    made once per backend and copied for each test: the four scrypt hashes and the migrations cost a second and a
    half per test, in every one of some 300 tests."""

    def __init__(self, tmp_path_factory, metadata_pg_of):
        self._factory, self._pg_of = tmp_path_factory, metadata_pg_of
        self._made: dict[str, tuple[str, Path, dict[str, str]]] = {}  # backend -> (template, instance dir, tokens)

    def _seed(self, backend: str):
        if backend not in self._made:
            where = self._factory.mktemp(f"seed-{backend}")
            if backend == "sqlite":
                url = f"sqlite:///{where / 'pgaas.sqlite'}"
                template = str(where / "pgaas.sqlite")
            else:
                url = self._pg_of().new_database()
                template = url.rsplit("/", 1)[1]
            srv = Live(make_app(url, where / "instance"), workers=0)
            tokens = srv.tokens()
            srv.close()
            self._made[backend] = (template, where / "instance", tokens)
        return self._made[backend]

    def copy(self, database_url: str, instance_path: Path) -> dict[str, str]:
        """Fill the (new, empty) store at database_url and instance_path with the seed; returns the tokens."""
        import psycopg

        backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        template, instance, tokens = self._seed(backend)
        shutil.copytree(instance, instance_path)
        if backend == "sqlite":
            shutil.copyfile(template, database_url.removeprefix("sqlite:///"))
        else:
            base, name = database_url.rsplit("/", 1)
            with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE "{name}"')
                c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return tokens


@pytest.fixture(scope="session")
def seeds(tmp_path_factory, request):
    return Seeds(tmp_path_factory, lambda: request.getfixturevalue("metadata_pg"))


def seeded_live(seeds: Seeds, database_url: str, instance_path: Path, workers: int = 0, **config) -> Live:
    """Live on a copy of the seed (a new, empty database_url and instance_path), with this test's config."""
    tokens = seeds.copy(database_url, instance_path)
    return Live(make_app(database_url, instance_path, **config), workers=workers, tokens=tokens)


@pytest.fixture
def live(database_url, tmp_path, seeds):
    """The app on both metadata backends, no workers (API behaviour that needs no job to run)."""
    srv = seeded_live(seeds, database_url, tmp_path / "instance")
    yield srv
    srv.close()


# -- session resources released when the last test that uses them is done ------------------------------------
# A session fixture otherwise lives to the end of the run: the control plane with its pair and 1 s sampler, or a
# lab's hosts, kept running through every later directory cost those tests a third of their speed (measured: a
# molecule scenario took 75 s beside the idle session pair against 55 s alone).
_RELEASE: dict[str, Callable[[], None]] = {}  # fixture name -> its closer, in the order they were set up
_LAST_USER: dict[str, str] = {}  # fixture name -> node id of the last collected test that uses it
# tests/ui shares tests/e2e's control plane and pair: it runs right after tests/e2e, so both are released early
_DIR_ORDER = ["tests/api", "tests/collection", "tests/e2e", "tests/ui"]


def release_after_last_use(name: str, closer: Callable[[], None]) -> Callable[[], None]:
    """Register the closer of session fixture `name`, to run once, after the last test that uses it; returns the
    once-only closer for the fixture's own teardown (which then does nothing if the resource is gone already)."""
    done = threading.Event()

    def once():
        if not done.is_set():
            done.set()
            _RELEASE.pop(name, None)
            closer()

    _RELEASE[name] = once
    return once


def _dir_of(item) -> str:
    parts = item.nodeid.split("::")[0].split("/")
    return "/".join(parts[:2])


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected
def pytest_collection_modifyitems(items):
    rank = {d: i for i, d in enumerate(_DIR_ORDER)}
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda it: (rank.get(_dir_of(it), len(rank)), position[id(it)]))
    _LAST_USER.clear()
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            _LAST_USER[name] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    if nextitem is None:
        return  # the session's own teardown follows
    for name in reversed(list(_RELEASE)):  # dependants (set up later) first
        if _LAST_USER.get(name) == item.nodeid:
            _RELEASE[name]()


# -- one control plane with workers and one instance pair per session (tests/e2e and tests/ui) ----------------
@pytest.fixture(scope="session")
def cp(tmp_path_factory, metadata_pg):
    """The control plane with PostgreSQL metadata and two worker threads; released after its last test."""
    srv = Live(make_app(metadata_pg.new_database(), tmp_path_factory.mktemp("cp") / "instance",
                        QUOTA_CHECK_SECONDS=1, SAMPLE_SECONDS=1), workers=2)

    def close():
        for inst in srv.admin.get("/api/v1/instances").json()["instances"]:
            r = srv.admin.delete(f"/api/v1/instances/{inst['name']}?force=true")
            if r.status_code == 202:
                srv.admin.wait_job(r.json()["job"]["id"], timeout=120)
        srv.close()

    close = release_after_last_use("cp", close)
    yield srv
    close()


@pytest.fixture(scope="session")
def pair(cp):
    from tests.e2e.helpers import INST, create

    created, job = create(cp, INST, admin_password="Admin-password-123")
    assert job["status"] == "succeeded", (job["error"], [e for e in job["events"] if e["status"] == "failed"])
    return created


@pytest.fixture(autouse=True)
def _pair_idle(request):
    """A test of the shared pair starts when no job of an earlier test (say, a database delete it did not wait for)
    holds the instance: otherwise its own change is refused as busy, and it fails for another test's reason."""
    if "pair" not in request.fixturenames:
        return
    from tests.e2e.helpers import INST

    cp = request.getfixturevalue("cp")
    request.getfixturevalue("pair")
    busy = cp.admin.get(f"/api/v1/instances/{INST}").json().get("active_job")
    if busy:
        cp.admin.wait_job(busy["id"], timeout=300)


# -- time per test directory (CI prints it after the run) ----------------------------------------------------
# With the machine's busy CPU over the same time: a directory near 2 cores is CPU-bound (only less work makes it
# faster), one far below waits (on timeouts, Patroni's loop, the network) and could share the machine.
_DIR_SECONDS: dict[str, float] = {}
_DIR_BUSY: dict[str, float] = {}  # busy CPU seconds of the whole machine while the directory's tests ran


def _top(nodeid: str) -> str:
    path = nodeid.split("::")[0].split("/")
    return "/".join(path[:2]) if len(path) > 2 else "/".join(path)  # tests/e2e, or tests/test_cli.py


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _busy_seconds()
    yield
    top = _top(item.nodeid)
    _DIR_BUSY[top] = _DIR_BUSY.get(top, 0.0) + _busy_seconds() - before


def pytest_runtest_logreport(report):
    top = _top(report.nodeid)
    _DIR_SECONDS[top] = _DIR_SECONDS.get(top, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _DIR_SECONDS:
        return
    terminalreporter.section("time per test directory (set-up, call and teardown of its tests; busy CPU meanwhile)")
    for d, secs in sorted(_DIR_SECONDS.items(), key=lambda kv: -kv[1]):
        busy = _DIR_BUSY.get(d, 0.0) / secs if secs else 0.0
        terminalreporter.write_line(f"{secs:8.1f} s  {busy:4.2f} of {os.cpu_count()} cores  {d}")

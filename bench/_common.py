"""What the benchmarks in bench/ share (not a benchmark itself: bench/smoke.sh skips files starting with _).

- podman() and remove_leftovers(prefix): every container (also one a killed `podman run` left in storage only),
  volume, network and configuration directory of a bench's instances, found by the bench's own name prefix.
- ControlPlane: the in-process control plane of tests.conftest.Live (SQLite metadata in a private work dir, real
  HTTP, job workers, ansible-runner, podman) on the bench's own host ports; on the way out, also after Ctrl-C,
  SIGTERM or an error, it cancels running jobs, stops, and removes its instances' podman objects and work dir.
- run_playbook(): a playbook of this repository through ansible-runner, as a job runs it.
- --smoke: add_smoke() and the rule a smoke run follows: the smallest real run that still takes every code path
  of the full one, figures printed as usual and not judged, exit status 1 when anything failed.

Names and ports are chosen so that benches never meet other people's test runs on a shared machine: instances are
named bench-<bench>-..., so their containers, volumes and networks start with pgaas-bench-; lab prefixes start with
lab-bench-; members are published on PORT_RANGES below, outside the test suite's 20000-21999 and 25000-25999.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
CONTAINERS_CONF = str(REPO / "etc" / "containers.conf")
os.environ["CONTAINERS_CONF"] = CONTAINERS_CONF  # for podman calls made here and by the control plane's plays
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": CONTAINERS_CONF}
IMAGE = "localhost/pgaas-postgres:15"
CONFIG_ROOT = Path("/var/lib/pgaas/instances")
# First of 100 host ports per bench (PostgreSQL and Patroni REST of its members): apart from each other and from
# the ranges test runs use (the control plane's default 20000-21999, and 25000-25999).
PORT_RANGES = {"provision": 23000, "databases": 23100, "failover": 23200, "sampler": 23300, "ui_pages": 23400,
               "throughput": 23500, "scale": 23600, "backup": 23700}
FINAL = ("succeeded", "failed", "canceled", "error")
SMOKE_HELP = ("the smallest real run that still takes every code path of the full one (one iteration, smallest "
              "sizes; bench/smoke.sh, CI): figures are printed as usual and not judged; exit status 1 if anything "
              "failed")


class BenchFailed(Exception):
    pass


def add_smoke(ap) -> None:
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def smoke_note(smoke: bool) -> None:
    if smoke:
        print("  SMOKE run: one short pass to show the bench works; its figures are not a result", flush=True)


# -- podman --------------------------------------------------------------------------------------------------
def podman(*args, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV, timeout=timeout)
    if check and r.returncode != 0:
        raise BenchFailed(f"podman {' '.join(args[:3])} ...: {r.stderr.strip() or r.stdout.strip()}")
    return r


def require_image(image: str = IMAGE) -> bool:
    if podman("image", "exists", image).returncode != 0:
        print(f"image {image} is missing: build it with playbooks/image.yml", file=sys.stderr)
        return False
    return True


def note_other_containers() -> None:
    others = podman("ps", "-q").stdout.split()
    if others:
        print(f"  note: {len(others)} other container(s) already running on this machine (noise)", flush=True)


def _listed(*kind: str) -> list[dict]:
    try:
        return json.loads(podman(*kind, "--format", "json").stdout or "[]") or []
    except ValueError:
        return []


def remove_leftovers(prefix: str) -> list[str]:
    """Remove every podman object of the instances named <prefix>*: containers, volumes and networks labelled
    pgaas.instance=<prefix>*, containers and networks named pgaas-<prefix>* (a killed `podman run` can leave a
    container in storage only, without labels), and their configuration directories. Returns what was found."""
    def ours(item: dict, name: str) -> bool:
        labels = item.get("Labels") or item.get("labels") or {}
        return str(labels.get("pgaas.instance", "")).startswith(prefix) or name.startswith(f"pgaas-{prefix}")

    found = []
    ctrs = []
    for c in _listed("ps", "-a", "--external"):
        names = c.get("Names") or []
        if any(ours(c, n) for n in names) or (not names and ours(c, "")):
            ctrs.append(names[0] if names else c.get("Id"))
    if ctrs:
        found.append(f"{len(ctrs)} container(s)")
        podman("rm", "-f", "-t", "0", *ctrs)
    vols = [v["Name"] for v in _listed("volume", "ls") if ours(v, v.get("Name", ""))]
    if vols:
        found.append(f"volume(s) {', '.join(sorted(vols))}")
        podman("volume", "rm", "-f", *vols)
    nets = [n["name"] for n in _listed("network", "ls") if ours(n, n.get("name", ""))]
    if nets:
        found.append(f"network(s) {', '.join(sorted(nets))}")
        podman("network", "rm", "-f", *nets)
    for d in CONFIG_ROOT.glob(f"{prefix}*"):
        shutil.rmtree(d, ignore_errors=True)
    return found


# -- signals -------------------------------------------------------------------------------------------------
def trap_signals() -> None:
    """SIGTERM (CI's timeout, bench/smoke.sh) and SIGINT (also when started with SIGINT ignored, `cmd &`) raise
    KeyboardInterrupt in the main thread, so that the cleanup in finally blocks runs."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def shielded():
    """Cleanup that a second Ctrl-C or SIGTERM does not cut short."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])


def load_line(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min)"


# -- the control plane ---------------------------------------------------------------------------------------
def wait_job(api, job_id: int, timeout: float, poll: float = 0.2) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        if time.monotonic() > deadline:
            raise BenchFailed(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        time.sleep(poll)


def job_failure(job: dict) -> str:
    failed = [f"{e['task']} on {e['host']}: {(e.get('message') or '')[-300:]}" for e in job.get("events", [])
              if e.get("status") == "failed"]
    return f"job {job['id']} {job['status']}: {job.get('error')} {failed[:2]}"


class ControlPlane:
    """tests.conftest.Live with SQLite metadata in a private work dir (0700), members published on the bench's
    own ports, `workers` job workers. A context manager: leftovers of an earlier run with the prefix are removed
    first; on the way out (also after Ctrl-C, SIGTERM or an error) running jobs are canceled, the control plane
    is closed, everything of the prefix is removed from podman and the work dir goes."""

    def __init__(self, bench: str, prefix: str, workers: int = 1, database_url: str | None = None, **config):
        """database_url: the metadata store (default: SQLite in the work dir)."""
        self.prefix = prefix
        self.database_url = database_url
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pgaas-{prefix}"))
        os.chmod(self.workdir, 0o700)
        start = PORT_RANGES[bench]
        self.config = {"PORT_RANGE_START": start, "PORT_RANGE_END": start + 99, **config}
        self.workers = workers
        self.live = None
        self.created: list[str] = []

    def __enter__(self) -> ControlPlane:
        stale = remove_leftovers(self.prefix)
        if stale:
            print(f"  (removed leftovers of an earlier run: {', '.join(stale)})", flush=True)
        from tests.conftest import Live, make_app

        try:
            self.live = Live(make_app(self.database_url or f"sqlite:///{self.workdir / 'pgaas.sqlite'}",
                                      self.workdir / "instance",
                                      **self.config), workers=self.workers)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def db_file(self) -> Path:
        return self.workdir / "pgaas.sqlite"

    def create(self, name: str, **body) -> dict:
        """POST /api/v1/instances; the answer (instance, job, admin_password). Removed on exit at the latest."""
        r = self.live.admin.post("/api/v1/instances", json={"name": name, **body})
        if r.status_code != 202:
            raise BenchFailed(f"POST /api/v1/instances {name} answered {r.status_code}: {r.text[:300]}")
        self.created.append(name)
        return r.json()

    def wait_ok(self, job_id: int, timeout: float = 300) -> dict:
        job = wait_job(self.live.admin, job_id, timeout)
        if job["status"] != "succeeded":
            raise BenchFailed(job_failure(job))
        return job

    def delete(self, name: str) -> str:
        """Delete an instance through the API (force), canceling its running jobs first; how that ended."""
        api = self.live.admin
        r = api.delete(f"/api/v1/instances/{name}?force=true", timeout=60)
        if r.status_code == 409:  # a job is still running: cancel it first
            for j in api.get(f"/api/v1/jobs?instance={name}").json().get("jobs", []):
                if j["status"] in ("queued", "running"):
                    api.post(f"/api/v1/jobs/{j['id']}/cancel")
                    wait_job(api, j["id"], 120)
            r = api.delete(f"/api/v1/instances/{name}?force=true", timeout=60)
        if name in self.created:
            self.created.remove(name)
        if r.status_code == 404:
            return "not found"
        if r.status_code != 202:
            return f"DELETE answered {r.status_code}: {r.text[:200]}"
        return "delete job " + wait_job(api, r.json()["job"]["id"], 180)["status"]

    def _cancel_active_jobs(self) -> None:
        """Cancel queued and running jobs (a deploy cut short by Ctrl-C) and wait until they end: a canceled create
        runs its own teardown, and nothing may race the removal that follows."""
        api = self.live.admin
        for j in api.get("/api/v1/jobs").json().get("jobs", []):
            if j["status"] in ("queued", "running"):
                api.post(f"/api/v1/jobs/{j['id']}/cancel")
                outcome = wait_job(api, j["id"], 180)["status"]
                print(f"cleanup: job {j['id']} ({j['kind']} of {j['instance']}) {outcome}",
                      flush=True)

    def __exit__(self, *exc) -> None:
        """The control plane stops first, then what its instances left in podman goes, found by the bench's prefix
        (what the delete job's teardown removes, without a playbook run per instance: seconds instead of tens)."""
        with shielded():
            t0 = time.monotonic()
            if self.live is not None:
                try:
                    self._cancel_active_jobs()
                except Exception as e:  # removal below goes on regardless
                    print(f"cleanup: canceling jobs failed: {e}", flush=True)
                try:
                    self.live.close()
                except Exception as e:
                    print(f"warning: closing the control plane: {e}", flush=True)
            left = remove_leftovers(self.prefix)
            if left:
                print(f"cleanup: removed {', '.join(left)} in {time.monotonic() - t0:.1f} s", flush=True)
            shutil.rmtree(self.workdir, ignore_errors=True)


def in_control_plane(bench: str, prefix: str, body, workers: int = 1, database_url: str | None = None,
                     **config) -> int:
    """body(cp) inside a ControlPlane; the exit status: 0, 1 when it raised BenchFailed, 130 when interrupted (the
    cleanup has run by then)."""
    def run() -> None:
        with ControlPlane(bench, prefix, workers, database_url, **config) as cp:
            body(cp)

    return exit_status(run)


def exit_status(run) -> int:
    """run(); the exit status: 0, 1 when it raised BenchFailed, 130 when interrupted (its cleanup has run)."""
    try:
        run()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaned up", flush=True)
        return 130
    except BenchFailed as exc:
        print(f"\nFAILED: {exc}", flush=True)
        return 1
    return 0


# -- playbooks -----------------------------------------------------------------------------------------------
def run_playbook(workdir: Path, playbook: str, extravars: dict):
    """One playbook of this repository through ansible-runner as a job runs it (project_dir = the repo, so its
    ansible.cfg and roles apply; a private data dir under workdir); the runner object (status, events)."""
    import ansible_runner

    pd = Path(tempfile.mkdtemp(dir=workdir))
    return ansible_runner.run(private_data_dir=str(pd), project_dir=str(REPO), playbook=playbook,
                              extravars=extravars, inventory=str(REPO / "inventory" / "local" / "hosts.yml"),
                              quiet=True, suppress_env_files=True,
                              envvars={"PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
                                       "CONTAINERS_CONF": CONTAINERS_CONF})


def playbook_failure(r) -> str:
    failed = [f"{e['event_data'].get('task')}: {str(e['event_data'].get('res', {}).get('msg', ''))[:300]}"
              for e in r.events if e["event"] == "runner_on_failed"]
    return f"{r.status} (rc {r.rc}) {failed[:2]}"

"""The runner wrapper and the worker, on a small fixture project, with real ansible-runner runs."""
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from webapp.jobs.runner import run_playbook
from webapp.jobs.types import RunSpec
from webapp.jobs.worker import Worker
from webapp.services.handlers.base import JobHandler
from webapp.store.models import Job, JobEvent

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "project"
SECRET = "s3cret-Value-that-must-never-leak-9"


def all_text_under(path: Path) -> str:
    chunks = []
    for p in path.rglob("*"):
        if p.is_file():
            chunks.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


def test_run_reports_events_stats_and_facts_and_keeps_secrets_out(tmp_path):
    events = []
    spec = RunSpec("playbooks/stats.yml", {"fixture_who": "pgaas", "fixture_dir": str(tmp_path)},
                   secrets={"fixture_secret": SECRET})
    out = run_playbook(tmp_path / "job", "1", spec, project_dir=str(FIXTURE),
                       inventory=str(FIXTURE / "inventory.yml"), on_event=events.append)
    assert out.status == "successful", out.error
    assert out.artifact_data == {"fixture_result": {"answer": 42, "who": "pgaas"}}
    assert out.facts["localhost"]["ansible_system"] == "Linux"
    assert (tmp_path / "secret.txt").read_text() == SECRET  # the play did get the secret
    tasks = [(e.task, e.status) for e in events if e.event.startswith("runner_on")]
    assert ("Say hello", "ok") in tasks
    assert ("Write the secret into a file", "ok") in tasks  # no_log hides even 'changed' in ansible-core 2.19
    assert events[-1].event == "playbook_on_stats" and "changed=1" in events[-1].message
    # the secret is nowhere: not in events, not in the job's private data dir (artifacts, fact cache, command)
    assert SECRET not in repr(events)
    assert SECRET not in all_text_under(tmp_path / "job")
    assert not list((tmp_path / "job" / "private").glob("secrets-*")), "secrets file must be removed after the run"
    assert oct((tmp_path / "job").stat().st_mode & 0o777) == "0o700"


def test_failure_names_the_task_and_its_message(tmp_path):
    out = run_playbook(tmp_path / "job", "2", RunSpec("playbooks/fail.yml"), project_dir=str(FIXTURE),
                       inventory=str(FIXTURE / "inventory.yml"))
    assert out.status == "failed"
    assert "Check the impossible" in out.error and "the fixture failed on purpose" in out.error


def test_cancel_kills_the_run(tmp_path):
    flag = threading.Event()
    seconds = 600 + os.getpid() % 1000  # a sleep no one else runs
    spec = RunSpec("playbooks/sleep.yml", {"fixture_dir": str(tmp_path), "fixture_seconds": seconds})

    def cancel_when_started():
        deadline = time.monotonic() + 30
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        flag.set()

    threading.Thread(target=cancel_when_started, daemon=True).start()
    t0 = time.monotonic()
    out = run_playbook(tmp_path / "job", "3", spec, project_dir=str(FIXTURE),
                       inventory=str(FIXTURE / "inventory.yml"), should_cancel=flag.is_set)
    assert out.status == "canceled"
    assert time.monotonic() - t0 < 30
    # no sleep of ours survives the cancel
    time.sleep(0.5)
    ps = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True, text=True)
    assert ps.stdout.strip() == ""


class FixtureHandler(JobHandler):
    """A handler for the worker that runs fixture playbooks (the worker's handler seam, used for real)."""

    def __init__(self, playbook, extravars):
        self.playbook, self.extravars = playbook, extravars
        self.finished = []

    def prepare(self, s, job):
        return RunSpec(self.playbook, dict(self.extravars), secrets={"fixture_secret": SECRET})

    def finish(self, s, job, outcome):
        job.result = outcome.artifact_data
        self.finished.append(job.id)


def make_worker(store, tmp_path, handler, wid=None):
    return Worker(store, {"fixture": handler}, jobs_dir=str(tmp_path / "jobs"), project_dir=str(FIXTURE),
                  inventory=str(FIXTURE / "inventory.yml"), heartbeat_seconds=0.5, stale_seconds=3,
                  poll_seconds=0.05, worker_id=wid)


def test_worker_runs_a_job_and_stores_events_as_they_come(store, tmp_path):
    handler = FixtureHandler("playbooks/stats.yml", {"fixture_who": "w", "fixture_dir": str(tmp_path)})
    with store.session() as s:
        s.add(Job(kind="fixture", instance_name=None, created_by="t"))
    w = make_worker(store, tmp_path, handler)
    assert w.run_one() is not None
    with store.session() as s:
        job = s.query(Job).one()
        assert job.status == "succeeded" and job.result == {"fixture_result": {"answer": 42, "who": "w"}}
        assert job.started_at and job.finished_at and job.worker_id == w.worker_id
        evs = s.query(JobEvent).filter_by(job_id=job.id).order_by(JobEvent.id).all()
        assert "Say hello" in [e.task for e in evs]
        assert all(e.created_at for e in evs)
    assert w.run_one() is None  # nothing left to take


def test_workers_never_take_the_same_job(store, tmp_path):
    n_jobs = 30
    with store.session() as s:
        for _ in range(n_jobs):
            s.add(Job(kind="fixture", created_by="t"))
    claims: list[tuple[str, int]] = []
    lock = threading.Lock()
    workers = [make_worker(store, tmp_path, None, wid=f"w{i}") for i in range(6)]

    def grab(w):
        while (jid := w.claim()) is not None:
            with lock:
                claims.append((w.worker_id, jid))

    threads = [threading.Thread(target=grab, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [jid for _, jid in claims]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == n_jobs
    with store.session() as s:
        owners = {j.id: j.worker_id for j in s.query(Job)}
    assert all(owners[jid] == wid for wid, jid in claims)


def test_a_lost_worker_is_noticed_by_its_heartbeat(store, tmp_path):
    handler = FixtureHandler("playbooks/stats.yml", {})
    with store.session() as s:
        s.add(Job(kind="fixture", created_by="t", status="running", worker_id="elsewhere:1:x",
                  heartbeat_at=None))
    w = make_worker(store, tmp_path, handler)
    assert w.recover_stale() != []
    with store.session() as s:
        job = s.query(Job).one()
        assert job.status == "failed" and "lost" in job.error and "elsewhere:1:x" in job.error


def test_user_text_is_never_templated_only_our_templates_are(tmp_path):
    """Every string a job carries is data: the issue's payload, in an extra var, a nested setting, a list and a
    secret, reaches the play as those characters and runs nothing on the control plane. A Template (Jinja our own
    code writes, e.g. the openstack provider's member list) is still evaluated."""
    from webapp.jobs.spec import Template

    marker = tmp_path / "pwned"
    payload = "{{ lookup('pipe','touch %s; echo x') }}" % marker
    spec = RunSpec("playbooks/literal.yml",
                   {"fixture_dir": str(tmp_path), "fixture_value": payload,
                    "fixture_settings": {"log_line_prefix": payload}, "fixture_labels": [payload],
                    "fixture_template": Template("{{ 6 * 7 }}"),
                    "fixture_numeric": {"work_mem": "0042", "flag": "true"}},
                   secrets={"fixture_secret": "{{ 6 * 7 }}" + payload})
    out = run_playbook(tmp_path / "job", "7", spec, project_dir=str(FIXTURE), inventory=str(FIXTURE / "inventory.yml"))
    assert out.status == "successful", out.error
    assert not marker.exists(), "a templated value ran a command on the control plane"
    for name in ("plain", "nested", "listed"):
        assert (tmp_path / f"{name}.txt").read_text() == payload
    assert (tmp_path / "secret.txt").read_text() == "{{ 6 * 7 }}" + payload
    assert (tmp_path / "template.txt").read_text() == "42"
    # strings that look like numbers or booleans stay strings (a setting's value is text)
    assert json.loads((tmp_path / "numeric.txt").read_text()) == {"work_mem": "0042", "flag": "true"}


"""Run one playbook with ansible-runner in a private data dir, AWX-style.

- one private data dir per job (0700), ident = job id, project_dir = the repo (its ansible.cfg, roles, playbooks);
- secrets go in a 0600 vars file outside the artifacts, loaded by the play, deleted when the run ends;
  never as extravars (runner puts those on the command line and in artifacts) and never in env files;
- no value is ever templated: extra vars and secrets are written as YAML with every string tagged `!unsafe`, so a
  setting, a name or a password that reads `{{ lookup('pipe', ...) }}` reaches the play as those characters. Only a
  `Template` (a string our own code wrote as Jinja on purpose) is passed as a template;
- cancel_callback always passed (so runner installs no signal handler of its own);
- results come from set_stats (artifact_data of the final stats event) and the jsonfile fact cache.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ansible_runner

from webapp.jobs.spec import Template, write_vars_file
from webapp.jobs.types import Outcome, RunSpec
from webapp.providers import known_hosts

log = logging.getLogger(__name__)
SECRET_MASK = "********"
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_item_on_failed": "failed",
}


@dataclass
class Event:
    event: str
    task: str = ""
    host: str = ""
    status: str = ""
    duration: float | None = None
    message: str = ""


class Scrubber:
    """Replaces every known secret value in a string (defence in depth behind no_log)."""

    def __init__(self, secrets: dict):
        found: set[str] = set()

        def walk(v):  # nested secrets too (each member's TLS key), and every line of a multi-line one (a PEM)
            if isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, (list, tuple)):
                for x in v:
                    walk(x)
            elif v is not None and v != "":
                text = str(v)
                found.add(text)
                if "\n" in text:
                    found.update(line for line in text.splitlines() if len(line) >= 16)

        walk(secrets)
        self._values = sorted({v for v in found if len(v) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for v in self._values:
            if v in text:
                text = text.replace(v, SECRET_MASK)
        return text


def summarize(raw: dict, scrub: Scrubber) -> Event | None:
    """Turn a runner event into the few fields we keep. Returns None for events not worth storing."""
    kind = raw.get("event", "")
    data = raw.get("event_data") or {}
    if kind == "playbook_on_play_start":
        return Event(kind, task=scrub(str(data.get("play", ""))), status="play")
    if kind == "playbook_on_stats":
        summary = {k: data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped")}
        msg = "; ".join(f"{k}={sum(v.values())}" for k, v in summary.items())
        return Event(kind, status="stats", message=msg)
    if kind not in _RESULT_EVENTS:
        return None
    res = data.get("res") or {}
    status = _RESULT_EVENTS[kind]
    if status == "ok" and res.get("changed"):
        status = "changed"
    message = ""
    if status in ("failed", "unreachable"):
        parts = [str(res.get("msg") or "")]
        for key in ("stderr", "module_stderr"):
            if res.get(key):
                parts.append(str(res[key])[-2000:])
        message = "\n".join(p for p in parts if p)
        if res.get("censored"):
            message = message or str(res["censored"])
        # ssh refused a host whose key differs from the pinned one: say so plainly, not ssh's banner
        message = known_hosts.explain(message, str(data.get("host", ""))) or message
    elif isinstance(res.get("msg"), str) and kind == "runner_on_ok" and data.get("task_action", "").endswith("debug"):
        message = res["msg"][:2000]
    duration = data.get("duration")
    return Event(
        kind,
        task=scrub(str(data.get("task", "")))[:255],
        host=scrub(str(data.get("host", "")))[:255],
        status=status,
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        message=scrub(message),
    )


def run_playbook(
    job_dir: str | os.PathLike,
    ident: str,
    spec: RunSpec,
    project_dir: str,
    inventory: str,
    envvars: dict | None = None,
    on_event: Callable[[Event], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Outcome:
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(job_dir, 0o700)
    scrub = Scrubber(spec.secrets)
    private = job_dir / "private"
    private.mkdir(exist_ok=True)
    os.chmod(private, 0o700)
    secrets_file = private / f"secrets-{ident}.yml"
    vars_file = private / f"vars-{ident}.yml"
    # Our own templates go as runner's extravars; everything else is data in a vars file of !unsafe strings.
    templates = {k: str(v) for k, v in spec.extravars.items() if isinstance(v, Template)}
    data = {k: v for k, v in spec.extravars.items() if not isinstance(v, Template)}
    if spec.secrets:
        write_vars_file(secrets_file, spec.secrets)
        templates["pgaas_secrets_file"] = str(secrets_file)
    write_vars_file(vars_file, data)

    run_token = uuid.uuid4().hex
    env = {"PGAAS_RUN_TOKEN": run_token,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PYTHONUNBUFFERED": "1"}
    env.update(envvars or {})

    first_failure: list[str] = []

    def event_handler(raw: dict) -> bool:
        ev = summarize(raw, scrub)
        if ev is not None:
            if ev.status in ("failed", "unreachable") and not first_failure and not (raw.get("event_data") or {}).get("ignore_errors"):
                plain = ev.message.startswith("host key verification failed")
                first_failure.append(ev.message if plain else f"{ev.task} on {ev.host}: {ev.message}".strip())
            if on_event:
                on_event(ev)
        return True  # keep runner's own artifact copy of the event (secrets are no_log'd by the roles)

    last_check = [0.0, False]

    def cancel_callback() -> bool:
        now = time.monotonic()
        if should_cancel and now - last_check[0] > 0.5:
            last_check[0] = now
            last_check[1] = bool(should_cancel())
            if last_check[1]:
                kill_run(run_token)  # the whole tree: ansible's workers run in sessions of their own
        return last_check[1]

    try:
        r = ansible_runner.run(
            private_data_dir=str(job_dir),
            project_dir=project_dir,
            playbook=spec.playbook,
            inventory=inventory,
            extravars=templates,
            cmdline=f"-e @{vars_file}",
            envvars=env,
            ident=ident,
            quiet=True,
            suppress_env_files=True,
            rotate_artifacts=3,
            event_handler=event_handler,
            cancel_callback=cancel_callback,
            timeout=None,
        )
    except Exception as exc:  # runner itself broke (not the play): our fault, say so
        return Outcome("error", error=f"ansible-runner could not run {spec.playbook}: {scrub(str(exc))}")
    finally:
        if secrets_file.exists():
            secrets_file.unlink()
    if r.status in ("canceled", "timeout"):
        kill_run(run_token)

    artifact_data: dict = {}
    stats: dict = {}
    for raw in r.events:
        if raw.get("event") == "playbook_on_stats":
            data = raw.get("event_data") or {}
            artifact_data = data.get("artifact_data") or {}
            stats = {k: data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped")}
    facts = read_fact_cache(Path(r.config.artifact_dir) / "fact_cache")
    status = r.status
    error = ""
    if status == "failed":
        error = first_failure[0] if first_failure else f"{spec.playbook} failed (rc={r.rc})"
    elif status == "canceled":
        error = "canceled on request"
    elif status == "timeout":
        error = "timed out"
    return Outcome(status, rc=r.rc, error=scrub(error), artifact_data=artifact_data, facts=facts, stats=stats)


def kill_run(run_token: str) -> int:
    """SIGKILL every process that carries this run's token in its environment (ansible-playbook, its workers,
    their modules and commands). Runner's own kill only reaches the process group of ansible-playbook, and
    ansible-core's workers start sessions of their own, so their children would outlive a cancel."""
    needle = f"PGAAS_RUN_TOKEN={run_token}".encode()
    me = os.getpid()
    killed = 0
    for _ in range(3):  # a process may fork while we look: sweep until nothing is left
        found = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == me:
                continue
            try:
                env = (proc / "environ").read_bytes()
            except OSError:
                continue
            if needle in env.split(b"\0"):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                    found += 1
                except ProcessLookupError:
                    pass
        killed += found
        if not found:
            break
        time.sleep(0.05)
    return killed


def read_fact_cache(cache_dir: Path) -> dict:
    """The jsonfile fact cache: one file per host (ansible-core 2.19 names it s<N>_<host> and wraps the facts
    as a JSON string under __payload__)."""
    facts = {}
    for f in sorted(cache_dir.glob("*")) if cache_dir.is_dir() else []:
        m = re.match(r"^s\d+_(.+)$", f.name)
        try:
            data = json.loads(f.read_text())
            if isinstance(data, dict) and isinstance(data.get("__payload__"), str):
                data = json.loads(data["__payload__"])
        except ValueError:
            continue
        if isinstance(data, dict):
            facts[m.group(1) if m else f.name] = data
    return facts


class Heartbeat:
    """Calls beat() every interval seconds in a daemon thread until stopped."""

    def __init__(self, interval: float, beat: Callable[[], None]):
        self._interval = interval
        self._beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="job-heartbeat")

    def _run(self):
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # a missed beat is retried next interval; say so
                log.warning("heartbeat failed", exc_info=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

#!/usr/bin/env python3
"""Runs inside the fresh machine (tests/fresh/check.py copies it in): the product through its JSON API, as an
integration would use it, with the standard library and psql only.

Create a synchronous instance and wait until its standby streams; download its CA certificate (the only thing a
client needs: the URIs say sslmode=verify-full and name it as sslrootcert); create a tenant database as a database
user; write a row through the database's URI and read it back through its read-only URI; check that a plain
(sslmode=disable) connection is refused; delete the instance.
Environment: PGAAS_ADMIN_PASSWORD (printed by the run command), PGAAS_URL (default http://127.0.0.1:8000).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BASE = os.environ.get("PGAAS_URL", "http://127.0.0.1:8000") + "/api/v1"
NAME = "fresh"


def say(msg: str) -> None:
    print(f"[api] {msg}", flush=True)


def call(method: str, path: str, body=None, token: str | None = None, expect=(200,)):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if path.endswith(".crt") and status in expect:
        return raw.decode()
    answer = json.loads(raw) if raw else {}
    if status not in expect:
        raise SystemExit(f"{method} {path}: {status}, expected {expect}: {json.dumps(answer)[:1500]}")
    return answer


def wait_job(job_id: int, token: str, timeout: float = 600) -> dict:
    deadline, seen = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        job = call("GET", f"/jobs/{job_id}", token=token)
        for ev in job.get("events", [])[seen:]:
            if ev.get("status") in ("failed", "unreachable"):
                say(f"  job {job_id}: {ev.get('task')}: {ev.get('message', '')[:600]}")
        seen = len(job.get("events", []))
        if job["status"] not in ("queued", "running"):
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job_id} ({job['kind']}) ended {job['status']}: {job.get('error')}")
            return job
        time.sleep(1)
    raise SystemExit(f"job {job_id} still running after {timeout:.0f} s")


# psql runs here: the URIs name the CA certificate by a relative path (sslrootcert=pgaas-NAME-ca.crt)
CLIENT_DIR = tempfile.mkdtemp(prefix="pgaas-client-")


def psql(uri: str, password: str, sql: str, fail: bool = False) -> str:
    proc = subprocess.run(["psql", uri, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql], capture_output=True, text=True,
                          env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}, timeout=60,
                          cwd=CLIENT_DIR)
    if (proc.returncode != 0) != fail:
        raise SystemExit(f"psql {uri!r} -c {sql!r}: {'connected' if fail else proc.stderr.strip()}")
    return (proc.stderr if fail else proc.stdout).strip()


def main() -> None:
    t0 = time.monotonic()
    admin = call("POST", "/tokens", {"username": "admin", "password": os.environ["PGAAS_ADMIN_PASSWORD"]},
                 expect=(200, 201))["token"]
    created = call("POST", "/instances", {"name": NAME, "synchronous": True}, token=admin, expect=(202,))
    say(f"create answered 202: job {created['job']['id']}")
    wait_job(created["job"]["id"], admin)
    say(f"create job succeeded after {time.monotonic() - t0:.1f} s")
    deadline = time.monotonic() + 120
    while True:
        inst = call("GET", f"/instances/{NAME}", token=admin)
        reps = inst.get("replicas") or []
        if inst["status"] == "available" and reps and all(r["state"] == "streaming" for r in reps) \
                and any(r.get("sync_state") == "sync" for r in reps):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"standby not streaming in sync: {json.dumps(inst)[:1500]}")
        time.sleep(1)
    say(f"available, primary {inst['primary']['name']}, standby {reps[0]['name']} streaming "
        f"({reps[0]['sync_state']}) after {time.monotonic() - t0:.1f} s")
    # the CA certificate, saved under the name the URIs give it, is all a client needs for sslmode=verify-full
    ca = call("GET", f"/instances/{NAME}/ca.crt", token=admin)
    if "BEGIN CERTIFICATE" not in ca or "sslmode=verify-full" not in created["instance"]["uri"]:
        raise SystemExit(f"no CA certificate or no verify-full URI: {ca[:200]!r} {created['instance']['uri']!r}")
    with open(os.path.join(CLIENT_DIR, f"pgaas-{NAME}-ca.crt"), "w") as f:
        f.write(ca)
    # the printed admin URI takes the first thing anyone tries
    psql(created["instance"]["uri"], created["admin_password"], "CREATE TABLE first (id int)")
    say(f"CREATE TABLE through the printed admin URI ({created['instance']['uri']}) worked")

    call("POST", "/users", {"username": "fresh-user", "password": "fresh-user-secret-1"}, token=admin,
         expect=(201,))
    user = call("POST", "/tokens", {"username": "fresh-user", "password": "fresh-user-secret-1"},
                expect=(200, 201))["token"]
    db = call("POST", f"/instances/{NAME}/databases", {"name": "notes"}, token=user, expect=(201,))["database"]
    say(f"tenant database notes: {db['uri']}")
    psql(db["uri"], db["password"], "CREATE TABLE notes (body text); "
                                    "INSERT INTO notes VALUES ('written on a fresh machine')")
    got = psql(db["readonly_uri"], db["password"], "SELECT body FROM notes")
    if got != "written on a fresh machine":
        raise SystemExit(f"read-only URI read {got!r}")
    if psql(db["readonly_uri"], db["password"], "SELECT pg_is_in_recovery() OR current_setting("
                                                "'transaction_read_only')::bool") != "t":
        raise SystemExit("the read-only URI reached a writable session")
    say("row written through the URI, read back through the read-only URI")
    plain = db["uri"].replace("sslmode=verify-full", "sslmode=disable")
    say(f"a plain connection is refused: {psql(plain, db['password'], 'SELECT 1', fail=True)[-160:]}")

    deleted = call("DELETE", f"/instances/{NAME}?force=true", token=admin, expect=(202,))
    wait_job(deleted["job"]["id"], admin)
    call("GET", f"/instances/{NAME}", token=admin, expect=(404,))
    say(f"instance deleted; {time.monotonic() - t0:.1f} s in all")


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            print(f"[api] FAILED: {exc.code}", file=sys.stderr, flush=True)
            sys.exit(1)

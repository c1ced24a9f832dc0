#!/usr/bin/env python3
"""Backup and restore benchmark (issue 15), on an in-process control plane with backups on (its own repository
container and port), one pair, the real jobs:

  backup   --mb MB of rows written, then a full backup through POST /api/v1/instances/NAME/backups. pgBackRest's own
           time is the play's "Take the backup" task; beside it, in the same run, a plain `tar` of the same data
           directory (the primary's volume, as podman mounts it) to a file on the same disk: MB/s of each, and the
           ratio. pgBackRest compresses (lz4) and sends over TLS; tar only copies.
  restore  rows keep being written; POST .../restore to a point between them. Printed: the time until the first
           member takes writes again (the job's first run: archive, stop, restore, recovery, start), until a row
           can be written through the instance's URI, and until the whole job ends (a full backup of the new
           timeline, the standby rebuilt from it); and whether exactly the rows committed up to the target are
           there (a wrong count makes the bench fail).

The issue's anchors for the restore: Neon branches in seconds, RDS and Cloud SQL build a new instance in minutes;
its target is 60 s to a writable copy of 1 GB (--mb 1024). At the end (also on Ctrl-C or SIGTERM) everything of
bench-bk-* is removed, the repository container and directory too. --smoke: 16 MB.

    .venv/bin/python bench/backup.py [--mb 1024] [--smoke]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timezone
from pathlib import Path

import _common as common
from _common import BenchFailed

PREFIX, NAME = "bench-bk-", "bench-bk-1"
REPO_NAME, REPO_PORT = "pgaas-backup-repo-bench", 23800  # beside the bench's member ports (23700-23799)
PASSWORD = "Bench-backup-password-1"


def task_seconds(job: dict, task: str) -> float | None:
    times = [e["duration"] for e in job.get("events", []) if e["task"] == task and e.get("duration") is not None]
    return max(times) if times else None


def load(uri: str, mb: int) -> float:
    """Rows of about 1 kB until the table holds `mb` MB; the seconds it took."""
    import psycopg

    t0 = time.monotonic()
    with psycopg.connect(uri, password=PASSWORD, connect_timeout=10, autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS filler (id bigserial PRIMARY KEY, pad text NOT NULL)")
        for _ in range(mb):  # about 1 MB per statement
            c.execute("INSERT INTO filler (pad) SELECT repeat(md5(random()::text), 30) FROM generate_series(1, 1000)")
    return time.monotonic() - t0


def tar_seconds(volume: str, out_dir: Path) -> tuple[float, int]:
    """A plain tar of the volume's data to a file on the same disk: (seconds, bytes)."""
    mount = common.podman("volume", "mount", volume, check=True).stdout.strip()
    target = out_dir / "data.tar"
    try:
        t0 = time.monotonic()
        subprocess.run(["tar", "-cf", str(target), "-C", mount, "."], check=True, capture_output=True, timeout=3600)
        took = time.monotonic() - t0
        size = target.stat().st_size
    finally:
        common.podman("volume", "unmount", volume)
        target.unlink(missing_ok=True)
    return took, size


def run(args) -> None:
    import psycopg

    repo_dir = Path(tempfile.mkdtemp(prefix="pgaas-bench-bk-repo-"))
    scratch = Path(tempfile.mkdtemp(prefix="pgaas-bench-bk-tar-", dir="/var/tmp"))
    try:
        with common.ControlPlane("backup", PREFIX, workers=1, BACKUPS_ENABLED=True, BACKUP_REPO_NAME=REPO_NAME,
                                 BACKUP_REPO_PORT=REPO_PORT, BACKUP_REPO_DIR=str(repo_dir),
                                 BACKUP_SCHEDULE_SECONDS=3600, SAMPLE_SECONDS=3600) as cp:
            api = cp.live.admin
            created = cp.create(NAME, admin_password=PASSWORD)
            cp.wait_ok(created["job"]["id"], timeout=300)
            uri = created["instance"]["uri"]
            took = load(uri, args.mb)
            print(f"  loaded {args.mb} MB in {took:.1f} s", flush=True)

            r = api.post(f"/api/v1/instances/{NAME}/backups", json={"type": "full"})
            job = cp.wait_ok(r.json()["job"]["id"], timeout=3600)
            backup_s = task_seconds(job, "Take the backup")
            size = job["result"]["backup"]["size_bytes"]
            tar_s, tar_size = tar_seconds(f"pgaas-{NAME}-0-data", scratch)
            mb = size / 2**20
            print(f"  backup: pgBackRest full of {mb:.0f} MB in {backup_s:.1f} s ({mb / backup_s:.1f} MB/s), "
                  f"{job['result']['backup']['repo_size_bytes'] / 2**20:.0f} MB in the repository", flush=True)
            print(f"  tar of the same data directory ({tar_size / 2**20:.0f} MB) in {tar_s:.1f} s "
                  f"({tar_size / 2**20 / tar_s:.1f} MB/s)", flush=True)
            print(f"  RATIO backup/tar throughput: {(mb / backup_s) / (tar_size / 2**20 / tar_s):.2f}", flush=True)

            with psycopg.connect(uri, password=PASSWORD, connect_timeout=10, autocommit=True) as c:
                c.execute("CREATE TABLE marks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
                for i in range(1, 11):
                    c.execute("INSERT INTO marks (id) VALUES (%s)", (i,))
                time.sleep(0.5)
                target = c.execute("SELECT clock_timestamp()").fetchone()[0]
                time.sleep(0.5)
                for i in range(11, 21):
                    c.execute("INSERT INTO marks (id) VALUES (%s)", (i,))
            t0 = time.monotonic()
            r = api.post(f"/api/v1/instances/{NAME}/restore",
                         json={"target_time": target.astimezone(timezone.utc).isoformat(), "confirm": NAME})
            if r.status_code != 202:
                raise BenchFailed(f"restore answered {r.status_code}: {r.text[:300]}")
            job_id = r.json()["job"]["id"]
            writable = None
            while writable is None:
                try:
                    with psycopg.connect(uri, password=PASSWORD, connect_timeout=3, autocommit=True) as c:
                        if c.execute("SELECT count(*) FROM marks").fetchone()[0] == 10:  # the restored data
                            c.execute("INSERT INTO marks (id) VALUES (100)")
                            writable = time.monotonic() - t0
                except psycopg.Error:
                    pass
                if writable is None:
                    if api.get(f"/api/v1/jobs/{job_id}").json()["status"] in common.FINAL:
                        break
                    time.sleep(0.2)
            job = cp.wait_ok(job_id, timeout=3600)
            whole = time.monotonic() - t0
            first_run = task_seconds(job, "Restore and recover the first member's data in a one-off container")
            with psycopg.connect(uri, password=PASSWORD, connect_timeout=10) as c:
                ids = c.execute("SELECT array_agg(id ORDER BY id) FROM marks").fetchone()[0]
            if ids != [*range(1, 11), 100]:
                raise BenchFailed(f"after the restore to the target the rows are {ids}, not 1..10 and 100")
            print(f"  restore in place of {mb:.0f} MB: pgBackRest restore + recovery {first_run:.1f} s; writable "
                  f"through the URI {writable if writable is None else round(writable, 1)} s after the request; "
                  f"the whole job (with a full backup and the standby rebuilt) {whole:.1f} s; rows: exactly those "
                  "committed up to the target", flush=True)
            print(f"  target (issue 15): writable within 60 s for 1 GB; this run: {args.mb} MB", flush=True)
    finally:
        common.podman("rm", "-f", "-t", "0", REPO_NAME)
        shutil.rmtree(f"/var/lib/pgaas/{REPO_NAME}", ignore_errors=True)
        shutil.rmtree(repo_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=1024, help="MB of rows before the backup (default 1024)")
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.mb = 16
    common.smoke_note(args.smoke)
    if not common.require_image():
        return 1
    common.trap_signals()
    print(common.load_line("at start"), flush=True)
    try:
        run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(common.load_line("at the end"), flush=True)
    return 0


if __name__ == "__main__":
    os.chdir(common.REPO)  # the printed URIs name the CA file relative to the repository's root
    sys.exit(main())

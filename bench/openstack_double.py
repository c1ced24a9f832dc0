#!/usr/bin/env python3
"""What the openstack provider's cloud side costs, against the OpenStack TEST DOUBLE (tests/openstack_double,
no machines behind the servers): playbooks/openstack_provision.yml for a two-member instance, a rerun of it (must
change nothing), and playbooks/openstack_teardown.yml, each through ansible-runner as a job runs them. Prints wall
time, the number of tasks and of HTTP requests the double served, and the slowest tasks (per-module start-up, i.e.
Python plus openstacksdk imports, dominates: every openstack.cloud task is a new process).

The double answers in microseconds, so these figures are pgaas's and Ansible's own cost; a real cloud adds its
API latency and the time servers take to boot. Exit status 0 whatever the numbers, 1 if a playbook failed, 130
when interrupted. --smoke: one provision and one teardown (the rerun is the same playbook through the same code
here, and takes another 25 s).

    .venv/bin/python bench/openstack_double.py [--runs N] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as common


def run(work: Path, playbook: str, extravars: dict) -> tuple[float, object, list]:
    t = time.monotonic()
    r = common.run_playbook(work, playbook, extravars)
    wall = time.monotonic() - t
    tasks = [(e["event_data"].get("duration") or 0, e["event_data"].get("task", "")) for e in r.events
             if e["event"] in ("runner_on_ok", "runner_on_failed", "runner_on_skipped")]
    return wall, r, tasks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    common.add_smoke(ap)
    args = ap.parse_args()
    kinds = [("provision", "playbooks/openstack_provision.yml"), ("rerun", "playbooks/openstack_provision.yml"),
             ("teardown", "playbooks/openstack_teardown.yml")]
    if args.smoke:
        args.runs, kinds = 1, [kinds[0], kinds[2]]
    common.trap_signals()
    common.smoke_note(args.smoke)
    figures: dict[str, list[float]] = {kind: [] for kind, _ in kinds}
    failed = []
    try:
        for i in range(args.runs):
            failed += one_run(i, kinds, figures)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaned up", flush=True)
        return 130
    for kind, walls in figures.items():
        if walls:
            print(f"{kind:9s} median {statistics.median(walls):6.1f} s over {len(walls)} run(s)")
    print(json.dumps({k: [round(w, 2) for w in v] for k, v in figures.items()}))
    for f in failed:
        print(f"FAILED: {f}")
    return 1 if failed else 0


def one_run(i: int, kinds: list[tuple[str, str]], figures: dict[str, list[float]]) -> list[str]:
    """The playbooks of one run against a fresh double (their wall times into figures); what failed."""
    import yaml

    from tests.openstack_double import CloudDouble

    failed = []
    double = CloudDouble()
    double.start()
    work = Path(tempfile.mkdtemp(prefix="pgaas-bench-openstack-"))
    os.chmod(work, 0o700)
    try:
        clouds = work / "clouds.yaml"
        clouds.write_text(yaml.safe_dump(double.clouds_yaml()))
        os.chmod(clouds, 0o600)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")], check=True)
        os_vars = {"cloud": "pgaas-double", "clouds_yaml": str(clouds), "image": "debian-12", "flavor": "m1.small",
                   "network": "pgaas-net", "public_key": (work / "key.pub").read_text().strip(),
                   "private_key_file": str(work / "key"), "control_cidrs": ["192.0.2.10/32"]}
        extravars = {"pgaas_instance_name": f"bench-os-{i}", "pgaas_storage_gb": 1, "pgaas_openstack": os_vars,
                     "pgaas_members": [{"name": f"pgaas-bench-os-{i}-{n}"} for n in range(2)]}
        for kind, playbook in kinds:
            before = len(double.requests)
            wall, r, tasks = run(work, playbook, extravars)
            figures[kind].append(wall)
            slow = sorted(tasks, reverse=True)[:3]
            print(f"run {i + 1} {kind:9s} {r.status:10s} {wall:6.1f} s  tasks {len(tasks):3d}  "
                  f"requests {len(double.requests) - before:4d}  slowest: "
                  + ", ".join(f"{t} {d:.1f} s" for d, t in slow), flush=True)
            if r.status != "successful":
                failed.append(f"run {i + 1} {kind}: {common.playbook_failure(r)}")
        print(f"run {i + 1} left in the cloud: {len(double.servers)} servers, {len(double.volumes)} volumes, "
              f"requests the double could not serve: {len(double.unhandled)}; "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        with common.shielded():
            double.stop()
            shutil.rmtree(work, ignore_errors=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())

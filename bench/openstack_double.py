#!/usr/bin/env python3
"""What the openstack provider's cloud side costs, against the OpenStack TEST DOUBLE (tests/openstack_double,
no machines behind the servers): playbooks/openstack_provision.yml for a two-member instance, a rerun of it (must
change nothing), and playbooks/openstack_teardown.yml, each through ansible-runner as a job runs them. Prints wall
time, the number of tasks and of HTTP requests the double served, and the slowest tasks (per-module start-up, i.e.
Python plus openstacksdk imports, dominates: every openstack.cloud task is a new process).

The double answers in microseconds, so these figures are pgaas's and Ansible's own cost; a real cloud adds its
API latency and the time servers take to boot. Exit status 0 whatever the numbers.

    .venv/bin/python bench/openstack_double.py [--runs N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run(work: Path, playbook: str, extravars: dict) -> tuple[float, str, list]:
    import ansible_runner

    pd = Path(tempfile.mkdtemp(dir=work))
    t = time.monotonic()
    r = ansible_runner.run(private_data_dir=str(pd), project_dir=str(REPO), playbook=playbook, extravars=extravars,
                           inventory=str(REPO / "inventory" / "local" / "hosts.yml"), quiet=True,
                           envvars={"PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]})
    wall = time.monotonic() - t
    tasks = [(e["event_data"].get("duration") or 0, e["event_data"].get("task", "")) for e in r.events
             if e["event"] in ("runner_on_ok", "runner_on_failed", "runner_on_skipped")]
    return wall, r.status, tasks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    import yaml

    from tests.openstack_double import CloudDouble

    figures: dict[str, list[float]] = {"provision": [], "rerun": [], "teardown": []}
    for i in range(args.runs):
        double = CloudDouble()
        double.start()
        work = Path(tempfile.mkdtemp(prefix="bench-openstack-"))
        clouds = work / "clouds.yaml"
        clouds.write_text(yaml.safe_dump(double.clouds_yaml()))
        os.chmod(clouds, 0o600)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")], check=True)
        os_vars = {"cloud": "pgaas-double", "clouds_yaml": str(clouds), "image": "debian-12", "flavor": "m1.small",
                   "network": "pgaas-net", "public_key": (work / "key.pub").read_text().strip(),
                   "private_key_file": str(work / "key"), "control_cidrs": ["192.0.2.10/32"]}
        extravars = {"pgaas_instance_name": f"bench-os-{i}", "pgaas_storage_gb": 1, "pgaas_openstack": os_vars,
                     "pgaas_members": [{"name": f"pgaas-bench-os-{i}-{n}"} for n in range(2)]}
        try:
            for kind, playbook in (("provision", "playbooks/openstack_provision.yml"),
                                   ("rerun", "playbooks/openstack_provision.yml"),
                                   ("teardown", "playbooks/openstack_teardown.yml")):
                before = len(double.requests)
                wall, status, tasks = run(work, playbook, extravars)
                figures[kind].append(wall)
                slow = sorted(tasks, reverse=True)[:3]
                print(f"run {i + 1} {kind:9s} {status:10s} {wall:6.1f} s  tasks {len(tasks):3d}  "
                      f"requests {len(double.requests) - before:4d}  slowest: "
                      + ", ".join(f"{t} {d:.1f} s" for d, t in slow))
            print(f"run {i + 1} left in the cloud: {len(double.servers)} servers, {len(double.volumes)} volumes, "
                  f"requests the double could not serve: {len(double.unhandled)}; "
                  f"load average {os.getloadavg()[0]:.1f}")
        finally:
            double.stop()
    for kind, walls in figures.items():
        if walls:
            print(f"{kind:9s} median {statistics.median(walls):6.1f} s over {len(walls)} run(s)")
    print(json.dumps({k: [round(w, 2) for w in v] for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""How fast lab hosts come up and get the PostgreSQL image: the two ways the tests and the product use.

  create   Lab.create(N): N privileged containers with sshd and podman on a lab- network, until SSH answers
  shared   first `podman run --rm IMAGE true` over SSH on a host whose image store has the outer store as a
           read-only additionalimagestores entry (no copy at all)
  archive  the product's offline path on a host that starts empty (shared_images=False): `podman save` on the
           control plane (pgaas-save-image.sh, once per image ID), copy over SSH, `podman load` there; timed
           per step, plus the size of the archive
  pull     not measured: no registry is reachable from this machine

The lab prefixes are lab-ssh-bench and lab-ssh-bench-empty (removed at the end, also on Ctrl-C). Exit status 0
whatever the numbers.

    .venv/bin/python bench/lab_images.py [--hosts 3] [--image localhost/pgaas-postgres:15]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "etc" / "containers.conf"))

from tests.lab import Lab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--image", default="localhost/pgaas-postgres:15")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    shared = Lab("lab-ssh-bench")
    empty = Lab("lab-ssh-bench-empty", shared_images=False)
    try:
        t = time.monotonic()
        hosts = shared.create(args.hosts)
        print(f"create   {args.hosts} hosts until SSH answers: {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        shared.ssh(hosts[0], f"sudo podman run --rm {args.image} true")
        print(f"shared   first nested run of {args.image} (no copy): {time.monotonic() - t:.1f} s")

        (host,) = empty.create(1)
        with tempfile.TemporaryDirectory() as d:
            t = time.monotonic()
            out = subprocess.run([str(REPO / "roles/container_engine/files/pgaas-save-image.sh"), args.image, d],
                                 check=True, capture_output=True, text=True).stdout.split()
            save = time.monotonic() - t
            archive = out[1]
            size = os.path.getsize(archive)
            t = time.monotonic()
            with open(archive, "rb") as f:
                subprocess.run([*empty.ssh_args(host), "cat > /var/tmp/image.tar"], stdin=f, check=True)
            copy = time.monotonic() - t
            t = time.monotonic()
            empty.ssh(host, "sudo podman load --input /var/tmp/image.tar >/dev/null && rm /var/tmp/image.tar",
                      timeout=600)
            load = time.monotonic() - t
            t = time.monotonic()
            again = subprocess.run([str(REPO / "roles/container_engine/files/pgaas-save-image.sh"), args.image, d],
                                   check=True, capture_output=True, text=True).stdout.split()[0]
            cached = time.monotonic() - t
        print(f"archive  {size / 1e6:.0f} MB: save {save:.1f} s, copy over SSH {copy:.1f} s, load {load:.1f} s "
              f"(total {save + copy + load:.1f} s); a second save of the same image ID: {again} in {cached:.2f} s")
    finally:
        shared.destroy()
        empty.destroy()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

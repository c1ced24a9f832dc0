#!/usr/bin/env python3
"""How fast lab hosts come up and get the PostgreSQL image: the two ways the tests and the product use.

  create   Lab.create(N): N privileged containers with sshd and podman on a lab- network, until SSH answers
  shared   first `podman run --rm IMAGE true` over SSH on a host whose image store has the outer store as a
           read-only additionalimagestores entry (no copy at all)
  archive  the product's offline path on a host that starts empty (shared_images=False): `podman save` on the
           control plane (pgaas-save-image.sh, once per image ID), copy over SSH, `podman load` there; timed
           per step, plus the size of the archive
  pull     not measured: no registry is reachable from this machine

The lab prefixes are lab-bench-images and lab-bench-images-empty (removed at the end, also on Ctrl-C or SIGTERM);
the lab image is built first when missing (tests/lab, untimed). Exit status 0 whatever the numbers, 1 if a step
failed, 130 when interrupted. --smoke: one host in each lab, and the archive path with a tiny image of one small
file made for the run (localhost/pgaas-bench-tiny:smoke, removed after) instead of the PostgreSQL image's 600 MB:
the same commands in a few seconds.

    .venv/bin/python bench/lab_images.py [--hosts 3] [--image localhost/pgaas-postgres:15] [--archive-image IMAGE]
                                         [--smoke]
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import _common as common
from _common import REPO

SAVE = str(REPO / "roles" / "container_engine" / "files" / "pgaas-save-image.sh")
TINY = "localhost/pgaas-bench-tiny:smoke"


def tiny_image() -> str:
    """An image of one small file (podman import of a tar made here): the archive path's commands, not its size."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"pgaas bench smoke\n"
        info = tarfile.TarInfo("smoke.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    r = subprocess.run(["podman", "import", "-", TINY], input=buf.getvalue(), capture_output=True,
                       env=common.PODMAN_ENV)
    if r.returncode != 0:
        raise common.BenchFailed(f"podman import of {TINY}: {r.stderr.decode(errors='replace').strip()}")
    return TINY


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--image", default=common.IMAGE)
    ap.add_argument("--archive-image", help="image for the archive path (default: --image)")
    common.add_smoke(ap)
    args = ap.parse_args()
    if args.smoke:
        args.hosts = 1
    if not common.require_image(args.image):
        return 2
    common.trap_signals()
    from tests.lab import Lab, ensure_image

    print(f"load average before: {os.getloadavg()[0]:.1f}")
    common.smoke_note(args.smoke)
    t = time.monotonic()
    ensure_image()
    if time.monotonic() - t > 5:
        print(f"(lab image built in {time.monotonic() - t:.0f} s, untimed)", flush=True)
    shared = Lab("lab-bench-images")
    empty = Lab("lab-bench-images-empty", shared_images=False)
    try:
        if args.smoke:
            args.archive_image = tiny_image()
        archive_image = args.archive_image or args.image
        t = time.monotonic()
        hosts = shared.create(args.hosts)
        print(f"create   {args.hosts} hosts until SSH answers: {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        shared.ssh(hosts[0], f"sudo podman run --rm {args.image} true")
        print(f"shared   first nested run of {args.image} (no copy): {time.monotonic() - t:.1f} s")

        (host,) = empty.create(1)
        with tempfile.TemporaryDirectory() as d:
            t = time.monotonic()
            out = subprocess.run([SAVE, archive_image, d], check=True, capture_output=True, text=True,
                                 env=common.PODMAN_ENV).stdout.split()
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
            again = subprocess.run([SAVE, archive_image, d], check=True, capture_output=True, text=True,
                                   env=common.PODMAN_ENV).stdout.split()[0]
            cached = time.monotonic() - t
        print(f"archive  {archive_image} {size / 1e6:.1f} MB: save {save:.1f} s, copy over SSH {copy:.1f} s, "
              f"load {load:.1f} s (total {save + copy + load:.1f} s); a second save of the same image ID: {again} "
              f"in {cached:.2f} s")
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
        return 130
    finally:
        with common.shielded():
            shared.destroy()
            empty.destroy()
            if args.smoke:
                common.podman("rmi", "-f", TINY)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The local provider's container stats against podman itself: one `podman stats` call for every container of a
cycle gives the numbers podman gives for each container alone; a volume's disk use equals du's and is measured
again only when older than its max age. Real podman containers and volumes (idle `sleep`s: their numbers hold
still), no Patroni pair needed."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest

from tests.conftest import REPO
from tests.e2e.helpers import INST, PODMAN_ENV, podman
from webapp.providers import local

BASE_IMAGE = "localhost/pgaas-base:bookworm"
PREFIX = f"pgaas-{INST}-stats"
NAMES = [f"{PREFIX}-0", f"{PREFIX}-1"]


def _cleanup():
    subprocess.run(["podman", "rm", "-f", "-t", "0", *NAMES], capture_output=True, env=PODMAN_ENV)
    subprocess.run(["podman", "volume", "rm", "-f", *[f"{n}-data" for n in NAMES]], capture_output=True,
                   env=PODMAN_ENV)


@pytest.fixture(scope="module")
def sleepers():
    _cleanup()
    for i, name in enumerate(NAMES):
        podman("volume", "create", "--label", f"pgaas.instance={INST}-stats", f"{name}-data")
        podman("run", "-d", "--name", name, "--label", f"pgaas.instance={INST}-stats", "-v",
               f"{name}-data:/data", BASE_IMAGE, "sh", "-c",
               f"mkdir -p /data/base/1 && head -c {300_000 * (i + 1)} /dev/urandom > /data/base/1/f && "
               f"ln /data/base/1/f /data/hardlink && sync && exec sleep 600")
    mounts = {n: podman("volume", "inspect", "--format", "{{.Mountpoint}}", f"{n}-data").strip() for n in NAMES}
    for n in NAMES:  # the files are written before the numbers are compared
        for _ in range(50):
            if os.path.exists(os.path.join(mounts[n], "hardlink")):
                break
            time.sleep(0.1)
    # the numbers of a container that just started still move (its shell exits into sleep, page cache settles):
    # wait until two looks in a row agree
    prev = None
    for _ in range(40):
        now = [(s["MemUsage"], s["CPUNano"]) for s in map(podman_alone, NAMES)]
        if now == prev:
            break
        prev = now
        time.sleep(0.25)
    yield mounts
    _cleanup()


def podman_alone(name: str) -> dict:
    out = podman("stats", "--no-stream", "--format", "{{json .ContainerStats}}", name)
    return json.loads(out.splitlines()[0])


def du(path: str) -> int:
    return int(subprocess.run(["du", "-s", "-B1", path], check=True, capture_output=True, text=True)
               .stdout.split()[0])


def provider(max_age: float = 60.0) -> local.LocalProvider:
    return local.LocalProvider({"PORT_RANGE_START": 1, "PORT_RANGE_END": 2, "VOLUME_SIZE_SECONDS": max_age,
                                "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")})


def test_one_podman_stats_call_gives_each_containers_own_numbers(sleepers, monkeypatch):
    calls = []
    real_run = subprocess.run
    me = threading.get_ident()

    def counting_run(cmd, *a, **kw):
        # subprocess.run is patched for the whole process: count this test's calls only, not those of another
        # thread still alive from an earlier test (a monitoring sampler of an app that test started)
        r = real_run(cmd, *a, **kw)
        if threading.get_ident() == me:
            calls.append(cmd[:2] + ([r.returncode, (r.stderr or "")[-300:]] if r.returncode else []))
        return r

    monkeypatch.setattr(local.subprocess, "run", counting_run)
    p = provider()
    batched = p.stats(NAMES)
    assert [c for c in calls if c[:2] == ["podman", "stats"]] == [["podman", "stats"]], calls
    monkeypatch.undo()
    for name in NAMES:
        assert batched[name]["volume_bytes"] == du(sleepers[name]), name
        assert batched[name]["cpu_percent"] is not None
    # an idle container's memory can still move by a page between two looks: compare looks taken back to back,
    # and insist on exact equality in one of a few tries
    for _ in range(5):
        batched = p.stats(NAMES)
        alone = {name: podman_alone(name) for name in NAMES}
        ours = [(batched[n]["memory_bytes"], batched[n]["memory_limit_bytes"], batched[n]["cpu_seconds"])
                for n in NAMES]
        theirs = [(alone[n]["MemUsage"], alone[n]["MemLimit"], round(alone[n]["CPUNano"] / 1e9, 3)) for n in NAMES]
        if ours == theirs:
            break
    assert ours == theirs
    assert batched[NAMES[1]]["volume_bytes"] > batched[NAMES[0]]["volume_bytes"]

    calls.clear()
    monkeypatch.setattr(local.subprocess, "run", counting_run)
    p.stats(NAMES)  # mount points and fresh sizes are known now: no volume inspect, no du, one stats call
    assert calls == [["podman", "stats"]], calls


def test_a_missing_container_does_not_hide_the_others(sleepers):
    out = provider().stats([NAMES[0], f"{PREFIX}-gone", NAMES[1]])
    assert set(out) == set(NAMES)
    assert all(out[n]["memory_bytes"] > 0 for n in NAMES)


def test_volume_use_is_cached_with_its_age_and_measured_again_when_old(sleepers):
    p = provider(max_age=60)
    first = p.stats(NAMES)[NAMES[0]]
    podman("exec", NAMES[0], "sh", "-c", "head -c 500000 /dev/urandom > /data/more && sync")
    cached = p.stats(NAMES)[NAMES[0]]
    assert cached["volume_bytes"] == first["volume_bytes"]
    assert cached["volume_measured_at"] == first["volume_measured_at"]
    p.volumes.max_age = 0  # too old now: the cycle gets the old number at once, a background thread measures
    assert p.stats(NAMES)[NAMES[0]]["volume_measured_at"] == first["volume_measured_at"]
    p.volumes.wait_refreshed()
    fresh = p.stats(NAMES)[NAMES[0]]
    assert fresh["volume_bytes"] == du(sleepers[NAMES[0]]) >= first["volume_bytes"] + 500_000
    assert fresh["volume_measured_at"] > first["volume_measured_at"]
    fs = p.volume_filesystems(NAMES)
    assert set(fs) == set(NAMES) and all(0 < used < size for used, size in fs.values())

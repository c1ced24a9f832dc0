"""The embedded default: every member is a podman container on this machine, ports published on 127.0.0.1."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from datetime import datetime, timezone

from webapp.providers.base import Placement, Provider


class LocalProvider(Provider):
    name = "local"
    supports_exit_events = True  # podman events

    def __init__(self, config):
        self.port_start = int(config["PORT_RANGE_START"])
        self.port_end = int(config["PORT_RANGE_END"])
        self.containers_conf = config["CONTAINERS_CONF"]
        self.volumes = VolumeSizes(self.containers_conf, float(config.get("VOLUME_SIZE_SECONDS", 60.0)))

    def stats(self, containers: list[str]) -> dict[str, dict]:
        """Container CPU and memory (one podman call for all) and data-volume use (cached, with its age)."""
        return container_stats(containers, self.containers_conf, volumes=self.volumes)

    def volume_filesystems(self, members: list[str]) -> dict[str, tuple[int, int]]:
        """(used, size) in bytes, as df counts them, of the filesystem holding each member's data volume."""
        out = {}
        for vol, mount in self.volumes.mounts([f"{m}-data" for m in members]).items():
            try:
                st = os.statvfs(mount)
            except OSError:
                continue
            used, avail = (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_bavail * st.f_frsize
            out[vol.removesuffix("-data")] = (used, used + avail)
        return out

    def hosts(self) -> list[str]:
        return ["localhost"]

    # The leader guard's seam (services/leader_guard.py): member exits as they happen, whether a member's
    # container has certainly exited, and where the instance's etcd answers.
    def watch_exits(self, stop, on_exit) -> None:
        watch_exits(stop, on_exit, self.containers_conf)

    def member_exited(self, container: str) -> bool:
        return container_exited(container, self.containers_conf)

    def local_containers(self) -> dict[str, str]:
        """State of every pgaas container on this machine (the start-up check, services/startup.py)."""
        return container_states(self.containers_conf)

    def dcs_endpoints(self, instance: str) -> list[str]:
        """The one etcd container of a local instance, by its address on the instance network (this host
        routes to its podman bridges)."""
        try:
            r = _podman(["container", "inspect", "--format", "{{json .NetworkSettings.Networks}}",
                         f"pgaas-{instance}-etcd"], self.containers_conf)
            nets = json.loads(r.stdout or "{}") if r.returncode == 0 else {}
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return []
        return [f"http://{n['IPAddress']}:2379" for n in (nets or {}).values() if n.get("IPAddress")]

    def place(self, instance: str, count: int, used_ports: set[tuple[str, int]]) -> list[Placement]:
        """One container per member, all on localhost (the caller reports same_host)."""
        ports = self._free_ports(2 * count, {p for h, p in used_ports if h == "localhost"})
        return [
            Placement(f"pgaas-{instance}-{i}", "localhost", "127.0.0.1", ports[2 * i], ports[2 * i + 1])
            for i in range(count)
        ]

    def free_ports(self, host: str, count: int, used_ports: set[tuple[str, int]]) -> list[int]:
        return self._free_ports(count, {p for h, p in used_ports if h == host})

    def _free_ports(self, n: int, taken: set[int]) -> list[int]:
        found = []
        for port in range(self.port_start, self.port_end + 1):
            if port in taken or not _bindable(port):
                continue
            found.append(port)
            if len(found) == n:
                return found
        raise RuntimeError(f"no free ports left in {self.port_start}-{self.port_end}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tree_bytes(path: str) -> int:
    """Disk use of a directory tree as du counts it (allocated blocks, each hard-linked file once)."""
    try:
        total = os.lstat(path).st_blocks * 512
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue  # a directory PostgreSQL removed while we walked
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def podman_stats(containers: list[str], conf: str, timeout: float = 10.0) -> dict[str, dict]:
    """CPU %, CPU time and memory of the given containers from ONE `podman stats --no-stream` call, exact numbers
    (podman's ContainerStats as JSON, bytes and nanoseconds, not its rounded human text). A named container that
    does not exist makes podman refuse the whole call: then one call for every running container, filtered."""
    if not containers:
        return {}
    env = {**os.environ, "CONTAINERS_CONF": conf}
    fmt = ["--no-stream", "--format", "{{json .ContainerStats}}"]
    try:
        r = subprocess.run(["podman", "stats", *fmt, *containers], capture_output=True, text=True,
                           timeout=timeout, env=env)
        if r.returncode != 0:
            r = subprocess.run(["podman", "stats", *fmt], capture_output=True, text=True, timeout=timeout, env=env)
        lines = r.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    wanted = set(containers)
    out: dict[str, dict] = {}
    for line in lines:
        try:
            st = json.loads(line)
        except ValueError:
            continue
        if not isinstance(st, dict) or st.get("Name") not in wanted:
            continue
        cpu = st.get("CPU")
        out[st["Name"]] = {"cpu_percent": round(float(cpu), 2) if isinstance(cpu, (int, float)) else None,
                           "cpu_seconds": round(st.get("CPUNano", 0) / 1e9, 3),
                           "memory_bytes": int(st.get("MemUsage", 0)),
                           "memory_limit_bytes": int(st.get("MemLimit", 0))}
    return out


def du_bytes(path: str, timeout: float = 60.0) -> int:
    """`du -s -B1`: disk use of a tree (allocated blocks, hard links once); du is C and holds no Python lock. A
    file removed while du reads makes it complain but still print the total; without du, walk in Python."""
    try:
        r = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, timeout=timeout)
        return int(r.stdout.split()[0])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return _tree_bytes(path)


class VolumeSizes:
    """Disk use of the members' `<name>-data` volumes, handed out with the time it was measured. Measuring walks
    every file of a data directory, the costly part of a sampling cycle, so a volume is measured again only when
    its number is older than `max_age` seconds, and then by a background thread while the cycle goes on with the
    previous number (and its age). Only a volume never measured is measured inside the cycle. Mount points are
    asked of podman once per volume, in one call for all the new ones."""

    def __init__(self, conf: str, max_age: float = 60.0, clock=time.monotonic):
        self.conf, self.max_age, self.clock = conf, max_age, clock
        self._mounts: dict[str, str] = {}
        self._sizes: dict[str, tuple[int, float, float]] = {}  # volume -> (bytes, clock, wall time) when measured
        self._lock = threading.Lock()
        self._refresher: threading.Thread | None = None

    def mounts(self, volumes: list[str], timeout: float = 10.0) -> dict[str, str]:
        with self._lock:
            for v in [v for v in volumes if v in self._mounts and not os.path.isdir(self._mounts[v])]:
                del self._mounts[v]  # the volume was removed (and maybe made again elsewhere)
                self._sizes.pop(v, None)
            missing = [v for v in volumes if v not in self._mounts]
        if missing:
            env = {**os.environ, "CONTAINERS_CONF": self.conf}
            cmd = ["podman", "volume", "inspect", "--format", "{{.Name}}|{{.Mountpoint}}"]
            try:
                r = subprocess.run([*cmd, *missing], capture_output=True, text=True, timeout=timeout, env=env)
                lines = r.stdout.splitlines()
                if r.returncode != 0 and len(missing) > 1:  # one unknown volume fails them all: ask one by one
                    lines = [ln for v in missing for ln in subprocess.run(
                        [*cmd, v], capture_output=True, text=True, timeout=timeout, env=env).stdout.splitlines()]
            except (OSError, subprocess.TimeoutExpired):
                lines = []
            with self._lock:
                for line in lines:
                    name, _, mount = line.partition("|")
                    if name and mount:
                        self._mounts[name] = mount
        with self._lock:
            return {v: self._mounts[v] for v in volumes if v in self._mounts}

    def _measure(self, vol: str, mount: str) -> tuple[int, float, float]:
        size = (du_bytes(mount), self.clock(), time.time())
        with self._lock:
            self._sizes[vol] = size
        return size

    def _refresh(self, stale: dict[str, str]) -> None:
        try:
            for vol, mount in stale.items():
                self._measure(vol, mount)
        finally:
            with self._lock:
                self._refresher = None

    def sizes(self, volumes: list[str]) -> dict[str, dict]:
        """{volume: {"volume_bytes", "volume_measured_at"}}."""
        mounts = self.mounts(volumes)
        out, stale = {}, {}
        for vol, mount in mounts.items():
            with self._lock:
                cached = self._sizes.get(vol)
            if cached is None:
                cached = self._measure(vol, mount)
            elif self.clock() - cached[1] >= self.max_age:
                stale[vol] = mount
            out[vol] = {"volume_bytes": cached[0],
                        "volume_measured_at": datetime.fromtimestamp(cached[2], timezone.utc).isoformat()}
        with self._lock:
            if stale and self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh, args=(stale,), daemon=True,
                                                   name="pgaas-volume-sizes")
                self._refresher.start()
        return out

    def wait_refreshed(self, timeout: float = 60.0) -> None:
        """Wait for a background measurement to end (tests, benchmarks)."""
        t = self._refresher
        if t is not None:
            t.join(timeout)


def container_stats(containers: list[str], conf: str, timeout: float = 10.0,
                    volumes: VolumeSizes | None = None) -> dict[str, dict]:
    """CPU, memory (one `podman stats` call for all the containers) and the disk use of each container's
    `<name>-data` volume (from `volumes`, which measures each at most once per its max_age)."""
    containers = list(dict.fromkeys(containers))
    out = podman_stats(containers, conf, timeout)
    volumes = volumes or VolumeSizes(conf)
    for vol, size in volumes.sizes([f"{c}-data" for c in containers]).items():
        out.setdefault(vol.removesuffix("-data"), {}).update(size)
    return out


# -- what the leader guard (services/leader_guard.py) needs to know of containers -----------------------------
def _podman(args: list[str], conf: str, timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CONTAINERS_CONF": conf})


def container_exited(container: str, conf: str) -> bool:
    """True only when podman reports the container exited (or stopped) with no process left: never for a
    running, paused, restarting or unknown one."""
    try:
        r = _podman(["container", "inspect", "--format", "{{.State.Status}}|{{.State.Pid}}", container], conf)
    except (OSError, subprocess.TimeoutExpired):
        return False
    status, _, pid = r.stdout.strip().partition("|")
    return r.returncode == 0 and status in ("exited", "stopped") and pid == "0"


def container_states(conf: str) -> dict[str, str]:
    """{container: podman's state (running, exited, created, ...)} of every container labelled pgaas.instance on
    this machine, from one `podman ps --all` call; {} when podman does not answer."""
    try:
        r = _podman(["ps", "--all", "--filter", "label=pgaas.instance", "--format", "json"], conf, timeout=30.0)
        listed = json.loads(r.stdout or "[]") if r.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return {c["Names"][0]: str(c.get("State", "")) for c in listed or [] if c.get("Names")}


def watch_exits(stop, on_exit, conf: str) -> None:
    """Follow `podman events` for member containers that died and call on_exit(instance, container) for each,
    until stop is set (then the stream is ended) or the stream ends by itself."""
    proc = subprocess.Popen(["podman", "events", "--filter", "event=died", "--filter",
                             "label=pgaas.component=postgres", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "CONTAINERS_CONF": conf})
    ender = threading.Thread(target=lambda: (stop.wait(), proc.terminate()), daemon=True)
    ender.start()
    try:
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            attrs = ev.get("Attributes") or {}
            if ev.get("Status") == "died" and attrs.get("pgaas.instance") and ev.get("Name"):
                on_exit(attrs["pgaas.instance"], ev["Name"])
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)

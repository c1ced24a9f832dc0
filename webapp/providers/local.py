"""The embedded default: every member is a podman container on this machine, ports published on 127.0.0.1."""
from __future__ import annotations

import os
import re
import socket
import subprocess

from webapp.providers import Placement


class LocalProvider:
    name = "local"

    def __init__(self, config):
        self.port_start = int(config["PORT_RANGE_START"])
        self.port_end = int(config["PORT_RANGE_END"])
        self.containers_conf = config["CONTAINERS_CONF"]

    def stats(self, containers: list[str]) -> dict[str, dict]:
        return container_stats(containers, self.containers_conf)

    def hosts(self) -> list[str]:
        return ["localhost"]

    def place(self, instance: str, count: int, used_ports: set[tuple[str, int]]) -> list[Placement]:
        """One container per member, all on localhost (the caller reports same_host)."""
        ports = self._free_ports(2 * count, {p for h, p in used_ports if h == "localhost"})
        return [
            Placement(f"pgaas-{instance}-{i}", "localhost", "127.0.0.1", ports[2 * i], ports[2 * i + 1])
            for i in range(count)
        ]

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


_SI = {"B": 1, "kB": 10**3, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 2**10, "MiB": 2**20,
       "GiB": 2**30, "TiB": 2**40}


def _si_bytes(text: str) -> int:
    m = re.match(r"^\s*([0-9.]+)\s*([A-Za-z]+)\s*$", text or "")
    return int(float(m.group(1)) * _SI.get(m.group(2), 1)) if m else 0


def _tree_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass  # a file PostgreSQL removed while we walked
    return total


def container_stats(containers: list[str], conf: str, timeout: float = 10.0) -> dict[str, dict]:
    """CPU %, memory and data-volume use of the given containers: one `podman stats` call for all of them,
    plus the size of each container's `<name>-data` volume on disk."""
    if not containers:
        return {}
    env = {**os.environ, "CONTAINERS_CONF": conf}
    out: dict[str, dict] = {}
    try:
        r = subprocess.run(["podman", "stats", "--no-stream", "--format", "{{.Name}}|{{.CPU}}|{{.MemUsage}}",
                            *containers], capture_output=True, text=True, timeout=timeout, env=env)
        lines = r.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    for line in lines:
        parts = line.split("|")
        if len(parts) == 3:
            try:
                cpu = round(float(parts[1]), 2)
            except ValueError:
                cpu = None
            out[parts[0]] = {"cpu_percent": cpu, "memory_bytes": _si_bytes(parts[2].split("/")[0])}
    try:
        r = subprocess.run(["podman", "volume", "inspect", "--format", "{{.Name}}|{{.Mountpoint}}",
                            *[f"{c}-data" for c in containers]], capture_output=True, text=True, timeout=timeout,
                           env=env)
        for line in r.stdout.splitlines():
            name, _, mount = line.partition("|")
            member = name.removesuffix("-data")
            out.setdefault(member, {})["volume_bytes"] = _tree_bytes(mount)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out

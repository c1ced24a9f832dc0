"""The embedded default: every member is a podman container on this machine, ports published on 127.0.0.1."""
from __future__ import annotations

import socket

from webapp.providers import Placement


class LocalProvider:
    name = "local"

    def __init__(self, config):
        self.port_start = int(config["PORT_RANGE_START"])
        self.port_end = int(config["PORT_RANGE_END"])

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

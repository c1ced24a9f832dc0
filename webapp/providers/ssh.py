"""SSH hosts: machines listed in the configuration or registered through the API, reached by Ansible over SSH.
Each member is a podman container on one host, its ports published on the host's address; the members of one
instance go to different hosts when there are enough, and the instance gets an etcd of three members when its
hosts and the control plane (or other hosts) make three."""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

from sqlalchemy import select

from webapp import hostregistry
from webapp.jobs.spec import Template, write_vars_file
from webapp.providers.base import NoCapacity, Placement, Provider


class SSHProvider(Provider):
    name = "ssh"
    writes_inventory = True

    def __init__(self, config, store=None, box=None):
        self.config = config
        self.store = store
        self.box = box
        self.port_start = int(config["PORT_RANGE_START"])
        self.port_end = int(config["PORT_RANGE_END"])
        # Address the hosts reach the control plane on: it then runs an etcd member when an instance has only
        # two hosts. Empty: etcd members only on hosts.
        self.control_plane_address = config.get("SSH_CONTROL_PLANE_ADDRESS", "") or ""
        # Where members publish their ports on a host: "" for the host's own address (the one members and the
        # control plane reach it on), or an operator's choice such as 0.0.0.0.
        self.publish_address = config.get("SSH_PUBLISH_ADDRESS", "") or ""
        self.trusted_addresses = _address_list(config.get("SSH_TRUSTED_ADDRESSES", ""), "SSH_TRUSTED_ADDRESSES")
        # How the image reaches a host that lacks it: "archive" (saved here, copied over SSH, loaded) or "pull"
        # (from its registry); "auto": archive for a localhost/ image, else pull.
        delivery = config.get("SSH_IMAGE_DELIVERY", "auto")
        self.image_delivery = delivery if delivery != "auto" else (
            "archive" if str(config.get("IMAGE", "")).startswith("localhost/") else "pull")
        self.archive_dir = config.get("IMAGE_ARCHIVE_DIR") or os.path.join(config.get("JOBS_DIR", "/tmp"), "..", "images")

    # -- hosts ---------------------------------------------------------------------------------------------
    def _hosts(self):
        with self.store.session() as s:
            return hostregistry.all_hosts(s, self.config)

    def _load(self) -> dict[str, int]:
        from webapp.store.models import Member

        with self.store.session() as s:
            load: dict[str, int] = {}
            for host in s.scalars(select(Member.host)):
                load[host] = load.get(host, 0) + 1
            return load

    def _used_ports(self) -> set[tuple[str, int]]:
        from webapp.store.models import Instance, Member

        with self.store.session() as s:
            used = {(m.host, p) for m in s.scalars(select(Member)) for p in (m.pg_port, m.api_port, m.backup_port)
                    if p is not None}
            for inst in s.scalars(select(Instance)):
                for e in (inst.meta or {}).get("etcd_members", []):
                    used |= {(e["host"], e["client_port"]), (e["host"], e["peer_port"])}
            return used

    def hosts(self) -> list[str]:
        return [h.name for h in self._hosts()]

    def local_containers(self) -> dict[str, str]:
        """State of pgaas's containers on the control plane's own machine: the etcd members it runs."""
        if not self.control_plane_address:
            return {}
        from webapp.providers.local import container_states

        return container_states(self.config["CONTAINERS_CONF"])

    # -- placement -----------------------------------------------------------------------------------------
    def place(self, instance: str, count: int, used_ports: set[tuple[str, int]]) -> list[Placement]:
        hosts = {h.name: h for h in self._hosts()}
        if not hosts:
            raise NoCapacity("the ssh provider has no hosts: register one (POST /api/v1/hosts) or list them in "
                             "SSH_HOSTS")
        load = self._load()
        free = {n: h.capacity - load.get(n, 0) for n, h in hosts.items()}
        chosen: list[str] = []
        for _ in range(count):
            # a host this instance does not use yet first, then the least loaded, then by name
            options = [n for n in hosts if free[n] > 0]
            if not options:
                raise NoCapacity(f"the hosts have room for {len(chosen)} more member(s), {count} needed "
                                 f"(capacity {sum(h.capacity for h in hosts.values())}, used {sum(load.values())})")
            best = min(options, key=lambda n: (n in chosen, load.get(n, 0) / hosts[n].capacity, n))
            chosen.append(best)
            free[best] -= 1
            load[best] = load.get(best, 0) + 1
        used = set(used_ports) | self._used_ports()
        out = []
        for i, host in enumerate(chosen):
            pg, api = self._ports(host, 2, used)
            out.append(Placement(f"pgaas-{instance}-{i}", host, hosts[host].address, pg, api))
        return out

    def replace(self, instance: str, member: str, old_host: str, other_hosts: set[str]) -> Placement:
        """A rebuilt member's place: a host with room that runs no other member of the instance, not the old
        one if another fits; else the old host."""
        hosts = {h.name: h for h in self._hosts()}
        load = self._load()
        options = [n for n, h in hosts.items() if n not in other_hosts and n != old_host and h.capacity > load.get(n, 0)]
        host = min(options, key=lambda n: (load.get(n, 0) / hosts[n].capacity, n)) if options else old_host
        if host not in hosts:
            raise NoCapacity(f"no host to rebuild {member} on")
        pg, api = self._ports(host, 2, self._used_ports())
        return Placement(member, host, hosts[host].address, pg, api)

    def etcd_members(self, instance: str, placements: list[Placement], used_ports: set[tuple[str, int]]) -> list[dict]:
        """Three etcd members (one per distinct host of the instance, then the control plane, then the least
        loaded other hosts) when three places exist; else [] (one etcd beside the first member)."""
        hosts = {h.name: h for h in self._hosts()}
        places: list[tuple[str, str]] = []
        for p in placements:
            if p.host not in [h for h, _ in places]:
                places.append((p.host, p.address))
        if len(places) < 3 and self.control_plane_address:
            places.append(("localhost", self.control_plane_address))
        if len(places) < 3:
            load = self._load()
            for n in sorted(hosts, key=lambda n: (load.get(n, 0) / hosts[n].capacity, n)):
                if len(places) < 3 and n not in [h for h, _ in places]:
                    places.append((n, hosts[n].address))
        if len(places) < 3:
            return []
        used = set(used_ports) | self._used_ports() | {(p.host, q) for p in placements for q in (p.pg_port, p.api_port)}
        out = []
        for i, (host, address) in enumerate(places[:3]):
            client, peer = self._ports(host, 2, used)
            out.append({"name": f"pgaas-{instance}-etcd-{i}", "host": host, "address": address,
                        "client_port": client, "peer_port": peer})
        return out

    def free_ports(self, host: str, count: int, used_ports: set[tuple[str, int]]) -> list[int]:
        return self._ports(host, count, set(used_ports) | self._used_ports())

    def _ports(self, host: str, n: int, used: set[tuple[str, int]]) -> list[int]:
        found = []
        for port in range(self.port_start, self.port_end + 1):
            if (host, port) not in used:
                found.append(port)
                used.add((host, port))
                if len(found) == n:
                    return found
        raise NoCapacity(f"no free ports left on {host} in {self.port_start}-{self.port_end}")

    # -- inventory -----------------------------------------------------------------------------------------
    def inventory(self, private_dir) -> str:
        """Write this run's inventory (JSON is YAML) into private_dir: localhost for the control plane's plays,
        and every host with how to reach it. Stored keys become 0600 files there (the worker removes the dir).
        Every host is checked against the control plane's known_hosts file (known_hosts.py)."""
        from webapp.providers import known_hosts

        private_dir = Path(private_dir)
        listed = self._hosts()
        known = known_hosts.ensure(hostregistry.known_hosts_file(self.config))
        hostregistry.pin_configured(self.config, listed)
        hosts = {}
        trusted = self._trusted(listed)
        for h in listed:
            key = hostregistry.private_key(self.box, h) if h.key_enc else None
            if key is not None:
                path = private_dir / f"key-{h.name}"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(key if key.endswith("\n") else key + "\n")
                key_file = str(path)
            else:
                key_file = h.key_path
            hosts[h.name] = {
                "ansible_host": h.address, "ansible_user": h.ssh_user, "ansible_port": h.ssh_port,
                "ansible_ssh_private_key_file": key_file, "ansible_become": h.ssh_user != "root",
                "ansible_python_interpreter": "/usr/bin/python3",
                "pgaas_host_publish_address": self.publish_address or _ip_of(h.address),
                "pgaas_host_trusted_addresses": trusted,
                "pgaas_host_engine_provider": "ssh",
                "pgaas_host_image_delivery": self.image_delivery,
                "pgaas_host_image_archive_dir": os.path.abspath(self.archive_dir),
                **known_hosts.ssh_vars(known, f"{h.name}|{h.ssh_user}@{h.address}:{h.ssh_port}|{h.source}"),
            }
        hosts["localhost"] = {"ansible_connection": "local",
                              "ansible_python_interpreter": Template("{{ ansible_playbook_python }}")}
        path = private_dir / "inventory.yml"
        write_vars_file(path, {"all": {"hosts": hosts}})  # values are data: a host field is never templated
        return str(path)

    def _trusted(self, listed) -> list[str]:
        """Where the superuser and the replication role may log in from, on every host: every host (a rebuilt
        member may land on any of them, and its peers must let it clone), this machine's source address toward
        each host, the control plane's configured address and the operator's extra addresses."""
        out = set(self.trusted_addresses)
        addresses = [h.address for h in listed] + ([self.control_plane_address] if self.control_plane_address else [])
        for address in addresses:
            for ip in _ips(address):
                out.add(ip)
                source = _source_toward(ip)
                if source:
                    out.add(source)
        return sorted(out)


def _address_list(value, name: str) -> list[str]:
    """A comma- (or space-) separated string, or a list, of IP addresses and networks; ValueError names the bad
    entry."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").replace(",", " ").split()
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not an IP address or network") from None
    return out


def _ips(address: str) -> list[str]:
    """The IP addresses of a host address (itself when it is one; a DNS name resolved here)."""
    try:
        return [str(ipaddress.ip_address(address))]
    except ValueError:
        pass
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(address, None, proto=socket.IPPROTO_TCP)})
    except OSError:
        return []


def _ip_of(address: str) -> str:
    """The address a host's members publish on: its IPv4 address if it has one (podman binds addresses, not
    names), else its first address, else the address as given."""
    ips = _ips(address)
    return next((ip for ip in ips if ":" not in ip), ips[0] if ips else address)


def _source_toward(ip: str) -> str | None:
    """This machine's source address for packets to ip, as the routing table picks it (no packet is sent)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((ip, 9))
            return s.getsockname()[0]
    except OSError:
        return None

"""The provider contract: what every provider does, and what a provider may do, with the default it gets otherwise.

A provider places an instance's members on hosts and says how to reach them (local: podman on this machine; ssh:
registered machines; openstack: VMs it makes). Callers use only the methods and flags below; they never ask a
provider whether it has a method. A provider without an optional capability inherits the default documented on the
method, which is what callers did before for a provider without it.

Playbooks see hosts only through the inventory: a member's `host` is an inventory host name, and connection details
(ansible_host, ansible_user, keys, become) and per-host settings (pgaas_host_publish_address,
pgaas_host_engine_provider, pgaas_host_image_delivery, pgaas_host_image_archive_dir) are inventory host variables.
pgaas's podman settings live at the same path on every host (the control plane's CONTAINERS_CONF), because delegated
tasks carry the play's environment."""
from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Placement:
    name: str       # container name, e.g. pgaas-main-0
    host: str       # inventory host the member runs on
    address: str    # address clients use to reach the published ports
    pg_port: int
    api_port: int


class NoCapacity(Exception):
    """The provider's hosts cannot take the members asked for (the message says what is missing)."""


class Provider(abc.ABC):
    """Subclass it, set `name`, implement `place`; override the optional methods the provider can do."""

    # Capability flags: they say which optional method callers may use, where a default could not stand in.
    supports_exit_events: ClassVar[bool] = False
    """True when `watch_exits` streams member exits and `member_exited` can tell: the leader guard
    (services/leader_guard.py) runs only then."""
    writes_inventory: ClassVar[bool] = False
    """True when `inventory(private_dir)` writes each run's inventory; False: the static inventory/local/hosts.yml."""

    # -- required -------------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The provider's name, recorded on each instance (a class attribute in the subclasses)."""

    @abc.abstractmethod
    def place(self, instance: str, count: int, used_ports: set[tuple[str, int]]) -> list[Placement]:
        """One Placement per member; used_ports is {(host, port)} already taken. Members of one instance go to
        different hosts when there are enough. Raises NoCapacity when they do not fit."""

    # -- placement (optional) -------------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        """Inventory host names it may place members on (the dashboard lists them). Default: [] (none known
        ahead, e.g. servers made per instance)."""
        return []

    def replace(self, instance: str, member: str, old_host: str, other_hosts: set[str]) -> Placement | None:
        """A rebuilt member's new place (failover). Default: None, the member comes back where it was, under its
        own name and ports."""
        return None

    def free_ports(self, host: str, count: int, used_ports: set[tuple[str, int]]) -> list[int]:
        """count more ports on a host for a member's extra services (its pgBackRest server), not in used_ports.
        Default: refused (NoCapacity)."""
        raise NoCapacity(f"the {self.name} provider does not allocate extra ports")

    def etcd_members(self, instance: str, placements: list[Placement],
                     used_ports: set[tuple[str, int]]) -> list[dict]:
        """The instance's own etcd cluster, {name, host, address, client_port, peer_port} per member. Default: []
        (one etcd container beside the first member)."""
        return []

    def dcs_endpoints(self, instance: str) -> list[str]:
        """Client URLs of an instance's one etcd when it has no etcd_members (the leader guard). Default: []."""
        return []

    # -- how runs reach the hosts (optional) ----------------------------------------------------------------
    def inventory(self, private_dir) -> str:
        """Path of an Ansible inventory written for one run into private_dir (it may hold key files; the worker
        removes the dir after the run) with the provider's hosts and how to reach them. Called only when
        `writes_inventory` is True."""
        raise NotImplementedError(f"the {self.name} provider writes no inventory (writes_inventory is False)")

    # -- monitoring (optional) ------------------------------------------------------------------------------
    def stats(self, containers: list[str]) -> dict[str, dict]:
        """{container: {cpu_percent, cpu_seconds, memory_bytes, memory_limit_bytes, volume_bytes, ...}} for the
        members it can measure. Default: {} (nothing measured)."""
        return {}

    def volume_filesystems(self, members: list[str]) -> dict[str, tuple[int, int]]:
        """{member: (used, size) in bytes} of the filesystem holding each member's data volume. Default: {}."""
        return {}

    def local_containers(self) -> dict[str, str]:
        """{container: podman's state} of pgaas's containers on the control plane's own machine (inventory host
        localhost), in one call: the start-up check (services/startup.py) starts the stopped ones; members on
        other hosts are judged by Patroni's view instead. Default: {} (nothing runs here)."""
        return {}

    def watch_exits(self, stop: threading.Event, on_exit: Callable[[str, str], None]) -> None:
        """Call on_exit(instance, container) for each member container that dies, until stop is set. Used only
        when `supports_exit_events`. Default: returns at once (no events)."""
        return None

    def member_exited(self, container: str) -> bool:
        """True only when the member's container has certainly exited. Default: False (never certain)."""
        return False

    # -- cloud providers that make the hosts in the create job (optional) ----------------------------------
    def provision_playbook(self) -> str | None:
        """The create job's first run, for a provider whose hosts' addresses exist only once it made them: it
        makes the hosts; the handler then records their addresses (`record`), issues TLS certificates naming
        them and runs `create_playbook` (two runs of one job). Default: None (the hosts exist: one run of
        playbooks/instance_deploy.yml)."""
        return None

    def create_playbook(self) -> str:
        """The deploy run after `provision_playbook`. Default: playbooks/instance_deploy.yml."""
        return "playbooks/instance_deploy.yml"

    def create_vars(self, deploy_vars: dict, meta: dict | None = None) -> dict:
        """The extra vars of the provisioning and deploy runs, from the deploy's. Default: deploy_vars as given."""
        return dict(deploy_vars)

    def playbook_vars(self, meta: dict | None = None) -> dict:
        """Extra vars every play of this provider gets (e.g. which cloud). Default: {}."""
        return {}

    def record(self, inst, artifact_data: dict) -> None:
        """Store in the instance (members' addresses, meta) where the provider's run put the members, from the
        run's set_stats. Default: nothing to record."""
        return None

    def teardown(self, name: str, meta: dict) -> tuple[str, dict] | None:
        """(playbook, extra vars) that remove what the provider made for an instance. Default: None (the standard
        playbooks/instance_teardown.yml removes the containers, volumes and network by their labels)."""
        return None

    def grow_playbook(self) -> str | None:
        """The play that grows the data volumes (and their filesystems) before a settings change with a new
        storage size, given `playbook_vars`. Default: None (the settings play alone applies the change)."""
        return None

"""Where hosts come from. A provider places an instance's members on hosts and says how to reach them.

The seam every provider implements (local: podman on this machine; ssh: registered machines; openstack: VMs):
  name                                   the provider's name, recorded on each instance
  hosts() -> list[str]                   inventory host names it may place members on
  place(instance, count, used_ports)     -> [Placement]: one per member; used_ports is {(host, port)} already taken.
                                         Members of one instance go to different hosts when there are enough.
                                         Raises NoCapacity when they do not fit.
Optional:
  replace(instance, member, old_host, other_hosts) -> Placement   a rebuilt member's new place (failover)
  etcd_members(instance, placements, used_ports) -> [dict]        etcd cluster members {name, host, address,
                                         client_port, peer_port} when the instance gets its own N-member etcd;
                                         [] (or no method) means one etcd container beside the first member
  inventory(private_dir) -> str          path of an Ansible inventory (written for one job, may hold key files
                                         under private_dir; the worker removes them after the run) with the
                                         provider's hosts and how to reach them; without it the static
                                         inventory/local/hosts.yml is used
  stats(containers), volume_filesystems(members)                  monitoring, when the provider can measure
  local_containers() -> {container: state}                        podman's state of pgaas's containers on the
                                         control plane's own machine (inventory host localhost), in one call: the
                                         start-up check (services/startup.py) starts the stopped ones; members on
                                         other hosts are judged by Patroni's view instead
  create_playbook(), playbook_vars(), teardown(name, meta), record(instance, artifact_data)
                                         cloud providers (openstack) that make the hosts in the create job:
                                         the play to run instead of instance_deploy.yml (it provisions, then
                                         imports it), its extra vars, the teardown play, and where the servers
                                         landed (member addresses) from the run's set_stats
  provision_playbook()                   the create's first run, for a provider whose hosts' addresses exist
                                         only once it made them: it makes the hosts; the handler records their
                                         addresses, issues TLS certificates naming them, then runs
                                         create_playbook (two runs of one job)
Playbooks see hosts only through the inventory: a member's `host` is an inventory host name, and connection
details (ansible_host, ansible_user, keys, become) and per-host settings (pgaas_host_publish_address,
pgaas_host_engine_provider, pgaas_host_image_delivery, pgaas_host_image_archive_dir) are inventory host
variables. pgaas's podman settings live at the same path on every host (the control plane's CONTAINERS_CONF),
because delegated tasks carry the play's environment."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    name: str       # container name, e.g. pgaas-main-0
    host: str       # inventory host the member runs on
    address: str    # address clients use to reach the published ports
    pg_port: int
    api_port: int


class NoCapacity(Exception):
    """The provider's hosts cannot take the members asked for (the message says what is missing)."""


def get_provider(name: str, config, store=None, box=None):
    from webapp.providers.local import LocalProvider
    from webapp.providers.openstack import OpenStackProvider
    from webapp.providers.ssh import SSHProvider

    providers = {"local": LocalProvider, "ssh": SSHProvider, "openstack": OpenStackProvider}
    if name not in providers:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(providers)}")
    if name == "local":
        return LocalProvider(config)
    return providers[name](config, store=store, box=box)

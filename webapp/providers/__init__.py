"""Where hosts come from. A provider places an instance's members on hosts and says how to reach them.

The contract is `Provider` in providers/base.py (local: podman on this machine; ssh: registered machines;
openstack: VMs): every provider subclasses it; the optional capabilities have documented defaults there."""
from __future__ import annotations

from webapp.providers.base import NoCapacity, Placement, Provider

__all__ = ["NoCapacity", "Placement", "Provider", "get_provider"]


def get_provider(name: str, config, store=None, box=None) -> Provider:
    from webapp.providers.local import LocalProvider
    from webapp.providers.openstack import OpenStackProvider
    from webapp.providers.ssh import SSHProvider

    providers = {"local": LocalProvider, "ssh": SSHProvider, "openstack": OpenStackProvider}
    if name not in providers:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(providers)}")
    if name == "local":
        return LocalProvider(config)
    return providers[name](config, store=store, box=box)

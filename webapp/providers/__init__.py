"""Where hosts come from. A provider places an instance's members on hosts and says how to reach them.
Only `local` (podman on this machine) exists so far; SSH hosts and OpenStack plug in here."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    name: str       # container name, e.g. pgaas-main-0
    host: str       # inventory host the member runs on
    address: str    # address clients use to reach the published ports
    pg_port: int
    api_port: int


def get_provider(name: str, config):
    from webapp.providers.local import LocalProvider

    providers = {"local": LocalProvider}
    if name not in providers:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(providers)}")
    return providers[name](config)

"""SSH hosts for the ssh provider, as services: register, list (with what runs on each), change the pinned host
key, delete. The registry itself (HostSpec, the SSH_HOSTS setting, validation) is webapp/hostregistry.py, below
the services and the providers; its public names are re-exported here for the API and the website."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.hostregistry import (DEFAULT_CAPACITY, FIELDS, HostSpec, all_hosts, check,  # noqa: F401 (re-exported)
                                 known_hosts_file, spec_of)
from webapp.providers import known_hosts
from webapp.services import Conflict, Invalid, NotFound, audit
from webapp.services.crypto import SecretBox
from webapp.store.models import Host, Instance, Member


# -- queries --------------------------------------------------------------------------------------------------
def get(s: Session, config, name) -> HostSpec:
    for h in all_hosts(s, config) if isinstance(name, str) else []:
        if h.name == name:
            return h
    raise NotFound(f"no host {name!r}")


def fingerprints(config, h: HostSpec) -> list[dict]:
    """The host's pinned keys as SHA256 fingerprints (configured keys until the file has them)."""
    found = known_hosts.fingerprints(known_hosts_file(config), h.address, h.ssh_port)
    return found or [{"type": k.split()[0], "sha256": known_hosts.fingerprint(k)} for k in h.host_keys]


def usage(s: Session, config) -> list[dict]:
    """The admin's host view: each host with the instances (and members) on it, and its free capacity."""
    members = list(s.scalars(select(Member)))
    etcd: dict[str, list[str]] = {}
    for inst in s.scalars(select(Instance)):
        for e in (inst.meta or {}).get("etcd_members", []):
            etcd.setdefault(e.get("host"), []).append(inst.name)
    out = []
    for h in all_hosts(s, config):
        on = [m for m in members if m.host == h.name]
        instances: dict[str, list[str]] = {}
        for m in on:
            instances.setdefault(m.instance.name, []).append(m.name)
        out.append({"host": h, "used": len(on), "free": max(0, h.capacity - len(on)),
                    "instances": [{"name": n, "members": sorted(ms), "etcd": n in etcd.get(h.name, [])}
                                  for n, ms in sorted(instances.items())],
                    "etcd_only": sorted(set(etcd.get(h.name, [])) - set(instances))})
    return out


# -- changes --------------------------------------------------------------------------------------------------
def register(s: Session, box: SecretBox, config, data: dict, actor: audit.Actor) -> HostSpec:
    """Register a host (audited; a private key is sealed and never in the audit detail)."""
    d = check(data)
    if any(h.name == d["name"] for h in all_hosts(s, config)):
        raise Conflict(f"host {d['name']!r} already exists")
    h = Host(name=d["name"], address=d["address"], ssh_user=d["ssh_user"], ssh_port=d["ssh_port"],
             key_path=d["key_path"], key_enc=box.seal({"private_key": d["private_key"]}) if d["private_key"] else None,
             labels=d["labels"], capacity=d["capacity"], created_by=actor.username)
    s.add(h)
    s.flush()
    # A host registered anew starts from what it was given: no pin left from an earlier host on that address
    # (unless another registration shares the address and keeps it).
    path = known_hosts_file(config)
    shared = any(o.address == h.address and o.ssh_port == h.ssh_port
                 for o in all_hosts(s, config) if o.name != h.name)
    if d["host_keys"]:
        known_hosts.pin(path, d["address"], d["ssh_port"], d["host_keys"])
    elif not shared:
        known_hosts.forget(path, d["address"], d["ssh_port"])
    spec = spec_of(h)
    audit.record(s, actor, "host.create", "host", spec.name,
                 detail=f"{spec.ssh_user}@{spec.address}:{spec.ssh_port}, key {spec.key_kind}")
    return spec


def delete(s: Session, config, name, actor: audit.Actor) -> None:
    h = get(s, config, name)
    if h.source == "config":
        raise Conflict(f"host {name!r} is listed in the configuration (SSH_HOSTS); remove it there")
    used = sorted({m.instance.name for m in s.scalars(select(Member).where(Member.host == name))}
                  | {i.name for i in s.scalars(select(Instance))
                     if any(e.get("host") == name for e in (i.meta or {}).get("etcd_members", []))})
    if used:
        raise Conflict(f"host {name!r} still runs members of {', '.join(used)}; delete or move them first",
                       instances=used)
    s.delete(s.scalar(select(Host).where(Host.name == name)))
    if not any(o.address == h.address and o.ssh_port == h.ssh_port for o in all_hosts(s, config) if o.name != name):
        known_hosts.forget(known_hosts_file(config), h.address, h.ssh_port)
    audit.record(s, actor, "host.delete", "host", name)


def set_host_key(s: Session, config, name, value, actor: audit.Actor) -> HostSpec:
    """Replace a registered host's pinned keys; None or "" forgets them (the next connection pins). Audited with
    the fingerprints now pinned."""
    h = _pin(s, config, name, value)
    fps = ", ".join(f["sha256"] for f in fingerprints(config, h)) or "none (pinned on next contact)"
    audit.record(s, actor, "host.host_key", "host", h.name, detail=f"pinned {fps}")
    return h


def _pin(s: Session, config, name, value) -> HostSpec:
    h = get(s, config, name)
    if h.source == "config":
        raise Conflict(f"host {name!r} is listed in the configuration (SSH_HOSTS); set its host_key there")
    path = known_hosts_file(config)
    if value in (None, "", []):
        known_hosts.forget(path, h.address, h.ssh_port)
        return h
    try:
        lines = known_hosts.parse_keys(value)
    except known_hosts.BadHostKey as exc:
        raise Invalid(str(exc), field="host_key") from None
    known_hosts.pin(path, h.address, h.ssh_port, lines)
    return h

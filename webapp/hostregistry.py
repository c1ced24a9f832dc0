"""The SSH host registry, below both the services and the providers: the hosts of the SSH_HOSTS setting and those
registered in the store, as HostSpec values. The ssh provider (providers/ssh.py) places members on them and writes
their inventory; services/hosts.py registers, lists and deletes them. A host's key is a path the control plane reads,
or a private key stored encrypted; a stored key never leaves here except through private_key(), which the ssh
provider writes into a file for one job's run. A host's public host key(s), when given, are pinned in the control
plane's known_hosts file (providers/known_hosts.py); otherwise the first connection pins them."""
from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.exceptions import Invalid
from webapp.schemas import limits as L
from webapp.providers import known_hosts
from webapp.store.models import Host

HOST_NAME_RE = re.compile(L.HOST_NAME_PATTERN)
DNS_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
RESERVED = {"localhost"}
FIELDS = {"name", "address", "ssh_user", "ssh_port", "key_path", "private_key", "labels", "capacity", "host_key"}
DEFAULT_CAPACITY = L.HOST_CAPACITY_DEFAULT


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    ssh_user: str
    ssh_port: int = 22
    key_path: str | None = None
    key_enc: str | None = field(default=None, repr=False)
    labels: dict = field(default_factory=dict)
    capacity: int = DEFAULT_CAPACITY
    source: str = "api"  # api | config
    created_by: str = ""
    host_keys: tuple = ()  # configured hosts' pinned keys ("type base64"); registered hosts' live in the file

    @property
    def key_kind(self) -> str:
        return "stored" if self.key_enc else ("path" if self.key_path else "none")


# -- validation -----------------------------------------------------------------------------------------------
def check(data: dict, *, for_config: bool = False) -> dict:
    if not isinstance(data, dict):
        raise Invalid("a host is a JSON object")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}",
                      field=unknown[0])
    name = data.get("name")
    if not isinstance(name, str) or not HOST_NAME_RE.match(name) or name in RESERVED:
        raise Invalid("name must be 1 to 63 characters of a-z, 0-9, '.', '-' (starting and ending with a letter "
                      "or digit), and not localhost", field="name")
    address = data.get("address")
    if not isinstance(address, str) or not address or not _address_ok(address):
        raise Invalid("address must be an IP address or a DNS name", field="address")
    user = data.get("ssh_user")
    if not isinstance(user, str) or not USER_RE.match(user):
        raise Invalid("ssh_user must be a user name (a-z, 0-9, '_', '-', starting with a letter or '_')",
                      field="ssh_user")
    port = data.get("ssh_port", 22)
    if isinstance(port, bool) or not isinstance(port, int) or not L.SSH_PORT_MIN <= port <= L.SSH_PORT_MAX:
        raise Invalid(f"ssh_port must be an integer between {L.SSH_PORT_MIN} and {L.SSH_PORT_MAX}", field="ssh_port")
    key_path, key = data.get("key_path"), data.get("private_key")
    if (key_path is None) == (key is None):
        raise Invalid("give exactly one of key_path (a file the control plane reads) or private_key (stored "
                      "encrypted)", field="key_path")
    if key_path is not None:
        if not isinstance(key_path, str) or not os.path.isabs(key_path) or "\n" in key_path:
            raise Invalid("key_path must be an absolute path", field="key_path")
        if not os.path.isfile(key_path) or not os.access(key_path, os.R_OK):
            raise Invalid(f"key_path {key_path!r} is not a file the control plane can read", field="key_path")
    if key is not None:
        if for_config:
            raise Invalid("hosts in the configuration give key_path, not private_key", field="private_key")
        if not isinstance(key, str) or len(key) > 16384 or not re.search(
                r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.+-----END [A-Z0-9 ]*PRIVATE KEY-----", key, re.S):
            raise Invalid("private_key must be a PEM/OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)",
                          field="private_key")
    labels = data.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > 32 or not all(
            isinstance(k, str) and LABEL_KEY_RE.match(k) and isinstance(v, str) and len(v) <= 255
            for k, v in labels.items()):
        raise Invalid("labels must be an object of up to 32 string values (keys: letters, digits, ._/-)",
                      field="labels")
    capacity = data.get("capacity", DEFAULT_CAPACITY)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not (
            L.HOST_CAPACITY_MIN <= capacity <= L.HOST_CAPACITY_MAX):
        raise Invalid(f"capacity (members the host may run) must be an integer between {L.HOST_CAPACITY_MIN} and "
                      f"{L.HOST_CAPACITY_MAX}", field="capacity")
    host_keys: list[str] = []
    if data.get("host_key") not in (None, "", []):
        try:
            host_keys = known_hosts.parse_keys(data["host_key"])
        except known_hosts.BadHostKey as exc:
            raise Invalid(str(exc), field="host_key") from None
    return {"name": name, "address": address, "ssh_user": user, "ssh_port": port, "key_path": key_path,
            "private_key": key, "labels": labels, "capacity": capacity, "host_keys": host_keys}


def _address_ok(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return bool(DNS_RE.match(address)) and not address.replace(".", "").isdigit()


# -- queries --------------------------------------------------------------------------------------------------
def configured(config) -> list[HostSpec]:
    """Hosts of the SSH_HOSTS setting: a list of objects (or its JSON text, e.g. from PGAAS_SSH_HOSTS)."""
    raw = config.get("SSH_HOSTS") or []
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else []
    out = []
    for item in raw:
        d = check(item, for_config=True)
        out.append(HostSpec(d["name"], d["address"], d["ssh_user"], d["ssh_port"], d["key_path"], None,
                            d["labels"], d["capacity"], "config", host_keys=tuple(d["host_keys"])))
    return out


def spec_of(h: Host) -> HostSpec:
    return HostSpec(h.name, h.address, h.ssh_user, h.ssh_port, h.key_path, h.key_enc, dict(h.labels or {}),
                    h.capacity, "api", h.created_by)


def all_hosts(s: Session, config) -> list[HostSpec]:
    """Every host by name: the configured ones, then the registered ones (a configured name wins)."""
    hosts = {h.name: h for h in configured(config)}
    for h in s.scalars(select(Host).order_by(Host.name)):
        hosts.setdefault(h.name, spec_of(h))
    return [hosts[n] for n in sorted(hosts)]


def known_hosts_file(config) -> str:
    return known_hosts.file_for(config)


def pin_configured(config, hosts: list[HostSpec]) -> None:
    """Hosts of SSH_HOSTS that carry host_key: the file holds exactly those keys for them."""
    for h in hosts:
        if h.source == "config" and h.host_keys:
            known_hosts.pin(known_hosts_file(config), h.address, h.ssh_port, list(h.host_keys))


def private_key(box, h: HostSpec) -> str | None:
    """The host's stored private key, opened with box (the SecretBox that sealed it); None for a key path."""
    return box.open(h.key_enc)["private_key"] if h.key_enc else None

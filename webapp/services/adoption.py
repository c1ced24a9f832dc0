"""Adoption: a pair that an operator deployed with `ansible-playbook` alone (docs/operators.md) taken into the
control plane, and the reverse, an instance written out as the operator's inventory, vars and secrets.

The operator's format is three files: an Ansible inventory (YAML shape), a vars file whose variables are the
playbooks' own extravars (pgaas_instance_name, pgaas_members, ...; playbooks/vars/instance_argument_spec.yml) and a
secrets file (pgaas-NAME.secrets.yml: the four passwords, the CA's certificate and key, each container's certificate
and key, an operator's client certificate). `adopt` takes them as data (parsed YAML or JSON), checks everything
before anything is stored, and queues an `instance_adopt` job that converges the pair with the same playbook
(instance_deploy.yml is idempotent: a pair deployed with these inputs changes nothing) and fills the instance's
metadata from that run, as a create does. The file's pgaas_tls_client is not used: the control plane issues its own
client certificate from the CA, so that its key never existed outside it. No HTTP here.
"""
from __future__ import annotations

import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp import hostregistry
from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, check_db_name, check_int, check_name, check_number
from webapp.services import audit, certificates
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services.crypto import SecretBox
from webapp.store.models import Instance, Member, utcnow

PASSWORDS = ("pgaas_superuser_password", "pgaas_replication_password", "pgaas_restapi_password",
             "pgaas_admin_password")
ADMIN_USER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def secrets_filename(name: str) -> str:
    """The operator's secrets file of an instance, beside the inventory (docs/operators.md)."""
    return f"pgaas-{name}.secrets.yml"


def default_admin_user(name: str) -> str:
    """The playbooks' default admin role (playbooks/vars/instance_defaults.yml) when the vars name none."""
    return f"{name.replace('-', '_')}_admin"


# -- the operator's inventory ---------------------------------------------------------------------------------
def inventory_hosts(inventory) -> tuple[dict[str, dict], dict]:
    """The hosts of an inventory in Ansible's YAML shape ({group: {hosts, children, vars}}, usually all) with
    their variables (group variables first, the host's own over them), and the variables of the group all."""
    if not isinstance(inventory, dict) or not inventory:
        raise Invalid("inventory must be an Ansible inventory in its YAML shape: {all: {hosts: {NAME: {...}}}}",
                      field="inventory")
    hosts: dict[str, dict] = {}

    def walk(group, name: str, inherited: dict, depth: int) -> None:
        if group is None:
            return
        if not isinstance(group, dict) or depth > 10:
            raise Invalid(f"inventory group {name!r} must be a mapping of hosts, children and vars",
                          field="inventory")
        gvars = {**inherited, **(_mapping(group.get("vars"), f"vars of group {name!r}"))}
        for host, hvars in _mapping(group.get("hosts"), f"hosts of group {name!r}").items():
            hosts[str(host)] = {**hosts.get(str(host), {}), **gvars,
                                **_mapping(hvars, f"variables of host {host!r}")}
        for child, sub in _mapping(group.get("children"), f"children of group {name!r}").items():
            walk(sub, str(child), gvars, depth + 1)

    for name, group in inventory.items():
        walk(group, str(name), {}, 0)
    top = inventory.get("all") if isinstance(inventory.get("all"), dict) else {}
    return hosts, _mapping(top.get("vars"), "vars of group 'all'")


def _mapping(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"inventory: {what} must be a mapping", field="inventory")
    return value


def short_form(name: str, v: dict, hosts: dict[str, dict]) -> dict:
    """The operators' short form of a vars file (pgaas_hosts, pgaas_base_port, pgaas_member_count;
    playbooks/vars/instance_defaults.yml) as the members and etcd members the playbooks make of it: member i,
    pgaas-NAME-i, on pgaas_hosts[i % len] with ports base + 2i and base + 2i + 1; with several hosts an etcd member
    on each of the first three, on the two ports after the members'. pgaas_members, when given, wins."""
    base = v.get("pgaas_base_port")
    if v.get("pgaas_members") or base is None:
        return v
    names, count = v.get("pgaas_hosts") or ["localhost"], v.get("pgaas_member_count", 2)
    if not isinstance(names, list) or not names or not all(isinstance(h, str) for h in names):
        raise Invalid("vars: pgaas_hosts must be a non-empty list of inventory host names", field="vars")
    base = _port(base, "vars: pgaas_base_port")
    count = check_int(count, "pgaas_member_count", 1 + L.REPLICAS_MIN, 1 + L.REPLICAS_MAX)

    def address(h: str) -> str:
        hv = hosts.get(h) or {}
        return "127.0.0.1" if h == "localhost" else str(hv.get("pgaas_host_publish_address") or hv.get("ansible_host")
                                                         or h)

    members = [{"name": f"pgaas-{name}-{i}", "host": names[i % len(names)], "address": address(names[i % len(names)]),
                "pg_port": base + 2 * i, "api_port": base + 2 * i + 1} for i in range(count)]
    unique = list(dict.fromkeys(names))
    etcd = [{"name": f"pgaas-{name}-etcd-{j}", "host": h, "address": address(h), "client_port": base + 2 * count,
             "peer_port": base + 2 * count + 1} for j, h in enumerate(unique[:3])] if len(unique) > 1 else []
    return {**v, "pgaas_members": members, "pgaas_etcd_members": etcd}


# -- checks ---------------------------------------------------------------------------------------------------
def _port(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535:
        raise Invalid(f"{where} must be a port number from 1024 to 65535", field="vars")
    return value


def _members(name: str, raw, known: dict[str, str | None], local: bool) -> list[dict]:
    """pgaas_members checked: names pgaas-NAME-<N> (unique), hosts the provider knows, ports, addresses."""
    if not isinstance(raw, list) or not 1 + L.REPLICAS_MIN <= len(raw) <= 1 + L.REPLICAS_MAX:
        raise Invalid(f"pgaas_members must be a list of {1 + L.REPLICAS_MIN} to {1 + L.REPLICAS_MAX} members "
                      "{name, host, address, pg_port, api_port}", field="vars")
    pattern = re.compile(rf"^pgaas-{re.escape(name)}-[0-9]+$")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not pattern.match(m["name"]):
            raise Invalid(f"pgaas_members[{i}] must have a name pgaas-{name}-<N>", field="vars")
        host = m.get("host")
        if not isinstance(host, str) or host not in known:
            raise Invalid(f"member {m['name']}: host {host!r} is not one the control plane knows (its provider's "
                          f"hosts: {', '.join(sorted(known)) or 'none'}; register it first: POST /api/v1/hosts)",
                          field="vars")
        address = m.get("address") or known[host] or ("127.0.0.1" if local else None)
        if not isinstance(address, str) or not address:
            raise Invalid(f"member {m['name']} needs an address", field="vars")
        out.append({"name": m["name"], "host": host, "address": address,
                    "pg_port": _port(m.get("pg_port"), f"member {m['name']}: pg_port"),
                    "api_port": _port(m.get("api_port"), f"member {m['name']}: api_port")})
    if len({m["name"] for m in out}) < len(out):
        raise Invalid("pgaas_members' names must be unique", field="vars")
    return out


def _etcd(name: str, raw, known: dict[str, str | None], local: bool) -> list[dict]:
    if raw in (None, []):
        return []
    if local:
        raise Invalid("pgaas_etcd_members must be empty with the local provider (one etcd beside the first member)",
                      field="vars")
    if not isinstance(raw, list):
        raise Invalid("pgaas_etcd_members must be a list of {name, host, address, client_port, peer_port}",
                      field="vars")
    pattern = re.compile(rf"^pgaas-{re.escape(name)}-etcd-[0-9]+$")
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not pattern.match(e["name"]):
            raise Invalid(f"pgaas_etcd_members[{i}] must have a name pgaas-{name}-etcd-<N>", field="vars")
        if not isinstance(e.get("host"), str) or (e["host"] not in known and e["host"] != "localhost"):
            raise Invalid(f"etcd member {e['name']}: host {e.get('host')!r} is not one the control plane knows",
                          field="vars")
        if not isinstance(e.get("address"), str) or not e["address"]:
            raise Invalid(f"etcd member {e['name']} needs an address", field="vars")
        out.append({"name": e["name"], "host": e["host"], "address": e["address"],
                    "client_port": _port(e.get("client_port"), f"etcd member {e['name']}: client_port"),
                    "peer_port": _port(e.get("peer_port"), f"etcd member {e['name']}: peer_port")})
    return out


def _check_ports(members: list[dict], etcd: list[dict], taken: set[tuple[str, int]]) -> None:
    mine = [(m["host"], m[k], m["name"]) for m in members for k in ("pg_port", "api_port")]
    mine += [(e["host"], e[k], e["name"]) for e in etcd for k in ("client_port", "peer_port")]
    seen = set()
    for host, port, who in mine:
        if (host, port) in taken:
            raise Conflict(f"{who}: port {port} on host {host} is taken by another instance")
        if (host, port) in seen:
            raise Invalid(f"{who}: port {port} on host {host} is given twice", field="vars")
        seen.add((host, port))


def _pem_cert(value, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(value.encode())
    except (AttributeError, ValueError):
        raise Invalid(f"secrets: {what} must be a PEM certificate", field="secrets") from None


def _pem_key(value, what: str):
    try:
        return serialization.load_pem_private_key(value.encode(), password=None)
    except (AttributeError, ValueError, TypeError):
        raise Invalid(f"secrets: {what} must be an unencrypted PEM private key", field="secrets") from None


def _same_key(cert: x509.Certificate, key) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def _usable(ca: x509.Certificate, pair, container: str, names: list[str]) -> bool:
    """An operator's certificate of a container, checked: signed by the CA, its key, and (False: to be issued
    again) whether it names what the control plane connects to."""
    if not isinstance(pair, dict) or not isinstance(pair.get("cert"), str) or not isinstance(pair.get("key"), str):
        raise Invalid(f"secrets: pgaas_tls_certs[{container}] must be {{cert, key}}", field="secrets")
    cert = _pem_cert(pair["cert"], f"pgaas_tls_certs[{container}].cert")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise Invalid(f"secrets: the certificate of {container} is not signed by pgaas_tls_ca_cert",
                      field="secrets") from None
    if not _same_key(cert, _pem_key(pair["key"], f"pgaas_tls_certs[{container}].key")):
        raise Invalid(f"secrets: the key of {container} does not match its certificate", field="secrets")
    return set(n for n in names if n) <= _names_of(cert) and cert.not_valid_after_utc > utcnow()


def _tls(inst: Instance, secrets: dict, days: int) -> tuple[dict, list[str]]:
    """The instance's TLS material in certificates.ensure()'s shape from the operator's CA and certificates: a
    missing (or unusable) container certificate and the control plane's client certificate are issued from the
    operator's CA. Returns (tls, the containers whose certificate was issued here)."""
    ca_pem, key_pem = secrets.get("pgaas_tls_ca_cert"), secrets.get("pgaas_tls_ca_key")
    if not ca_pem or not key_pem:
        raise Invalid("secrets: pgaas_tls_ca_cert and pgaas_tls_ca_key are required (the control plane renews "
                      "the certificates with the CA)", field="secrets")
    ca = _pem_cert(ca_pem, "pgaas_tls_ca_cert")
    if not _same_key(ca, _pem_key(key_pem, "pgaas_tls_ca_key")):
        raise Invalid("secrets: pgaas_tls_ca_key is not the key of pgaas_tls_ca_cert", field="secrets")
    given = secrets.get("pgaas_tls_certs") or {}
    if not isinstance(given, dict):
        raise Invalid("secrets: pgaas_tls_certs must map each container to {cert, key}", field="secrets")
    names = certificates.member_names(inst)
    stray = sorted(set(given) - set(names))
    if stray:
        raise Invalid(f"secrets: pgaas_tls_certs names {', '.join(stray)}, not a container of this instance",
                      field="secrets")
    certs, issued = {}, []
    for container, want in names.items():
        if container in given and _usable(ca, given[container], container, want):
            certs[container] = {"cert": given[container]["cert"], "key": given[container]["key"]}
        else:
            cert, key = certificates.issue(ca_pem, key_pem, container, want, days)
            certs[container] = {"cert": cert, "key": key}
            issued.append(container)
    client = certificates.issue(ca_pem, key_pem, certificates.CLIENT_CN, [], days, server=False)
    return ({"ca_cert": ca_pem, "ca_key": key_pem, "certs": certs, "names": names,
             "client": {"cert": client[0], "key": client[1]}}, issued)


def _known_hosts(s: Session, provider, config) -> dict[str, str | None]:
    """Host name -> its address (None: the provider's own, e.g. localhost) of the hosts the provider knows."""
    names = provider.hosts()
    if not names:
        raise Invalid(f"the {provider.name} provider knows no hosts ahead (it makes them per instance): adoption "
                      "needs the local or ssh provider", field="vars")
    addresses = {h.name: h.address for h in hostregistry.all_hosts(s, config)} if provider.name == "ssh" else {}
    return {n: addresses.get(n) for n in names}


# -- adopt ----------------------------------------------------------------------------------------------------
def adopt(s: Session, provider, box: SecretBox, config, actor: audit.Actor, *, name, inventory, vars,
          secrets=None, image: str, cert_days: int = certificates.CERT_DAYS):
    """Take an operator's pair into the control plane: check everything, store the instance and its members
    with the secrets sealed, queue the instance_adopt job. Returns (instance, job)."""
    check_name(name)
    if not isinstance(vars, dict):
        raise Invalid("vars must be a mapping of the playbooks' variables (pgaas_instance_name, pgaas_members, ...)",
                      field="vars")
    hosts, top = inventory_hosts(inventory)
    v = short_form(name, {**top, **vars}, hosts)
    if v.get("pgaas_instance_name") != name:
        raise Invalid(f"vars: pgaas_instance_name is {v.get('pgaas_instance_name')!r}, not {name!r}", field="vars")
    if s.scalar(select(Instance).where(Instance.name == name)) is not None:
        raise Conflict(f"instance {name!r} already exists")
    if jobsvc.active_job(s, name):
        raise Conflict(f"instance {name!r} is still being deleted")
    known = _known_hosts(s, provider, config)
    local = provider.name == "local"
    members = _members(name, v.get("pgaas_members"), known, local)
    etcd = _etcd(name, v.get("pgaas_etcd_members"), known, local)
    for h in sorted({m["host"] for m in members} | {e["host"] for e in etcd}):
        if h not in hosts:
            raise Invalid(f"inventory: host {h!r} of the vars is not in the inventory", field="inventory")
        given = hosts[h].get("ansible_host")
        if known.get(h) and given and given != known[h]:
            raise Invalid(f"inventory: host {h!r} is {given}, but the control plane knows it as {known[h]}",
                          field="inventory")
    _check_ports(members, etcd, isvc.used_ports(s))
    if v.get("pgaas_image") not in (None, image):
        raise Invalid(f"vars: pgaas_image is {v['pgaas_image']!r}, but the control plane deploys {image!r}; "
                      "converge the pair to that image first", field="vars")
    synchronous = v.get("pgaas_synchronous", L.SYNCHRONOUS_DEFAULT)
    if not isinstance(synchronous, bool):
        raise Invalid("vars: pgaas_synchronous must be true or false", field="vars")
    admin_user = v.get("pgaas_admin_user") or default_admin_user(name)
    if not isinstance(admin_user, str) or not ADMIN_USER_RE.match(admin_user) or admin_user.startswith("pg_") \
            or admin_user in ("postgres", "replicator", "pgaas"):
        raise Invalid("vars: pgaas_admin_user must match ^[a-z_][a-z0-9_]{0,62}$ and not be postgres, replicator, "
                      "pgaas or pg_*", field="vars")
    admin_database = check_db_name(v.get("pgaas_admin_database") or L.ADMIN_DATABASE_DEFAULT, "pgaas_admin_database")
    sizes = {"storage_gb": check_int(v.get("pgaas_storage_gb"), "pgaas_storage_gb", L.STORAGE_GB_MIN,
                                     L.STORAGE_GB_MAX),
             "memory_mb": check_int(v.get("pgaas_memory_mb"), "pgaas_memory_mb", L.MEMORY_MB_MIN, L.MEMORY_MB_MAX),
             "cpus": check_number(v.get("pgaas_cpus"), "pgaas_cpus", L.CPUS_MIN, L.CPUS_MAX)}
    if not isinstance(secrets, dict):
        raise Invalid(f"secrets are required: the contents of {secrets_filename(name)}", field="secrets")
    missing = [k for k in (*PASSWORDS, "pgaas_tls_ca_cert", "pgaas_tls_ca_key") if not secrets.get(k)]
    if missing:
        raise Invalid(f"secrets: {', '.join(missing)} missing", field="secrets")
    sealed = {k: isvc.check_password(secrets[k], k) for k in PASSWORDS}
    inst = Instance(name=name, status="creating", provider=provider.name, synchronous=synchronous,
                    replicas=len(members) - 1, admin_user=admin_user, admin_database=admin_database,
                    meta={"etcd_members": etcd} if etcd else {}, created_by=actor.username, **sizes)
    inst.members = [Member(ordinal=i, **m) for i, m in enumerate(members)]
    tls, issued = _tls(inst, secrets, cert_days)
    inst.secrets_enc = box.seal({**sealed, "tls": tls})
    certificates.export_ca(box, name, tls["ca_cert"])
    inst.meta = {**inst.meta, "tls": certificates.summary(tls, active=False),
                 "adopted": {"by": actor.username, "at": utcnow().replace(microsecond=0).isoformat(),
                             "issued_certificates": issued}}
    s.add(inst)
    s.flush()
    job = jobsvc.enqueue(s, "instance_adopt", name, actor.username)
    audit.record(s, actor, "instance.adopt", "instance", name,
                 detail=f"job {job.id}: {len(members)} members on {', '.join(sorted({m['host'] for m in members}))}"
                        + (f"; certificates issued for {', '.join(issued)}" if issued else ""))
    return inst, job


# -- the reverse: an instance as the operator's files ---------------------------------------------------------
def _host_vars(host: str, spec, address: str) -> dict:
    if host == "localhost":  # the control plane's own machine (inventory/local/hosts.yml)
        return {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    if spec is None:  # a server its provider made (openstack): how to log in is the operator's to add
        return {"ansible_host": address}
    return {"ansible_host": spec.address, "ansible_user": spec.ssh_user, "ansible_port": spec.ssh_port,
            "ansible_become": spec.ssh_user != "root", "ansible_python_interpreter": "/usr/bin/python3"}


def export(s: Session, box: SecretBox, config, actor: audit.Actor, name: str, image: str,
           with_secrets: bool = False) -> dict:
    """The instance as the operator's inventory (its vars under all.vars), the same vars as a vars file, and,
    only when asked (audited), the secrets file's content. The control plane's own client key is never in it:
    pgaas_tls_client is a certificate issued for this export, with a key of its own (CN pgaas-control-plane, as the
    operators' secrets file names it: docs/operators.md)."""
    inst = isvc.get(s, name)
    specs = {h.name: h for h in hostregistry.all_hosts(s, config)} if inst.provider == "ssh" else {}
    addresses = {e["host"]: e["address"] for e in isvc.etcd_members(inst)} | {m.host: m.address for m in inst.members}
    hosts = {h: _host_vars(h, specs.get(h), addresses.get(h, h)) for h in sorted(set(isvc.instance_hosts(inst)))}
    v = isvc.deploy_vars(inst, image)
    body = {"instance": inst.name, "inventory": {"all": {"hosts": hosts, "vars": v}}, "vars": v,
            "secrets_file": secrets_filename(inst.name)}
    if with_secrets:
        sealed = box.open(inst.secrets_enc)
        tls = sealed.get("tls") or certificates.ensure(inst, box)
        client = certificates.issue(tls["ca_cert"], tls["ca_key"], certificates.CLIENT_CN, [], server=False)
        body["secrets"] = {**{k: sealed[k] for k in PASSWORDS}, "pgaas_tls_ca_cert": tls["ca_cert"],
                           "pgaas_tls_ca_key": tls["ca_key"], "pgaas_tls_certs": tls["certs"],
                           "pgaas_tls_client": {"cert": client[0], "key": client[1]}}
        audit.record(s, actor, "instance.inventory_secrets", "instance", inst.name,
                     detail="the inventory with its secrets")
    return body

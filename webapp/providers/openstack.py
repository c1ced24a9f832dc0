"""OpenStack: each member gets a VM of its own, made with the openstack.cloud modules against a named cloud.

Per instance: a keypair, a security group (PostgreSQL, Patroni REST and etcd ports open to the members and the
control plane only), an anti-affinity server group, one server and one Cinder data volume per member, optional
floating IPs. Servers carry metadata (group/groups for the openstack.cloud inventory plugin, pgaas_instance,
pgaas_member, a compact summary) and deletion finds everything by those tags.

Credentials never pass through pgaas: the playbooks get the path of a clouds.yaml (OS_CLIENT_CONFIG_FILE) and the
name of a cloud in it. The SSH key pair that reaches the servers is generated once into the instance folder (0600).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from webapp.jobs.spec import Template
from webapp.providers import known_hosts
from webapp.providers.base import Placement, Provider

PG_PORT, API_PORT = 5432, 8008
BACKUP_PORT = 8432  # a member's pgBackRest TLS server


class OpenStackProvider(Provider):
    name = "openstack"

    def __init__(self, config, store=None, box=None):
        self.clouds_yaml = str(config.get("OPENSTACK_CLOUDS_YAML") or "")
        self.cloud = str(config.get("OPENSTACK_CLOUD") or "")
        if not self.clouds_yaml or not self.cloud:
            raise ValueError("the openstack provider needs OPENSTACK_CLOUDS_YAML (a clouds.yaml path) and "
                             "OPENSTACK_CLOUD (a cloud named in it)")
        self.image = str(config.get("OPENSTACK_IMAGE") or "debian-12")
        self.flavor = str(config.get("OPENSTACK_FLAVOR") or "m1.small")
        self.network = str(config.get("OPENSTACK_NETWORK") or "")
        self.floating_ip_network = str(config.get("OPENSTACK_FLOATING_IP_NETWORK") or "")
        self.ssh_user = str(config.get("OPENSTACK_SSH_USER") or "debian")
        self.default_storage_gb = int(config.get("OPENSTACK_DEFAULT_STORAGE_GB") or 10)
        self.connect_timeout = int(config.get("OPENSTACK_CONNECT_TIMEOUT") or 300)
        self.image_delivery = str(config.get("OPENSTACK_IMAGE_DELIVERY") or "pull")
        cidrs = config.get("OPENSTACK_CONTROL_CIDRS") or ""
        self.control_cidrs = [c.strip() for c in (cidrs.split(",") if isinstance(cidrs, str) else cidrs) if c.strip()]
        # Default: beside the jobs folder, in the instance folder (0700).
        self.key_file = str(config.get("OPENSTACK_KEY_FILE") or Path(config["JOBS_DIR"]).parent / "openstack_ed25519")
        # Servers' host keys: pinned on first contact in the control plane's known_hosts, forgotten on delete.
        self.known_hosts_file = known_hosts.file_for(config)

    # -- placement (hosts() is the base's []: servers are made per instance; stats() its {}) -------------------
    def place(self, instance: str, count: int, used_ports: set[tuple[str, int]]) -> list[Placement]:
        """One server per member, named like the member; its address is known once the server exists."""
        return [Placement(f"pgaas-{instance}-{i}", f"pgaas-{instance}-{i}", "", PG_PORT, API_PORT)
                for i in range(count)]

    def free_ports(self, host: str, count: int, used_ports) -> list[int]:
        """A server per member: its own fixed ports."""
        return list(range(BACKUP_PORT, BACKUP_PORT + count))

    def etcd_members(self, instance: str, placements: list[Placement], used_ports) -> list[dict]:
        """etcd on the servers themselves, published on their addresses: one member per server when there are
        three or more, else one member on the first server. Addresses are filled in once the servers exist."""
        chosen = placements if len(placements) >= 3 else placements[:1]
        return [{"name": f"pgaas-{instance}-etcd-{i}", "host": p.host, "address": "", "client_port": 2379,
                 "peer_port": 2380} for i, p in enumerate(chosen)]

    # -- what the jobs run ----------------------------------------------------------------------------------
    def public_key(self) -> str:
        key = Path(self.key_file)
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pgaas openstack provider",
                            "-f", str(key)], check=True, capture_output=True)
        os.chmod(key, 0o600)
        return key.with_suffix(".pub").read_text().strip()

    def playbook_vars(self, meta: dict | None = None) -> dict:
        """The extravars every openstack play gets: where the cloud is, never its credentials; and the server
        group an earlier run of this instance made (server groups carry no tags)."""
        group_ids = [g for g in [((meta or {}).get("openstack") or {}).get("server_group_id")] if g]
        return {"pgaas_openstack_server_group_ids": group_ids, "pgaas_openstack": {
            "cloud": self.cloud, "clouds_yaml": self.clouds_yaml, "image": self.image, "flavor": self.flavor,
            "network": self.network, "floating_ip_network": self.floating_ip_network, "ssh_user": self.ssh_user,
            "private_key_file": self.key_file, "public_key": self.public_key(),
            "control_cidrs": self.control_cidrs, "default_storage_gb": self.default_storage_gb,
            "connect_timeout": self.connect_timeout, "image_delivery": self.image_delivery,
            "known_hosts_file": known_hosts.ensure(self.known_hosts_file)}}

    def provision_playbook(self) -> str:
        """The create's first run: the servers, volumes and addresses (recorded, then certificates naming the
        addresses are issued), before create_playbook deploys on them."""
        return "playbooks/openstack_provision.yml"

    def create_playbook(self) -> str:
        return "playbooks/instance_create_openstack.yml"

    def grow_playbook(self) -> str:
        return "playbooks/instance_grow_openstack.yml"

    def create_vars(self, deploy_vars: dict, meta: dict | None = None) -> dict:
        """The deploy's vars, except that members and etcd members get their addresses in the play, from the
        servers it made: the lists go as pgaas_openstack_members / pgaas_openstack_etcd_members."""
        out = dict(deploy_vars)
        out["pgaas_openstack_members"] = out.pop("pgaas_members")
        out["pgaas_openstack_etcd_members"] = out.pop("pgaas_etcd_members", [])
        for name, raw in (("pgaas_members", "pgaas_openstack_members"),
                          ("pgaas_etcd_members", "pgaas_openstack_etcd_members")):
            # A template, evaluated when the deploy uses it: each entry with its host's address (set by the
            # provisioning play's add_host). Extra vars outrank the deploy's own defaults, so it must be one.
            # Our own Jinja (a Template): every other extra var is data that Ansible never evaluates.
            out[name] = Template(f"{{{{ {raw} | zip({raw} | map(attribute='host') | map('extract', hostvars, "
                                 f"'pgaas_server_address') | map('community.general.dict_kv', 'address')) "
                                 f"| map('combine') | list }}}}")
        return {**out, **self.playbook_vars(meta)}

    def teardown(self, name: str, meta: dict) -> tuple[str, dict]:
        servers = ((meta or {}).get("openstack") or {}).get("servers") or {}
        recorded = sorted({a for s in servers.values() for a in (s.get("address"), s.get("fixed_address"),
                                                                 s.get("floating_address")) if a})
        return "playbooks/openstack_teardown.yml", {"pgaas_instance_name": name, **self.playbook_vars(meta),
                                                    "pgaas_openstack_forget_addresses": recorded}

    def record(self, inst, artifact_data: dict) -> None:
        """Store where each member's server is (address) and a summary of its resources in the instance."""
        result = artifact_data.get("pgaas_openstack") or {}
        servers = result.get("servers") or {}
        for m in inst.members:
            s = servers.get(m.host)
            if s and s.get("address"):
                m.address = s["address"]
        meta = dict(inst.meta or {})
        if result:
            meta["openstack"] = {**meta.get("openstack", {}), **result}
        addresses = {h: s.get("address") for h, s in servers.items()}
        if meta.get("etcd_members") and addresses:
            meta["etcd_members"] = [{**e, "address": addresses.get(e["host"]) or e.get("address", "")}
                                    for e in meta["etcd_members"]]
        inst.meta = meta

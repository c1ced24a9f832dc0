"""The provider contract (webapp/providers/base.py): the three providers subclass `Provider` and implement what it
requires; a provider without an optional capability gets the documented default, and the callers that used to ask
`hasattr` behave for it as they did. Real providers built from the real defaults; nothing here reaches a network or
runs podman (the defaults checked are the base's own)."""
from __future__ import annotations

import ast
import inspect
import threading
from pathlib import Path

import pytest

from webapp.config import Defaults
from webapp.extensions import Services
from webapp.providers import Provider, get_provider
from webapp.providers.local import LocalProvider
from webapp.providers.openstack import OpenStackProvider
from webapp.providers.ssh import SSHProvider
from webapp import hostregistry
from webapp.services import Invalid, alerts, leader_guard
from webapp.store.models import Instance, Member

WEBAPP = Path(__file__).resolve().parents[2] / "webapp"
PROVIDERS = (LocalProvider, SSHProvider, OpenStackProvider)
OPTIONAL = {"hosts", "replace", "etcd_members", "dcs_endpoints", "inventory", "stats", "volume_filesystems",
            "local_containers", "watch_exits", "member_exited", "provision_playbook", "create_playbook",
            "create_vars", "playbook_vars", "record", "teardown", "grow_playbook"}


@pytest.fixture
def config(tmp_path) -> dict:
    """The real defaults, with the folders create_app would fill in, and a cloud named (never contacted)."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {}\n")
    return {**{k: getattr(Defaults, k) for k in dir(Defaults) if k.isupper()},
            "JOBS_DIR": str(tmp_path / "jobs"), "SSH_KNOWN_HOSTS": str(tmp_path / "ssh_known_hosts"),
            "OPENSTACK_CLOUDS_YAML": str(clouds), "OPENSTACK_CLOUD": "nowhere"}


@pytest.fixture
def providers(config) -> dict[str, Provider]:
    return {name: get_provider(name, config) for name in ("local", "ssh", "openstack")}


def test_the_contract_is_required_and_documented():
    assert Provider.__abstractmethods__ == {"name", "place"}
    with pytest.raises(TypeError):
        Provider()  # an abstract base

    class Nameless(Provider):
        def place(self, instance, count, used_ports):
            return []

    with pytest.raises(TypeError, match="name"):
        Nameless()
    for attr in OPTIONAL | {"name", "place", "supports_exit_events", "writes_inventory"}:
        assert hasattr(Provider, attr), attr
    for method in OPTIONAL | {"place"}:
        assert inspect.getdoc(getattr(Provider, method)), f"Provider.{method} has no docstring"
    undocumented = sorted(m for m in OPTIONAL - {"inventory"} if "Default" not in inspect.getdoc(getattr(Provider, m)))
    assert undocumented == [], "every optional method documents its default"


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.__name__)
def test_each_provider_subclasses_provider_and_implements_what_it_requires(cls, providers):
    assert issubclass(cls, Provider)
    assert not cls.__abstractmethods__
    assert "place" in vars(cls) and isinstance(vars(cls)["name"], str)
    provider = providers[cls.name]
    assert type(provider) is cls
    # the overrides keep the base's signatures, so a caller can use any provider alike
    for method in OPTIONAL & set(vars(cls)):
        assert list(inspect.signature(getattr(cls, method)).parameters) == \
            list(inspect.signature(getattr(Provider, method)).parameters), f"{cls.__name__}.{method}"


def test_a_provider_without_a_capability_gets_the_documented_default(providers, config):
    local, ssh, openstack = providers["local"], providers["ssh"], providers["openstack"]
    placements = local.place("main", 2, set())
    assert [p.host for p in placements] == ["localhost", "localhost"]
    # local: one etcd beside the first member; a rebuilt member comes back where it was; hosts exist already
    assert local.etcd_members("main", placements, set()) == []
    assert local.replace("main", "pgaas-main-1", "localhost", {"localhost"}) is None
    assert local.provision_playbook() is None and local.grow_playbook() is None
    assert local.teardown("main", {}) is None
    assert local.create_playbook() == "playbooks/instance_deploy.yml"
    assert local.create_vars({"pgaas_members": []}) == {"pgaas_members": []} and local.playbook_vars() == {}
    inst = Instance(name="main", meta={})
    local.record(inst, {"pgaas_openstack": {"servers": {}}})
    assert inst.meta == {}
    assert not local.writes_inventory
    with pytest.raises(NotImplementedError, match="local provider writes no inventory"):
        local.inventory("/nonexistent")
    # ssh and openstack: nothing measured, no etcd to ask, no exit events
    for p in (ssh, openstack):
        assert p.stats(["pgaas-main-0"]) == {} and p.volume_filesystems(["pgaas-main-0"]) == {}
        assert p.dcs_endpoints("main") == []
        assert not p.supports_exit_events and p.member_exited("pgaas-main-0") is False
        stop = threading.Event()
        assert p.watch_exits(stop, lambda *a: pytest.fail("no exits to report")) is None
    assert ssh.local_containers() == {}  # no SSH_CONTROL_PLANE_ADDRESS: nothing of pgaas runs here
    assert ssh.provision_playbook() is None and ssh.teardown("main", {}) is None and ssh.grow_playbook() is None
    assert openstack.hosts() == [] and openstack.local_containers() == {}
    assert openstack.replace("main", "pgaas-main-1", "pgaas-main-1", {"pgaas-main-0"}) is None
    assert openstack.provision_playbook() == "playbooks/openstack_provision.yml"
    assert openstack.grow_playbook() == "playbooks/instance_grow_openstack.yml"
    assert local.supports_exit_events and ssh.writes_inventory


def test_callers_use_the_defaults_as_they_used_the_missing_method(providers, config):
    local, ssh, openstack = providers["local"], providers["ssh"], providers["openstack"]
    # the worker's inventory: the ssh provider writes one per run; the others use the static local one
    static = str(Path(config["PROJECT_DIR"]) / "inventory" / "local" / "hosts.yml")
    for p, inventory in ((local, static), (openstack, static), (ssh, ssh.inventory)):
        assert Services(store=None, box=None, provider=p, config=config).worker_settings()["inventory"] == inventory
    # the leader guard runs only over a provider with exit events
    assert leader_guard.LeaderGuard(None, local, config).enabled()
    assert not leader_guard.LeaderGuard(None, openstack, config).enabled()
    # a provider that cannot tell never says a member exited, and knows no etcd endpoint: a leader key stays
    inst = Instance(name="main", meta={})
    inst.members = [Member(ordinal=0, name="pgaas-main-0", host="pgaas-main-0", address="", pg_port=5432,
                           api_port=8008)]
    assert leader_guard.dcs_endpoints(inst, openstack) == []
    assert leader_guard.release_dead_leader(inst, "pgaas-main-0", openstack) == \
        "pgaas-main-0 has not exited (running, paused or unknown): nothing done"
    # alerts: no filesystem figures from a provider that cannot measure them, or from none
    assert alerts.volume_filesystems(openstack, ["pgaas-main-0"]) == {}
    assert alerts.volume_filesystems(None, ["pgaas-main-0"]) == {}


def test_no_provider_imports_the_services():
    """The host registry sits below both: providers/ssh.py reads it, services/hosts.py builds on it."""
    for path in [*sorted((WEBAPP / "providers").glob("*.py")), WEBAPP / "hostregistry.py", WEBAPP / "exceptions.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("webapp.services", "webapp.api", "webapp.ui", "flask")), \
                    f"{path.relative_to(WEBAPP.parent)} imports {name}"



def test_the_host_registry_raises_the_services_errors(config):
    """Moved below the services, it still raises their Invalid (the API answers 400 with the field), also when the
    ssh provider reads a bad SSH_HOSTS setting."""
    bad = {**config, "SSH_HOSTS": '[{"name": "Bad_Name", "address": "192.0.2.1", "ssh_user": "root"}]'}
    with pytest.raises(Invalid) as caught:
        hostregistry.configured(bad)
    assert caught.value.details == {"field": "name"}
    assert hostregistry.configured(config) == []

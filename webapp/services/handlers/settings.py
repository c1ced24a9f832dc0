"""Handlers of instance_settings (settings through Patroni's dynamic configuration, and sizes) and
instance_restart (a rolling restart with a switchover). The checks before they are queued: services/settings.py."""
from __future__ import annotations

from webapp.jobs.types import RunSpec
from webapp.services.crypto import SecretBox
from webapp.services.handlers.base import RunningInstanceHandler, instance_of, member_vars, restapi_secrets
from webapp.store.models import Instance, Job


class SettingsHandler(RunningInstanceHandler):
    def __init__(self, box: SecretBox, provider=None):
        super().__init__(box)
        self.provider = provider

    def prepare(self, s, job: Job) -> RunSpec:
        spec = self._settings_spec(s, job)
        sizes = (job.params or {}).get("sizes") or {}
        inst = instance_of(s, job)
        if sizes.get("storage_gb") is not None and self.provider is not None \
                and self.provider.grow_playbook():
            # A cloud provider grows the volumes (and their filesystems) first, then applies the rest.
            spec.playbook, spec.label = self.provider.grow_playbook(), "Grow the data volumes, then apply the rest"
            spec.extravars.update({"pgaas_storage_gb": sizes["storage_gb"], "pgaas_synchronous": inst.synchronous,
                                   **self.provider.playbook_vars(inst.meta)})
        return spec

    def _settings_spec(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        params = job.params or {}
        sizes = params.get("sizes") or {}
        return RunSpec("playbooks/instance_settings.yml", {
            "pgaas_instance_name": inst.name,
            "pgaas_members": member_vars(inst),
            "pgaas_settings": {k: v["value"] for k, v in (params.get("settings") or {}).items()},
            "pgaas_settings_expected": {k: {"setting": v["expected"], "restart": v["restart"]}
                                        for k, v in (params.get("settings") or {}).items()},
            "pgaas_cpus": sizes.get("cpus"),
            "pgaas_memory_mb": sizes.get("memory_mb"),
        }, secrets=restapi_secrets(self.box, inst), label="Apply settings through Patroni's dynamic configuration")

    def succeeded(self, inst: Instance, job: Job, meta: dict) -> None:
        managed = dict(meta.get("settings") or {})
        for name, v in ((job.params or {}).get("settings") or {}).items():
            if v["value"] is None or v.get("reset"):  # back to the default: no longer changed through pgaas
                managed.pop(name, None)
            else:
                managed[name] = {"value": v["value"], "expected": v["expected"]}
        meta["settings"] = managed
        sizes = (job.params or {}).get("sizes") or {}
        for key in ("cpus", "memory_mb", "storage_gb"):
            if key in sizes:
                setattr(inst, key, sizes[key])


class RestartHandler(RunningInstanceHandler):
    def prepare(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        return RunSpec("playbooks/instance_restart.yml",
                       {"pgaas_instance_name": inst.name, "pgaas_members": member_vars(inst)},
                       secrets=restapi_secrets(self.box, inst),
                       label="Restart the members one at a time, standbys first, with a switchover")

    def succeeded(self, inst: Instance, job: Job, meta: dict) -> None:
        meta["last_restart"] = job.result

"""Handlers of an instance's life: instance_create, instance_adopt, instance_delete, and instance_start after a
restart."""
from __future__ import annotations

from sqlalchemy import select

from webapp.jobs.types import NotRunnable, Outcome, RunSpec
from webapp.services import backups, certificates
from webapp.services import instances as isvc
from webapp.services.crypto import SecretBox
from webapp.services.handlers.base import JobHandler, PairHandler, deploy_vars, instance_of, last_job
from webapp.store.models import Database, Job

FACT_KEYS = ("ansible_hostname", "ansible_distribution", "ansible_distribution_version", "ansible_kernel",
             "ansible_architecture", "ansible_processor_vcpus", "ansible_memtotal_mb")


def teardown_spec(name: str, hosts: list[str], provider=None, meta: dict | None = None) -> RunSpec:
    teardown = provider.teardown(name, meta or {}) if provider is not None else None
    if teardown is not None:  # cloud providers remove what they made, found by its tags
        playbook, extravars = teardown
        return RunSpec(playbook, extravars, label=f"Remove the instance's {provider.name} resources")
    return RunSpec("playbooks/instance_teardown.yml",
                   {"pgaas_instance_name": name, "pgaas_hosts": sorted(set(hosts)) or ["localhost"]},
                   label="Remove the instance's containers, volumes and network")


def facts_summary(facts: dict) -> dict:
    return {host: {k.removeprefix("ansible_"): f[k] for k in FACT_KEYS if k in f} for host, f in facts.items()}


class CreateHandler(JobHandler):
    def __init__(self, box: SecretBox, image: str, provider=None, backup: backups.BackupSettings | None = None):
        self.box, self.image, self.provider = box, image, provider
        self.backup = backup or backups.BackupSettings()

    def prepare(self, s, job: Job) -> RunSpec:
        inst = isvc.get(s, job.instance_name)
        if job.kind == "instance_create" and backups.setup_instance(s, self.box, inst, self.provider, self.backup):
            backups.request_repo(s, job.created_by)  # the repository lets its members in (also before a backup)
        provision = self.provider.provision_playbook() if self.provider is not None else None
        if provision is not None:  # cloud providers make the hosts first (then: deploy)
            return RunSpec(provision,
                           self.provider.create_vars(deploy_vars(inst, self.image), inst.meta),
                           label=f"Provision {self.provider.name} resources (servers, volumes, addresses)")
        return RunSpec("playbooks/instance_deploy.yml", deploy_vars(inst, self.image),
                       secrets=certificates.playbook_secrets(self.box, inst), label="Deploy etcd and the Patroni pair")

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        """After a cloud provider's provisioning run: record the servers' addresses as the members' (and etcd
        members'), issue certificates that name them (verify-full against the URIs), then deploy on them."""
        if self.provider is None or self.provider.provision_playbook() is None \
                or (job.runs or [{}])[-1].get("playbook") != self.provider.provision_playbook():
            return None  # no provisioning, or the deploy that followed it has run
        inst = isvc.get(s, job.instance_name)
        self.provider.record(inst, outcome.artifact_data)
        missing = sorted(m.name for m in inst.members if not m.address)
        if missing:
            raise NotRunnable(f"the provisioning reported no address for {', '.join(missing)}")
        certificates.ensure(inst, self.box)  # issued again when the names (addresses) changed
        return RunSpec(self.provider.create_playbook(),
                       self.provider.create_vars(deploy_vars(inst, self.image), inst.meta),
                       secrets=certificates.playbook_secrets(self.box, inst),
                       label=f"Deploy etcd and the Patroni pair on the {self.provider.name} servers")

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        if outcome.status != "canceled":
            return None  # a failed deploy keeps its containers for inspection; a retry converges them
        inst = isvc.get(s, job.instance_name)
        return teardown_spec(inst.name, isvc.instance_hosts(inst), self.provider, inst.meta)

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        if self.provider is not None:  # where the provider put the members (even when a later play failed)
            self.provider.record(inst, outcome.artifact_data)
        meta = dict(inst.meta or {})
        meta["last_job"] = last_job(job)
        if job.status == "succeeded":
            meta["deploy"] = outcome.artifact_data.get("pgaas_result", {})
            meta["facts"] = facts_summary(outcome.facts)
            meta.pop("failed_job_kind", None)
            inst.status, inst.status_reason = "available", ""
            inst.meta = meta
            certificates.activate(inst)
            meta = dict(inst.meta)
        else:
            meta["failed_job_kind"] = job.kind
            inst.status = "failed"
            if job.status == "canceled":
                inst.status_reason = f"create canceled (job {job.id}); leftovers removed; retry or delete"
            else:
                inst.status_reason = f"create failed (job {job.id}): {job.error}; retry or delete"
        job.result = {"instance": inst.name, "status": inst.status}
        inst.meta = meta

    def lost(self, s, job: Job) -> None:
        inst = instance_of(s, job)
        if inst is not None:
            inst.status = "failed"
            inst.status_reason = f"job {job.id} ended abnormally: {job.error}"
            inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}


class AdoptHandler(CreateHandler):
    """instance_adopt (services/adoption.py): a pair an operator deployed with ansible-playbook, converged by the
    same deploy playbook with the inputs it was adopted with (idempotent: a pair deployed with them changes
    nothing; a container certificate the operator did not give is installed), its metadata (deploy result, facts
    summary, server version) filled from that run as for a create. Nothing is removed when it fails or is canceled:
    the pair stays as the operator left it."""

    def prepare(self, s, job: Job) -> RunSpec:
        inst = isvc.get(s, job.instance_name)
        inst.status = "creating"  # also when the job is a retry
        return RunSpec("playbooks/instance_deploy.yml", deploy_vars(inst, self.image),
                       secrets=certificates.playbook_secrets(self.box, inst),
                       label="Converge the adopted pair (etcd and the Patroni pair) and gather its facts")

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        super().finish(s, job, outcome)
        inst = instance_of(s, job)
        if inst is not None and inst.status == "failed":
            inst.status_reason = (f"adoption {job.status} (job {job.id}): {job.error or 'no reason given'}; the "
                                  "pair is as it was: retry (converges it again) or delete (removes its containers "
                                  "and data volumes)")


class DeleteHandler(CreateHandler):
    def prepare(self, s, job: Job) -> RunSpec:
        inst = isvc.get(s, job.instance_name)
        return teardown_spec(inst.name, isvc.instance_hosts(inst), self.provider, inst.meta)

    def then(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None  # the teardown is one run

    def cleanup(self, s, job: Job, outcome: Outcome) -> RunSpec | None:
        return None

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        if job.status == "succeeded":
            for db in s.scalars(select(Database).where(Database.instance_id == inst.id)):
                s.delete(db)
            s.flush()
            backups.instance_deleted(s, inst, job.created_by)  # its stanza and backups stay: deleted, restorable
            s.delete(inst)
            job.result = {"instance": job.instance_name, "deleted": True}
        else:
            inst.status = "failed"
            inst.status_reason = f"delete {job.status} (job {job.id}): {job.error or 'no reason given'}; " \
                                 "retry the delete"
            inst.meta = {**(inst.meta or {}), "failed_job_kind": job.kind}


class StartHandler(PairHandler):
    """instance_start (services/startup.py): the instance's stopped containers started again, etcd first."""

    def prepare(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        inst.status = "starting"  # also when the job is a retry
        return RunSpec("playbooks/instance_start.yml", deploy_vars(inst, self.image),
                       secrets={"pgaas_admin_password": self.box.open(inst.secrets_enc)["pgaas_admin_password"]},
                       label="Start the instance's stopped containers (etcd first), wait for the pair")

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        if (inst := instance_of(s, job)) is not None:
            self.finish_pair(inst, job, outcome)
            if job.status == "succeeded":
                inst.meta = {**inst.meta, "last_start": {"job": job.id, "leader": job.result.get("leader"),
                                                         "started": job.result.get("started", {})}}
            isvc.start_ended(inst, job)

    def lost(self, s, job: Job) -> None:
        super().lost(s, job)
        inst = instance_of(s, job)
        if inst is not None:
            isvc.start_ended(inst, job)

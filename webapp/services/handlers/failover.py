"""Handlers of instance_switchover and instance_failover (through Patroni) and instance_rebuild (a standby cloned
again from the current primary). The checks before they are queued, and the history: services/failover.py."""
from __future__ import annotations

from webapp.jobs.types import Outcome, RunSpec
from webapp.services import certificates
from webapp.services import failover as fsvc
from webapp.services.handlers.base import PairHandler, deploy_vars, instance_of, member_vars, restapi_secrets
from webapp.store.models import Instance, Job


class SwitchHandler(PairHandler):
    def prepare(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        params = job.params or {}
        return RunSpec("playbooks/instance_switchover.yml",
                       {"pgaas_instance_name": inst.name, "pgaas_members": member_vars(inst),
                        "pgaas_action": params.get("action", "switchover"), "pgaas_candidate": params.get("candidate")},
                       secrets=restapi_secrets(self.box, inst),
                       label=f"{params.get('action', 'switchover').capitalize()} through Patroni")

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        result = self.finish_pair(inst, job, outcome)
        if result.get("history"):
            for key in ("timeline", "lag_bytes"):
                try:
                    result[key] = int(result[key]) if result.get(key) not in (None, "", "None") else None
                except (TypeError, ValueError):
                    result[key] = None
            rows = fsvc.record_history(s, inst, result["history"], job=job, result=result)
            job.result = {**job.result, "recorded": [r.timeline for r in rows]}


REBUILD_PLAYBOOK = "playbooks/instance_rebuild.yml"


def rebuild_run(inst: Instance, image: str, member: str, old_host: str, secrets: dict, label: str,
                placement: dict | None = None) -> RunSpec:
    """playbooks/instance_rebuild.yml for one member: the deploy's vars, with the member at its new placement when
    it moves (name, host, address, ports), removed from old_host first."""
    extravars = deploy_vars(inst, image)
    if placement:
        extravars["pgaas_members"] = [
            {k: placement[k] for k in ("name", "host", "address", "pg_port", "api_port") if k in placement}
            if m["name"] == member else m for m in extravars["pgaas_members"]]
    extravars.update(pgaas_rebuild_member=member, pgaas_rebuild_old_host=old_host)
    return RunSpec(REBUILD_PLAYBOOK, extravars, secrets=secrets, label=label)


class RebuildHandler(PairHandler):
    def prepare(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        params = job.params or {}
        placement = params.get("placement") or {}
        secrets = certificates.playbook_secrets(self.box, inst)
        if placement.get("address") and placement["address"] != next(
                m.address for m in inst.members if m.name == params["member"]):
            # the member moves to another host: a certificate for its new address (the next renewal seals one)
            tls = self.box.open(inst.secrets_enc)["tls"]
            cert, key = certificates.issue(tls["ca_cert"], tls["ca_key"], params["member"],
                                           [params["member"], placement["address"], "localhost", "127.0.0.1"])
            secrets["pgaas_tls_certs"] = {**secrets["pgaas_tls_certs"], params["member"]: {"cert": cert, "key": key}}
        return rebuild_run(inst, self.image, params["member"], params["old_host"], secrets,
                           f"Rebuild {params['member']} from the current primary", placement)

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        self.finish_pair(inst, job, outcome)
        params = job.params or {}
        if job.status != "succeeded":
            return
        placement = params.get("placement") or {}
        for m in inst.members:
            if m.name == params.get("member"):
                for key in ("host", "address", "pg_port", "api_port"):
                    if key in placement:
                        setattr(m, key, placement[key])
                m.lost_since = None
        inst.meta = {**inst.meta, "last_rebuild": {"job": job.id, "member": params.get("member"),
                                                   "automatic": bool(params.get("automatic")),
                                                   "finished_at": job.finished_at.isoformat()
                                                   if job.finished_at else None}}

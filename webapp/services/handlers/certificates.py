"""Handler of instance_certificates: the renewal of an instance's certificates (services/certificates.py)."""
from __future__ import annotations

from webapp.jobs.types import Outcome, RunSpec
from webapp.services import certificates as tls_svc
from webapp.services.crypto import SecretBox
from webapp.services.handlers.base import JobHandler, deploy_vars, instance_of, last_job
from webapp.store.models import Job


class RenewHandler(JobHandler):
    """instance_certificates: fresh certificates from the instance's CA (a new CA with rotate_ca), put in place
    without a restart; an instance from before TLS is converged onto it by the deploy play instead."""

    def __init__(self, box: SecretBox, image: str, days: int = tls_svc.CERT_DAYS):
        self.box, self.image, self.days = box, image, days

    def prepare(self, s, job: Job) -> RunSpec:
        inst = instance_of(s, job)
        rotate = bool((job.params or {}).get("rotate_ca"))
        if not tls_svc.is_active(inst):
            job.params = {**(job.params or {}), "converge": True}
            return RunSpec("playbooks/instance_deploy.yml", deploy_vars(inst, self.image),
                           secrets=tls_svc.playbook_secrets(self.box, inst, self.days),
                           label="Move the instance onto TLS: every member restarts with its certificate")
        tls = tls_svc.ensure(inst, self.box, self.days, renew=True, new_ca_too=rotate)
        return RunSpec("playbooks/instance_certificates.yml",
                       {**deploy_vars(inst, self.image), "pgaas_tls_new_ca": rotate},
                       secrets={"pgaas_tls_ca_cert": tls["ca_cert"], "pgaas_tls_certs": tls["certs"]},
                       label="Renew the certificates of the members and etcd (no restart)")

    def finish(self, s, job: Job, outcome: Outcome) -> None:
        inst = instance_of(s, job)
        if inst is None:
            return
        if job.status == "succeeded":
            tls_svc.activate(inst)
        else:
            tls_svc.abandon(inst)
        t = inst.meta.get("tls") or {}
        job.result = {"instance": inst.name, "not_after": t.get("not_after"), "active": bool(t.get("active")),
                      "converged": bool((job.params or {}).get("converge"))}
        inst.meta = {**inst.meta, "last_job": last_job(job)}

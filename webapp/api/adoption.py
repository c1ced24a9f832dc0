"""Adoption of a pair an operator deployed with ansible-playbook, and the reverse: an instance as the operator's
inventory, vars and secrets (services/adoption.py; docs/operators.md)."""
from __future__ import annotations

from flask import request, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.errors import BadRequest
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import adoption


@bp.post("/instances/adopt")
@auth_required(admin=True, operation=("instance.adopt", "instance", "name"))
def adopt_instance():
    data = json_body(rq.InstanceAdopt, audit=("instance.adopt", "instance", lambda d: str(d.get("name"))))
    svc = services()
    with svc.store.session() as s:
        inst, job = adoption.adopt(s, svc.provider, svc.box, svc.config, actor(), image=svc.config["IMAGE"],
                                   cert_days=int(svc.config["TLS_CERT_DAYS"]), **data)
        body = {"instance": ser.instance(inst, None, admin=True, active_job=job), "job": ser.job_ref(job)}
    return body, 202, {"Location": url_for("api.get_instance", name=inst.name)}


@bp.get("/instances/<name>/inventory")
@auth_required(admin=True)
def instance_inventory(name):
    raw = request.args.get("secrets", "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise BadRequest("secrets must be true or false")
    with_secrets = raw in ("true", "1", "yes")
    if with_secrets:
        audited("instance.inventory_secrets", "instance", name)
    svc = services()
    with svc.store.session() as s:
        return adoption.export(s, svc.box, svc.config, actor(), name, svc.config["IMAGE"], with_secrets)

"""Moving and repairing the pair (admins): switchover, forced failover, rebuild of a standby; the history of
primary changes."""
from flask import url_for

from webapp.api import actor, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.pagination import page, paged
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import failover as fsvc
from webapp.services import instances as isvc


def _accepted(job):
    return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.post("/instances/<name>/switchover")
@auth_required(admin=True, operation=("instance.switchover", "instance", "name"))
def switchover_instance(name):
    data = json_body(rq.Switchover, audit=("instance.switchover", "instance", name))
    svc = services()
    with svc.store.session() as s:
        job = fsvc.switchover(s, isvc.get(s, name), actor(), data.get("candidate"),
                              float(svc.config["PROBE_TIMEOUT"]))
        return _accepted(job)


@bp.post("/instances/<name>/failover")
@auth_required(admin=True, operation=("instance.failover", "instance", "name"))
def failover_instance(name):
    data = json_body(rq.Failover, audit=("instance.failover", "instance", name))
    svc = services()
    with svc.store.session() as s:
        job = fsvc.failover(s, isvc.get(s, name), actor(), data.get("candidate"),
                            float(svc.config["PROBE_TIMEOUT"]))
        return _accepted(job)


@bp.post("/instances/<name>/rebuild")
@auth_required(admin=True, operation=("instance.rebuild", "instance", "name"))
def rebuild_instance_member(name):
    data = json_body(rq.Rebuild, audit=("instance.rebuild", "instance", name))
    svc = services()
    with svc.store.session() as s:
        job = fsvc.rebuild(s, svc.provider, isvc.get(s, name), actor(), data.get("member"),
                           float(svc.config["PROBE_TIMEOUT"]))
        return _accepted(job)


@bp.get("/instances/<name>/history")
@auth_required(admin=True)
def instance_history(name):
    pg = page()
    with services().store.session() as s:
        inst = isvc.get(s, name)
        return paged("changes", fsvc.history(s, inst, pg.fetch, pg.offset), pg, ser.primary_change,
                     instance=inst.name)

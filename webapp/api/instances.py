from flask import g, request, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.errors import BadRequest
from webapp.api.pagination import flag, page, paged
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import Conflict, NotFound, access, certificates, livestate
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services import settings as ssvc


@bp.post("/instances")
@auth_required(admin=True, operation=("instance.create", "instance", "name"))
def create_instance():
    data = json_body(rq.InstanceCreate, audit=("instance.create", "instance", lambda d: str(d.get("name"))))
    svc = services()
    with svc.store.session() as s:
        inst, job, admin_password = isvc.create(s, svc.provider, svc.box, actor=actor(),
                                                cert_days=int(svc.config["TLS_CERT_DAYS"]), **data)
        body = {"instance": ser.instance(inst, None, admin=True, active_job=job), "job": ser.job_ref(job),
                "admin_user": inst.admin_user, "admin_database": inst.admin_database,
                "admin_password": admin_password}
    return body, 202, {"Location": url_for("api.get_instance", name=inst.name)}


@bp.get("/instances")
@auth_required()
def list_instances():
    """Admins: every instance; others: those open to them, each as its name, status and version."""
    pg = page()
    svc = services()
    with svc.store.session() as s:
        insts = access.visible_instances(s, actor(), pg.fetch, pg.offset)
        states = livestate.read(s, insts[:pg.limit], float(svc.config["PROBE_TIMEOUT"]),
                                live=flag("live", False) and g.is_admin)
        jobs = jobsvc.active_jobs(s, [i.name for i in insts[:pg.limit]]) if g.is_admin else {}

        def one(i):
            st, age = states.get(i.name, (None, None))
            return ser.instance(i, st, admin=g.is_admin, state_age=age, active_job=jobs.get(i.name))

        return paged("instances", insts, pg, one)


@bp.get("/instances/<name>")
@auth_required()
def get_instance(name):
    svc = services()
    with svc.store.session() as s:
        inst = access.get_visible(s, actor(), name)
        st, age = livestate.read(s, [inst], float(svc.config["PROBE_TIMEOUT"]),
                                 live=flag("live", False) and g.is_admin).get(name, (None, None))
        return ser.instance(inst, st, admin=g.is_admin, active_job=jobsvc.active_job(s, name), state_age=age)


@bp.get("/instances/<name>/ca.crt")
@auth_required()
def get_instance_ca(name):
    """The instance's CA certificate (PEM): save it as the sslrootcert its URIs name, to connect with
    sslmode=verify-full. Anyone who may see the instance may have it (it is public)."""
    with services().store.session() as s:
        inst = certificates.instance_for_ca(s, actor(), name)
        pem = certificates.ca_cert(inst)
        if not pem:
            raise NotFound(f"instance {name!r} has no certificates yet (it was made before TLS: its next converge "
                           "or certificate renewal moves it onto TLS)")
        return pem, 200, {"Content-Type": "application/x-pem-file",
                          "Content-Disposition": f'attachment; filename="{certificates.ca_filename(inst)}"'}


@bp.post("/instances/<name>/certificates")
@auth_required(admin=True, operation=("instance.certificates", "instance", "name"))
def renew_instance_certificates(name):
    """Renew the certificates of the members, etcd and the control plane now ({"rotate_ca": true}: a new CA too;
    clients must download it again). An instance from before TLS is moved onto it (its members restart)."""
    data = json_body(rq.CertificateRenewal)
    rotate = data.get("rotate_ca", False)
    if not isinstance(rotate, bool):
        raise BadRequest("rotate_ca must be true or false", field="rotate_ca")
    audited("instance.certificates", "instance", name)
    with services().store.session() as s:
        job = certificates.renew(s, isvc.get(s, name), actor(), rotate_ca=rotate)
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.delete("/instances/<name>")
@auth_required(admin=True, operation=("instance.delete", "instance", "name"))
def delete_instance(name):
    audited("instance.delete", "instance", name)
    force = request.args.get("force", "false").lower() in ("1", "true", "yes")
    with services().store.session() as s:
        job = isvc.delete(s, name, actor(), force=force)
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.post("/instances/<name>/retry")
@auth_required(admin=True, operation=("instance.retry", "instance", "name"))
def retry_instance(name):
    json_body()
    with services().store.session() as s:
        job = isvc.retry(s, name, actor())
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.patch("/instances/<name>")
@auth_required(admin=True, operation=("instance.settings", "instance", "name"))
def change_instance(name):
    data = json_body(rq.InstanceChange, audit=("instance.settings", "instance", name))
    svc = services()
    with svc.store.session() as s:
        job = ssvc.change(s, svc.box, isvc.get(s, name), actor(), **data)
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.post("/instances/<name>/restart")
@auth_required(admin=True, operation=("instance.restart", "instance", "name"))
def restart_instance(name):
    json_body(audit=("instance.restart", "instance", name))
    with services().store.session() as s:
        job = ssvc.restart(s, isvc.get(s, name), actor())
        return {"job": ser.job_ref(job)}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.get("/instances/<name>/settings")
@auth_required(admin=True)
def instance_settings(name):
    svc = services()
    with svc.store.session() as s:
        inst = isvc.get(s, name)
        if inst.status != "available":
            raise Conflict(f"instance {name!r} is {inst.status}, not available")
        return ssvc.current(inst, svc.box, float(svc.config["PROBE_TIMEOUT"]) + 1)


@bp.get("/instances/<name>/access")
@auth_required(admin=True)
def get_instance_access(name):
    with services().store.session() as s:
        inst = isvc.get(s, name)
        return {"instance": inst.name, "users": access.allowed_usernames(inst)}


@bp.put("/instances/<name>/access")
@auth_required(admin=True, operation=("instance.access", "instance", "name"))
def put_instance_access(name):
    """{"users": [...]}: only these users (and admins) see the instance; {"users": null}: every user does."""
    data = json_body(rq.InstanceAccessChange, audit=("instance.access", "instance", name))
    with services().store.session() as s:
        inst = isvc.get(s, name)
        users = access.set_access(s, actor(), inst, data["users"])
        return {"instance": inst.name, "users": users}

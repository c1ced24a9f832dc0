from flask import request, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.pagination import flag, page, paged
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import access
from webapp.services import databases as dbsvc
from webapp.services import dumps
from webapp.uploads import has_body, save_body


def _started(job, **body):
    return {"job": ser.job_ref(job), **body}, 202, {"Location": url_for("api.get_job", job_id=job.id)}


@bp.post("/instances/<instance>/databases")
@auth_required()
def create_database(instance):
    data = json_body(rq.DatabaseCreate,
                     audit=("database.create", "database", lambda d: f"{instance}/{d.get('name')}"))
    svc = services()
    with svc.store.session() as s:
        db, password = dbsvc.create(s, svc.box, actor(), instance, data["name"], data.get("quota_mb"),
                                    data.get("connection_limit"), data.get("parameters"),
                                    limits=svc.capacity_defaults())
        body = {"database": {**ser.database(db), "password": password}}
    return body, 201, {"Location": url_for("api.get_database", instance=instance, name=db.name)}


@bp.get("/databases")
@auth_required()
def list_databases():
    pg = page()
    svc = services()
    with svc.store.session() as s:
        dbs = dbsvc.visible(s, actor(), request.args.get("instance") or None, request.args.get("owner") or None,
                            limit=pg.fetch, offset=pg.offset)
        return paged("databases", dbs, pg, ser.database)


@bp.get("/instances/<instance>/databases")
@auth_required()
def list_instance_databases(instance):
    pg = page()
    with services().store.session() as s:
        access.get_visible(s, actor(), instance)
        return paged("databases", dbsvc.visible(s, actor(), instance, limit=pg.fetch, offset=pg.offset), pg,
                     ser.database)


@bp.get("/instances/<instance>/databases/<name>")
@auth_required()
def get_database(instance, name):
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        return ser.database(db, dbsvc.live_stats(svc.box, [db]).get(db.id))


@bp.patch("/instances/<instance>/databases/<name>")
@auth_required()
def update_database(instance, name):
    data = json_body(rq.DatabaseChange, audit=("database.update", "database", f"{instance}/{name}"))
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        dbsvc.update(s, svc.box, actor(), db, quota_mb=data.get("quota_mb", ...),
                     connection_limit=data.get("connection_limit", ...), parameters=data.get("parameters"),
                     limits=svc.capacity_defaults())
        return ser.database(db, dbsvc.live_stats(svc.box, [db]).get(db.id))


@bp.post("/instances/<instance>/databases/<name>/password")
@auth_required()
def reset_database_password(instance, name):
    data = json_body(rq.DatabasePassword, audit=("database.password", "database", f"{instance}/{name}"))
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        password = dbsvc.set_password(s, svc.box, actor(), db, data.get("password"))
        uri, _ = dbsvc.uris(db)
        return {"database": db.name, "instance": instance, "role": db.role_name, "password": password, "uri": uri}


@bp.delete("/instances/<instance>/databases/<name>")
@auth_required()
def delete_database(instance, name):
    """Ends its sessions and drops it with its role. By default a job takes a final dump first (kept for the grace
    period) and then drops it: 202 with the job. ?final_dump=false drops it at once: 204."""
    audited("database.delete", "database", f"{instance}/{name}")
    svc = services()
    with svc.store.session() as s:
        if flag("final_dump", True):
            return _started(dumps.start_delete(s, actor(), instance, name))
        db = dbsvc.get(s, actor(), instance, name)
        dbsvc.drop(s, svc.box, actor(), db)
    return "", 204


@bp.post("/instances/<instance>/databases/<name>/dump")
@auth_required()
def dump_database(instance, name):
    """Start a dump for download: 202 with the job; GET /jobs/{id}/dump once it succeeded."""
    json_body(audit=("database.dump", "database", f"{instance}/{name}"))
    with services().store.session() as s:
        return _started(dumps.start_dump(s, actor(), instance, name))


@bp.post("/instances/<instance>/databases/<name>/restore")
@auth_required()
def restore_database(instance, name):
    """With a body (a pg_dump custom-format archive, raw or as the multipart field `file`): restore it into the
    existing database (?clean=true drops the archive's objects first). Without one: bring a deleted database back
    from its final dump, with a new password. Either way 202 with the job."""
    audited("database.restore", "database", f"{instance}/{name}")
    svc = services()
    if not has_body():
        with svc.store.session() as s:
            db, password, job = dumps.start_final_restore(s, svc.box, actor(), instance, name,
                                                          limits=svc.capacity_defaults())
            return _started(job, database={**ser.database(db), "password": password})
    clean = flag("clean", False)
    with svc.store.session() as s:
        dumps.check_restore_target(s, actor(), instance, name)  # before a byte of someone else's target is stored
    upload = dumps.new_upload(svc.dump_settings())
    save_body(upload)
    with svc.store.session() as s:
        return _started(dumps.start_restore(s, actor(), instance, name, upload, clean))

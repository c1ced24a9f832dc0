from flask import request, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.pagination import page, paged
from webapp.extensions import services
from webapp.services import access
from webapp.services import databases as dbsvc


@bp.post("/instances/<instance>/databases")
@auth_required()
def create_database(instance):
    data = json_body({"name", "quota_mb", "connection_limit", "parameters"}, {"name"})
    audited("database.create", "database", f"{instance}/{data.get('name')}")
    svc = services()
    with svc.store.session() as s:
        db, password = dbsvc.create(s, svc.box, actor(), instance, data["name"], data.get("quota_mb"),
                                    data.get("connection_limit"), data.get("parameters"))
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
    data = json_body({"quota_mb", "connection_limit", "parameters"})
    audited("database.update", "database", f"{instance}/{name}")
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        dbsvc.update(s, svc.box, actor(), db, quota_mb=data.get("quota_mb", ...),
                     connection_limit=data.get("connection_limit", ...), parameters=data.get("parameters"))
        return ser.database(db, dbsvc.live_stats(svc.box, [db]).get(db.id))


@bp.post("/instances/<instance>/databases/<name>/password")
@auth_required()
def reset_database_password(instance, name):
    data = json_body({"password"})
    audited("database.password", "database", f"{instance}/{name}")
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        password = dbsvc.set_password(s, svc.box, actor(), db, data.get("password"))
        uri, _ = dbsvc.uris(db)
        return {"database": db.name, "instance": instance, "role": db.role_name, "password": password, "uri": uri}


@bp.delete("/instances/<instance>/databases/<name>")
@auth_required()
def delete_database(instance, name):
    """Ends its sessions and drops it with its role; a final dump is kept for the grace period unless
    ?final_dump=false."""
    audited("database.delete", "database", f"{instance}/{name}")
    keep = request.args.get("final_dump", "true").lower() not in ("0", "false", "no")
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        if keep:
            dbsvc.final_dump(s, svc.box, svc.dump_settings(), db)
        dbsvc.drop(s, svc.box, actor(), db)
    return "", 204


@bp.post("/instances/<instance>/databases/<name>/restore")
@auth_required()
def restore_database(instance, name):
    json_body(set())
    audited("database.restore", "database", f"{instance}/{name}")
    svc = services()
    with svc.store.session() as s:
        db, password = dbsvc.restore(s, svc.box, svc.dump_settings(), actor(), instance, name)
        body = {"database": {**ser.database(db), "password": password}}
    return body, 201, {"Location": url_for("api.get_database", instance=instance, name=db.name)}

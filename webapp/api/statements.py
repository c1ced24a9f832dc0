"""Query insights (services/statements.py): a database's top statements for its owner and admins, an instance's
for admins."""
from flask import request

from webapp.api import actor, auth_required, bp, json_body
from webapp.extensions import services
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import statements


@bp.get("/instances/<instance>/databases/<name>/statements")
@auth_required()
def database_statements(instance, name):
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)  # 404 for a database the caller may not see
        out = statements.top(s, svc.box, db.instance, db.name, request.args.get("limit"), request.args.get("order"))
        return {"instance": instance, "database": db.name, **out}


@bp.post("/instances/<instance>/databases/<name>/statements/reset")
@auth_required()
def reset_database_statements(instance, name):
    json_body(audit=("database.statements_reset", "database", f"{instance}/{name}"))
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)
        return {"instance": instance, **statements.reset(s, svc.box, actor(), db.instance, db.name)}


@bp.get("/instances/<name>/statements")
@auth_required(admin=True)
def instance_statements(name):
    svc = services()
    with svc.store.session() as s:
        database = request.args.get("database") or None  # narrowed to one database, the admin's own or a tenant's
        out = statements.top(s, svc.box, isvc.get(s, name), database, request.args.get("limit"),
                             request.args.get("order"))
        return {"instance": name, "database": database, **out}

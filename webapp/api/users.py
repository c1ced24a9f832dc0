from flask import g, request, url_for

from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api import serializers as ser
from webapp.api.pagination import page, paged
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import Forbidden, accounts, audit, capacity
from webapp.services import databases as dbsvc


@bp.get("/users")
@auth_required(admin=True)
def list_users():
    pg = page()
    limits = services().capacity_defaults()
    with services().store.session() as s:
        return paged("users", accounts.list_users(s, pg.fetch, pg.offset), pg, lambda u: ser.user(u, limits))


@bp.post("/users")
@auth_required(admin=True, operation=("user.create", "user", "username"))
def create_user():
    data = json_body(rq.UserCreate, audit=("user.create", "user", lambda d: str(d.get("username"))))
    is_admin = data.get("is_admin", False)
    with services().store.session() as s:
        user, _ = accounts.create_user(s, data["username"], data["password"], is_admin=is_admin, actor=actor())
        return ({"user": ser.user(user, services().capacity_defaults())}, 201,
                {"Location": url_for("api.get_user", username=user.username)})


def _with_capacity(s, user) -> dict:
    """The user with their allowance, what their databases take of it and use (measured now), and what is left."""
    svc = services()
    live = lambda dbs: dbsvc.live_stats(svc.box, [d for d in dbs if d.instance.status == "available"])  # noqa: E731
    limits = svc.capacity_defaults()
    return {"user": ser.user(user, limits, capacity.capacity(s, user, limits, live_stats=live))}


@bp.get("/users/<username>")
@auth_required()
def get_user(username):
    """Admins: any user; others: themselves."""
    if not g.is_admin and username != g.username:
        audited("get_user", "user", username)
        raise Forbidden("this needs an administrator (GET /api/v1/me shows your own account)")
    with services().store.session() as s:
        return _with_capacity(s, accounts.get_user(s, username))


@bp.patch("/users/<username>")
@auth_required(admin=True, operation=("user.allowance", "user", "username"))
def update_user(username):
    """Set a user's capacity allowance: storage_allowance_mb (total quota over their databases) and max_databases;
    null puts one back to the configured default."""
    data = json_body(rq.AllowanceChange, audit=("user.allowance", "user", username))
    with services().store.session() as s:
        user = accounts.get_user(s, username)
        capacity.set_allowance(s, actor(), user, **data)
        s.flush()
        return _with_capacity(s, user)


@bp.get("/me")
@auth_required()
def get_me():
    """Your own account, with your capacity allowance, what your databases take of it and use, and what is left."""
    with services().store.session() as s:
        return _with_capacity(s, s.get(accounts.User, g.user_id))


@bp.delete("/users/<username>")
@auth_required(admin=True, operation=("user.delete", "user", "username"))
def delete_user(username):
    audited("user.delete", "user", username)
    transfer_to = request.args.get("transfer_to") or None
    drop = request.args.get("delete_databases", "false").lower() in ("1", "true", "yes")
    svc = services()
    with svc.store.session() as s:
        dropper = (lambda db: dbsvc.drop(s, svc.box, actor(), db)) if drop else None
        accounts.delete_user(s, actor(), username, transfer_to=transfer_to, drop_databases=dropper)
    return "", 204


@bp.post("/me/password")
@auth_required()
def change_my_password():
    data = json_body(rq.PasswordChange, audit=("user.password", "user", g.username))
    with services().store.session() as s:
        user = accounts.authenticate(s, g.username, data["current_password"])
        accounts.set_password(s, user, data["new_password"], actor())
    return "", 204


@bp.get("/tokens")
@auth_required()
def list_tokens():
    pg = page()
    with services().store.session() as s:
        user = s.get(accounts.User, g.user_id)
        return paged("tokens", accounts.list_tokens(s, user, pg.fetch, pg.offset), pg, ser.token)


@bp.delete("/tokens/<token_id>")
@auth_required(operation=("token.revoke", "token", "token_id"))
def revoke_token(token_id):
    with services().store.session() as s:
        accounts.revoke_token(s, actor(), token_id)
    return "", 204


@bp.get("/admin/audit")
@auth_required(admin=True)
def audit_log():
    pg = page()
    with services().store.session() as s:
        events = audit.list_events(s, pg.fetch, request.args.get("actor") or None, request.args.get("object") or None,
                                   offset=pg.offset)
        return paged("events", events, pg, ser.audit_event)

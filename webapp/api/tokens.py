from flask import request, url_for

from webapp.api import bp, json_body
from webapp.api import serializers as ser
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import Unauthorized, accounts, audit


@bp.post("/tokens")
def create_token():
    """Rate limited per client address and per username (webapp/front_door.py); a refused password is audited."""
    data = json_body(rq.TokenCreate)
    svc = services()
    try:
        with svc.store.session() as s:
            user = accounts.authenticate(s, data["username"], data["password"])
            who = audit.Actor(user.username, user.is_admin, user.id, request.remote_addr or "")
            tok, raw = accounts.issue_token(s, user, data.get("name") or "api", actor=who,
                                            scope=data.get("scope", "write"), days=data.get("expires_in_days"),
                                            default_days=int(svc.config["TOKEN_DAYS"]))
            body = {"token": raw, **ser.token(tok), "username": user.username, "is_admin": user.is_admin}
    except Unauthorized as exc:
        audit.failed_login(svc.store, data["username"], request.remote_addr or "", "api", exc.message)
        raise
    return body, 201, {"Location": url_for("api.list_tokens")}

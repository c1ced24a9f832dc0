from flask import url_for

from webapp.api import bp, json_body
from webapp.extensions import services
from webapp.services import accounts


@bp.post("/tokens")
def create_token():
    data = json_body({"username", "password", "name"}, {"username", "password"})
    with services().store.session() as s:
        user = accounts.authenticate(s, data["username"], data["password"])
        tok, raw = accounts.issue_token(s, user, data.get("name") or "api")
        body = {"token": raw, "id": tok.id, "username": user.username, "is_admin": user.is_admin}
    return body, 201, {"Location": url_for("api.create_token")}

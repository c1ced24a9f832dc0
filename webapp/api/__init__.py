"""JSON API v1: token auth, CSRF-exempt, one error helper."""
from __future__ import annotations

from functools import wraps

import psycopg

from flask import Blueprint, g, request
from flask_limiter.errors import RateLimitExceeded

from webapp import front_door
from webapp.api.errors import BadRequest, error_response, from_service_error
from webapp.extensions import services
from webapp.schemas import requests, validation
from webapp.services import Forbidden, Invalid, ServiceError, Unauthorized
from webapp.services import accounts, audit
from webapp.urls import API_PREFIX

bp = Blueprint("api", __name__, url_prefix=API_PREFIX)
READ_METHODS = ("GET", "HEAD", "OPTIONS")  # all a token of scope read may do


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(exc: RateLimitExceeded):
    seconds = front_door.retry_after()
    resp = error_response(429, "too_many_requests", f"{exc.description}; try again in {seconds} s",
                          retry_after=seconds)
    resp.headers["Retry-After"] = str(seconds)
    return resp


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    _audit_failure("denied" if isinstance(exc, (Forbidden, Unauthorized)) else "failed", exc.message)
    if isinstance(exc, BadRequest):
        return error_response(400, exc.code, exc.message, **exc.details)
    return from_service_error(exc)


@bp.errorhandler(psycopg.Error)
def _database_error(exc: psycopg.Error):
    message = (exc.diag.message_primary if getattr(exc, "diag", None) else None) or str(exc).splitlines()[0]
    _audit_failure("failed", message)
    return error_response(503, "instance_error", f"the instance answered with an error: {message}")


def actor() -> audit.Actor:
    return audit.Actor(g.username, g.is_admin, g.user_id, request.remote_addr or "")


def audited(action: str, object_type: str, object_name: str) -> None:
    """Name what this request does, so that a failure is written to the audit log too."""
    g.audit = (action, object_type, object_name)


def _audit_failure(outcome: str, message: str) -> None:
    if getattr(g, "audit", None) and getattr(g, "username", None):
        action, object_type, object_name = g.audit
        audit.record_separately(services().store, actor(), action, object_type, object_name, outcome, message)


def json_body(model: type[requests.Body] = requests.Empty, audit: tuple | None = None) -> dict:
    """The request's JSON body checked against its model (webapp.schemas.requests): unknown or missing fields are
    a 400, a bad value a 422 naming the field. Answers the fields as given. audit: (action, object type, object
    name or a function of the body) for audited(), named once the body has its shape, so a bad value is audited
    as a failure (as the service's own refusals are)."""
    data = request.get_json(silent=True)
    if data is None and not request.get_data():
        data = {}

    def name_it(body: dict) -> None:
        if audit is not None:
            action, object_type, name = audit
            audited(action, object_type, name(body) if callable(name) else name)

    try:
        return validation.parse(model, data, name_it)
    except validation.Problem as p:
        if p.malformed:
            raise BadRequest(p.message) from None
        raise Invalid(p.message, **({"field": p.field} if p.field else {})) from None


def _refused(operation: tuple | None) -> None:
    """Name a request refused for who asks: the operation it asked for, (action, object type, key), its object
    the path argument or the JSON body's field named key, as the website names the same refusal; else the
    endpoint and the request's method and path."""
    if operation is None:
        audited(request.endpoint.rpartition(".")[2], "endpoint", f"{request.method} {request.path}")
        return
    action, object_type, key = operation
    value = (request.view_args or {}).get(key)
    if value is None:
        body = request.get_json(silent=True)
        value = body.get(key) if isinstance(body, dict) else None
    audited(action, object_type, "" if value is None else str(value))


def auth_required(admin: bool = False, operation: tuple | None = None):
    """A valid token, of an administrator when admin, of scope write for a change. operation: (audit action,
    object type, key) of what the view does, so that a refusal is audited as that action (see _refused)."""
    def deco(fn):
        @wraps(fn)
        def inner(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, raw = header.partition(" ")
            if scheme.lower() != "bearer" or not raw.strip():
                raise Unauthorized("an API token is required: Authorization: Bearer <token> (POST /api/v1/tokens)")
            try:
                with services().store.session() as s:
                    tok = accounts.token_in_use(s, raw.strip())
                    g.user_id, g.username, g.is_admin = tok.user.id, tok.user.username, tok.user.is_admin
                    g.token_scope = tok.scope
            except Unauthorized as exc:
                raise Unauthorized(f"{exc.message}; get a new one: POST /api/v1/tokens") from None
            if admin and not g.is_admin:
                _refused(operation)
                raise Forbidden("this needs an administrator")
            if g.token_scope != "write" and request.method not in READ_METHODS:
                _refused(operation)
                raise Forbidden(f"this token's scope is {g.token_scope}: it may only read (GET); changes need a "
                                "token with scope write")
            return fn(*args, **kwargs)

        return inner

    return deco


from webapp.api import databases, failover, instances, jobs, metrics, openapi, reports, tokens, users  # noqa: E402,F401
from webapp.api import hosts  # noqa: E402,F401
from webapp.api import adoption  # noqa: E402,F401
from webapp.api import backups  # noqa: E402,F401
from webapp.api import statements  # noqa: E402,F401

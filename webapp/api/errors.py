"""One error shape for the API: {"error": {"code": "...", "message": "..."}}."""
from __future__ import annotations

from flask import jsonify, request

from webapp.services import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized

STATUS = {Invalid: 422, NotFound: 404, Conflict: 409, Forbidden: 403, Unauthorized: 401}


def error_response(status: int, code: str, message: str, **details):
    body = {"error": {"code": code, "message": message, **({"details": details} if details else {})}}
    resp = jsonify(body)
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="pgaas"'
    return resp


def from_service_error(exc: ServiceError):
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    return error_response(status, exc.code, exc.message, **exc.details)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


class BadRequest(ServiceError):
    code = "bad_request"

"""Error handlers: JSON for API clients, a short page for browsers. Never a traceback."""
from __future__ import annotations

import logging

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from webapp.api.errors import error_response, from_service_error, wants_json
from webapp.services import ServiceError

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            code = (exc.name or "error").lower().replace(" ", "_")
            return error_response(exc.code or 500, code, exc.description or exc.name)
        return f"<h1>{exc.code} {exc.name}</h1><p>{exc.description}</p>", exc.code

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):  # raised outside the API blueprint (e.g. /metrics)
        return from_service_error(exc)

    @app.errorhandler(Exception)
    def unhandled(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return error_response(500, "internal_error", "internal error; the server log has the details")
        return "<h1>500 Internal Server Error</h1>", 500

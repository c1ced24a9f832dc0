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
        return _page(exc.code or 500, exc.name, exc.description)

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):  # raised outside the API blueprint (e.g. /metrics)
        return from_service_error(exc)

    @app.errorhandler(Exception)
    def unhandled(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return error_response(500, "internal_error", "internal error; the server log has the details")
        return _page(500, "Internal Server Error", "Something went wrong on our side; the server log has the details.")


def _page(code: int, name: str, description: str | None):
    """The error page in the site's look; a bare page if even that cannot be drawn."""
    from flask import render_template
    from markupsafe import escape

    if code == 400 and "CSRF" in (description or ""):
        description = "The form had expired or was not sent from this site. Reload the page and try again."
    try:
        return render_template("ui/error.html", code=code, name=name, description=description), code
    except Exception:  # noqa: BLE001
        log.exception("the error page could not be rendered")
        return f"<h1>{code} {escape(name)}</h1><p>{escape(description or '')}</p>", code

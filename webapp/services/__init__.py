"""Domain services: they take a SQLAlchemy session and plain values, return plain results, and raise
ServiceError subclasses. Nothing here knows about HTTP or Flask."""
from __future__ import annotations

import re

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")


class ServiceError(Exception):
    code = "error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(ServiceError):
    code = "invalid"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class Forbidden(ServiceError):
    code = "forbidden"


class Unauthorized(ServiceError):
    code = "unauthorized"


def check_name(name, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise Invalid(
            f"{what} must be 3 to 40 characters: a lowercase letter, then lowercase letters, digits or hyphens",
            field=what,
        )
    if name.endswith("-"):
        raise Invalid(f"{what} must not end with a hyphen", field=what)
    return name

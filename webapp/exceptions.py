"""The domain's error types, below every layer that raises them: services (webapp.services re-exports them, the
usual place to import them from) and the host registry (webapp/hostregistry.py), which the ssh provider reads.
Each carries a message and details; the API maps `code` to an HTTP status (api/errors.py)."""
from __future__ import annotations


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

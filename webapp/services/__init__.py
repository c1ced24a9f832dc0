"""Domain services: they take a SQLAlchemy session and plain values, return plain results, and raise
ServiceError subclasses. Nothing here knows about HTTP or Flask."""
from __future__ import annotations

from webapp.schemas.limits import db_name_problem, instance_name_problem


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
    if problem := instance_name_problem(name, what):
        raise Invalid(problem, field=what)
    return name


# Database and role names (tenant databases, an instance's admin database): checked before any SQL runs.
RESERVED_NAMES = {"postgres", "template0", "template1", "dbadmin", "replicator", "pgaas", "public"}
# PostgreSQL's reserved key words (pg_get_keywords() catcode R).
SQL_RESERVED = set("""all analyse analyze and any array as asc asymmetric both case cast check collate column
constraint create current_catalog current_date current_role current_time current_timestamp current_user default
deferrable desc distinct do else end except false fetch for foreign from grant group having in initially intersect
into lateral leading limit localtime localtimestamp not null offset on only or order placing primary references
returning select session_user some symmetric system_user table then to trailing true union unique user using
variadic when where window with authorization binary collation concurrently cross current_schema freeze full ilike
inner is isnull join left like natural notnull outer overlaps right similar tablesample verbose""".split())


def check_db_name(name, field: str = "name") -> str:
    if problem := db_name_problem(name, field):
        raise Invalid(problem, field=field)
    if name.startswith("pg_") or name in RESERVED_NAMES or name in SQL_RESERVED:
        raise Invalid(f"{field} {name!r} is reserved", field=field)
    return name

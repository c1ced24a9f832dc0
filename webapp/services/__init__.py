"""Domain services: they take a SQLAlchemy session and plain values, return plain results, and raise
ServiceError subclasses. Nothing here knows about HTTP or Flask."""
from __future__ import annotations

import math

# The error types live below the services (the host registry raises them too); import them from here.
from webapp.exceptions import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unauthorized  # noqa: F401
from webapp.schemas.limits import db_name_problem, instance_name_problem


MAX_ROW_ID = 2**63 - 1  # the largest id SQLite and PostgreSQL (bigint) hold: a larger one names no row


def row_id(value) -> int | None:
    """An id from a request (path or query) as a row's id, or None when it cannot be one."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= MAX_ROW_ID else None


def check_name(name, what: str = "name") -> str:
    if problem := instance_name_problem(name, what):
        raise Invalid(problem, field=what)
    return name


def check_int(value, name, lo, hi, default=None):
    """An integer from lo to hi, or default when None."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer", field=name)
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
    return value


def check_number(value, name, lo, hi):
    """A finite number from lo to hi, as a float, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{name} must be a number", field=name)
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", field=name)
    return float(value)


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

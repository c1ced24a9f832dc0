"""Every size limit and name rule of a request, written once. The models (requests.py), the services' own checks,
the website's forms and the OpenAPI document take them from here; roles/ states the same numbers in its argument
specs (docs/architecture.md)."""
from __future__ import annotations

import re

CPUS_MIN, CPUS_MAX = 0.1, 256                # per member
MEMORY_MB_MIN, MEMORY_MB_MAX = 256, 1048576  # per member
STORAGE_GB_MIN, STORAGE_GB_MAX = 1, 65536    # per member's data volume
REPLICAS_MIN, REPLICAS_MAX, REPLICAS_DEFAULT = 1, 3, 1
ADMIN_PASSWORD_MIN, ADMIN_PASSWORD_MAX = 12, 128
ADMIN_DATABASE_DEFAULT = "app"
SYNCHRONOUS_DEFAULT = False
USER_PASSWORD_MIN = 8
TOKEN_DAYS_MIN, TOKEN_DAYS_MAX = 1, 365
TOKEN_SCOPES = ("read", "write")  # read: it may only read; write: all its user may do
STORAGE_ALLOWANCE_MB_MAX = 1024 ** 3  # 1 PiB
MAX_DATABASES_MAX = 100_000
QUOTA_MB_MIN, QUOTA_MB_MAX = 1, 16 * 1024 * 1024  # a tenant database's quota
CONNECTION_LIMIT_MIN, CONNECTION_LIMIT_MAX = 1, 10000
DB_PASSWORD_MIN, DB_PASSWORD_MAX = 12, 128
HOST_CAPACITY_MIN, HOST_CAPACITY_MAX, HOST_CAPACITY_DEFAULT = 1, 256, 4
SSH_PORT_MIN, SSH_PORT_MAX, SSH_PORT_DEFAULT = 1, 65535, 22

# An instance's name: 3 to 40 characters, a lowercase letter first, no hyphen last.
INSTANCE_NAME_MIN, INSTANCE_NAME_MAX = 3, 40
INSTANCE_NAME_PATTERN = rf"^[a-z][a-z0-9-]{{{INSTANCE_NAME_MIN - 2},{INSTANCE_NAME_MAX - 2}}}[a-z0-9]$"
# the shape, checked before the last character (for the clearer message)
INSTANCE_NAME_RE = re.compile(rf"^[a-z][a-z0-9-]{{{INSTANCE_NAME_MIN - 1},{INSTANCE_NAME_MAX - 1}}}$")
# Database and role names (tenant databases, an instance's admin database).
DB_NAME_MAX = 63
DB_NAME_PATTERN = rf"^[a-z][a-z0-9_]{{0,{DB_NAME_MAX - 1}}}$"
DB_NAME_RE = re.compile(DB_NAME_PATTERN)
USERNAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,62}$"
HOST_NAME_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$"


def instance_name_problem(name, what: str = "name") -> str | None:
    """Why name is not an instance name (None: it is one)."""
    if not isinstance(name, str) or not INSTANCE_NAME_RE.match(name):
        return (f"{what} must be {INSTANCE_NAME_MIN} to {INSTANCE_NAME_MAX} characters: a lowercase letter, then "
                "lowercase letters, digits or hyphens")
    if name.endswith("-"):
        return f"{what} must not end with a hyphen"
    return None


def db_name_problem(name, what: str = "name") -> str | None:
    """Why name does not have a database name's shape (None: it has; reserved names are the services' check)."""
    if not isinstance(name, str) or not DB_NAME_RE.match(name):
        return (f"{what} must be 1 to {DB_NAME_MAX} characters: a lowercase letter, then lowercase letters, digits "
                "or underscores")
    return None

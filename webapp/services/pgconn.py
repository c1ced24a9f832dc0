"""Direct psycopg connections to an instance's primary, as the control plane's superuser (in-database work that
needs no playbook). The multi-host target finds the primary wherever Patroni put it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

import psycopg

from webapp.services import Conflict, certificates
from webapp.services.crypto import SecretBox
from webapp.store.models import Instance


def conninfo(inst: Instance, dbname: str = "postgres") -> dict:
    return {
        "host": ",".join(m.address for m in inst.members),
        "port": ",".join(str(m.pg_port) for m in inst.members),
        "dbname": dbname,
        "target_session_attrs": "read-write",
        "connect_timeout": 5,
        "application_name": "pgaas-control-plane",
        **certificates.libpq_params(inst),
    }


def connect_primary(inst: Instance, box: SecretBox, dbname: str = "postgres") -> psycopg.Connection:
    if inst.status != "available":
        raise Conflict(f"instance {inst.name!r} is {inst.status}, not available")
    secrets = box.open(inst.secrets_enc)
    try:
        conn = psycopg.connect(user="postgres", password=secrets["pgaas_superuser_password"], autocommit=True,
                               **conninfo(inst, dbname))
    except psycopg.OperationalError as exc:
        raise Conflict(f"instance {inst.name!r} has no reachable primary right now: "
                       f"{str(exc).splitlines()[0] if str(exc) else exc}") from None
    conn.execute("SET statement_timeout = '30s'; SET lock_timeout = '5s'")
    return conn


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier, computed here so the plain password never reaches the server (or its
    logs): the server stores exactly what it would have computed itself."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"

"""Write a throwaway instance's inputs for a molecule scenario, as the control plane makes them: the members (free
host ports on 127.0.0.1) to <dir>/instance.json, the passwords and TLS material (webapp/services/certificates.py)
to <dir>/secrets.json (0600). Kept when they exist, so that a rerun (idempotence) sees the same inputs.

usage: python instance_files.py NAME MEMBERS DIR   (run from the repository root)
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

from webapp.services import certificates


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def main(name: str, count: int, out: Path) -> None:
    if (out / "instance.json").exists() and (out / "secrets.json").exists():
        return
    ports = free_ports(2 * count)
    members = [{"name": f"pgaas-{name}-{i}", "host": "localhost", "pg_port": ports[2 * i],
                "api_port": ports[2 * i + 1]} for i in range(count)]
    tls = certificates.issue_all(SimpleNamespace(name=name, meta={}, members=[
        SimpleNamespace(name=m["name"], address="127.0.0.1") for m in members]), None)
    values = {f"pgaas_{key}_password": secrets.token_urlsafe(18)
              for key in ("superuser", "replication", "admin", "restapi")}
    values |= {"pgaas_tls_ca_cert": tls["ca_cert"], "pgaas_tls_certs": tls["certs"]}
    fd = os.open(out / "secrets.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    (out / "instance.json").write_text(json.dumps({"members": members, "client": tls["client"]}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))

"""Helpers for the end-to-end tests: podman leftovers, secrets, connections, instance creation."""
from __future__ import annotations

import os
import subprocess

import psycopg

from tests.conftest import REPO

# The shared instance of the end-to-end session. Container names are global on a machine: give concurrent runs of
# the suite (several engineers on one host) names of their own with PGAAS_E2E_INSTANCE.
INST = os.environ.get("PGAAS_E2E_INSTANCE", "e2e-async")

PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "etc" / "containers.conf")}


def podman(*args) -> str:
    return subprocess.run(["podman", *args], check=True, capture_output=True, text=True, env=PODMAN_ENV).stdout


def leftovers(name: str) -> dict:
    label = f"label=pgaas.instance={name}"
    return {
        "containers": podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").split(),
        "volumes": podman("volume", "ls", "--filter", label, "--format", "{{.Name}}").split(),
        "networks": [n for n in podman("network", "ls", "--format", "{{.Name}}").split() if n == f"pgaas-{name}"],
    }


def remove_leftovers(name: str) -> None:
    """Remove an earlier run's containers, volumes and network of instance `name` on this machine."""
    left = leftovers(name)
    for kind, rm in (("containers", ["rm", "-f", "-t", "0"]), ("volumes", ["volume", "rm", "-f"]),
                     ("networks", ["network", "rm", "-f"])):
        if left[kind]:
            podman(*rm, *left[kind])


def secrets_of(live, name) -> dict:
    from webapp.services import instances as isvc

    svc = live.app.extensions["pgaas"]
    with svc.store.session() as s:
        return svc.box.open(isvc.get(s, name).secrets_enc)


def patroni_tls(live, name):
    """The control plane's TLS client context for the instance's Patroni REST API and etcd (its client
    certificate, the instance's CA)."""
    from webapp.services import certificates
    from webapp.services import instances as isvc

    svc = live.app.extensions["pgaas"]
    with svc.store.session() as s:
        return certificates.ClientTLS(svc.box).context(isvc.get(s, name))


def connect(host_port: tuple[str, int], user: str, password: str, dbname="postgres", **kw):
    return psycopg.connect(host=host_port[0], port=host_port[1], user=user, password=password, dbname=dbname,
                           connect_timeout=5, **kw)


def create(live, name, **body) -> tuple[dict, dict]:
    r = live.admin.post("/api/v1/instances", json={"name": name, **body})
    assert r.status_code == 202, r.text
    created = r.json()
    job = live.admin.wait_job(created["job"]["id"], timeout=240)
    return created, job


def tenant_with_database(live, username: str, database: str, instance: str = INST):
    """A user (made unless it exists) and a new database of theirs on the instance: (their Api, the database)."""
    r = live.admin.post("/api/v1/users", json={"username": username, "password": f"{username}-password-1"})
    assert r.status_code in (201, 409), r.text
    api = live.anon.as_user(username, f"{username}-password-1")
    r = api.post(f"/api/v1/instances/{instance}/databases", json={"name": database})
    assert r.status_code == 201, r.text
    return api, r.json()["database"]

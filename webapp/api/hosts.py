"""SSH hosts (admins): register, list with what runs on them and their free capacity, show, re-pin the host key,
remove. A stored private key is write-only: no answer ever carries it."""
from __future__ import annotations

from flask import url_for
from webapp.api import actor, audited, auth_required, bp, json_body
from webapp.api.pagination import page, paged
from webapp.extensions import services
from webapp.schemas import requests as rq
from webapp.services import hosts as hostsvc


def host_view(h: hostsvc.HostSpec, use: dict | None = None) -> dict:
    body = {"name": h.name, "address": h.address, "ssh_user": h.ssh_user, "ssh_port": h.ssh_port,
            "key": {"type": h.key_kind, **({"path": h.key_path} if h.key_kind == "path" else {})},
            "host_keys": hostsvc.fingerprints(services().config, h),
            "labels": h.labels, "capacity": h.capacity, "source": h.source}
    if use is not None:
        body.update(used=use["used"], free=use["free"], instances=use["instances"], etcd_only=use["etcd_only"])
    return body


@bp.post("/hosts")
@auth_required(admin=True, operation=("host.create", "host", "name"))
def create_host():
    data = json_body(rq.HostCreate, audit=("host.create", "host", lambda d: str(d.get("name"))))
    svc = services()
    with svc.store.session() as s:
        h = hostsvc.register(s, svc.box, svc.config, data, actor())
        return host_view(h), 201, {"Location": url_for("api.get_host", name=h.name)}


@bp.get("/hosts")
@auth_required(admin=True)
def list_hosts():
    pg = page()
    svc = services()
    with svc.store.session() as s:
        return paged("hosts", pg.slice(hostsvc.usage(s, svc.config)), pg, lambda u: host_view(u["host"], u),
                     provider=svc.config["PROVIDER"])


@bp.get("/hosts/<name>")
@auth_required(admin=True)
def get_host(name):
    svc = services()
    with svc.store.session() as s:
        hostsvc.get(s, svc.config, name)
        use = next(u for u in hostsvc.usage(s, svc.config) if u["host"].name == name)
        return host_view(use["host"], use)


@bp.delete("/hosts/<name>")
@auth_required(admin=True, operation=("host.delete", "host", "name"))
def delete_host(name):
    audited("host.delete", "host", name)
    svc = services()
    with svc.store.session() as s:
        hostsvc.delete(s, svc.config, name, actor())
    return "", 204


@bp.put("/hosts/<name>/host_key")
@auth_required(admin=True, operation=("host.host_key", "host", "name"))
def put_host_key(name):
    data = json_body(rq.HostKey, audit=("host.host_key", "host", name))
    svc = services()
    with svc.store.session() as s:
        h = hostsvc.set_host_key(s, svc.config, name, data["host_key"], actor())
        return host_view(h)

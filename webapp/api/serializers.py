"""One function per resource shape. The URLs in them are built here, not with url_for, so that they need no
request (the CLI prints these shapes too); in a request they start at its script root, as url_for's would."""
from __future__ import annotations

from urllib.parse import quote

from flask import has_request_context, request

from webapp.urls import API_PREFIX
from webapp.services import access, capacity, certificates
from webapp.services import instances as isvc
from webapp.store.models import Instance, Job, JobEvent, utcnow


def _ts(dt):
    return dt.isoformat() if dt else None


def _url(*segments) -> str:
    """The API path of a resource, e.g. _url("instances", name, "ca.crt"): what url_for gives for its route
    (each segment quoted as werkzeug's default converter does)."""
    root = request.script_root if has_request_context() else ""
    return root + API_PREFIX + "".join("/" + quote(str(seg), safe="!$&'()*+,/:;=@") for seg in segments)


def job_url(job_id: int) -> str:
    return _url("jobs", job_id)


def instance_url(name: str) -> str:
    return _url("instances", name)


def ca_cert_url(name: str) -> str:
    return _url("instances", name, "ca.crt")


def member_state(ms) -> dict:
    return {"name": ms.name, "host": ms.host, "address": ms.address, "port": ms.port, "container": ms.container,
            "state": ms.state, "timeline": ms.timeline, "pending_restart": ms.pending_restart}


def instance_summary(inst: Instance, st) -> dict:
    """What a user who is not an admin sees of an instance open to them: never its members, hosts, addresses,
    ports, containers, job errors, settings or metadata."""
    return {"name": inst.name, "status": isvc.effective_status(inst, st),
            "version": _server_version(inst), "url": instance_url(inst.name),
            "ca_cert_url": ca_cert_url(inst.name) if certificates.ca_cert(inst) else None}


def tls(inst: Instance) -> dict | None:
    """What an admin sees of the instance's certificates (never a key): when they end, the CA's fingerprint,
    whether the members serve them yet, and where to download the CA certificate."""
    t = (inst.meta or {}).get("tls")
    if not t:
        return None
    return {"active": bool(t.get("active")), "not_after": t.get("not_after"), "issued_at": t.get("issued_at"),
            "ca_not_after": t.get("ca_not_after"), "ca_fingerprint_sha256": t.get("ca_fingerprint_sha256"),
            "renewing": "next" in t, "ca_cert_url": ca_cert_url(inst.name),
            "sslrootcert": certificates.ca_filename(inst)}


def _server_version(inst: Instance) -> str | None:
    return ((inst.meta or {}).get("deploy") or {}).get("server_version")


def instance(inst: Instance, st, *, admin: bool, active_job: Job | None = None,
             state_age: float | None = None) -> dict:
    """st: Patroni's view (services/livestate.py) and state_age how old it is in seconds (None: not asked)."""
    if not admin:
        return instance_summary(inst, st)
    uri, ro_uri = isvc.uris(inst)
    if st is not None and st.reachable:
        primary = member_state(st.primary) if st.primary else None
        replicas = [{**member_state(r), "lag_bytes": r.lag_bytes, "sync_state": r.sync_state} for r in st.replicas]
    else:
        state = "unknown" if inst.status == "available" else inst.status
        ms = [{"name": m.name, "host": m.host, "address": m.address, "port": m.pg_port, "container": m.name,
               "state": state, "timeline": None, "pending_restart": False} for m in inst.members]
        primary = ms[0] if ms else None
        replicas = [{**m, "lag_bytes": None, "sync_state": None} for m in ms[1:]]
    body = {
        "name": inst.name,
        "status": isvc.effective_status(inst, st),
        "status_reason": inst.status_reason or (st.problem if st is not None and not st.healthy else ""),
        "provider": inst.provider,
        "synchronous": inst.synchronous,
        "replicas_wanted": inst.replicas,
        "storage_gb": inst.storage_gb,
        "cpus": inst.cpus,
        "memory_mb": inst.memory_mb,
        "primary": primary,
        "replicas": replicas,
        "state_age_seconds": round(state_age, 1) if st is not None and state_age is not None else None,
        "same_host": isvc.same_host(inst),
        "placement_note": ("primary and standby share one host: a host failure loses both"
                           if isvc.same_host(inst) else "members on different hosts"),
        "admin_user": inst.admin_user,
        "admin_database": inst.admin_database,
        "uri": uri,
        "readonly_uri": ro_uri,
        "created_at": _ts(inst.created_at),
        "updated_at": _ts(inst.updated_at),
        "url": instance_url(inst.name),
        "active_job": job_ref(active_job) if active_job else None,
        "settings": {k: v.get("value") for k, v in sorted(((inst.meta or {}).get("settings") or {}).items())},
        "pending_restart": any(m["pending_restart"] for m in ([primary] if primary else []) + replicas),
        "version": _server_version(inst),
        "access": {"users": access.allowed_usernames(inst)},
        "tls": tls(inst),
        "metadata": inst.meta or {},
    }
    return body


def primary_change(c) -> dict:
    return {"at": _ts(c.at), "from": c.from_member, "to": c.to_member, "cause": c.cause, "timeline": c.timeline,
            "switch_lsn": c.switch_lsn, "lag_bytes": c.lag_bytes, "reason": c.reason,
            "job": job_url(c.job_id) if c.job_id else None, "recorded_at": _ts(c.recorded_at)}


def job_ref(job: Job) -> dict:
    return {"id": job.id, "kind": job.kind, "status": job.status, "url": job_url(job.id)}


def event(ev: JobEvent) -> dict:
    return {"id": ev.id, "time": _ts(ev.created_at), "event": ev.event, "task": ev.task, "host": ev.host,
            "status": ev.status, "duration": ev.duration, "message": ev.message}


def _result(j: Job) -> dict:
    """A job's result; a dump's names its download, never the file's place on the control plane."""
    result = {k: v for k, v in (j.result or {}).items() if k != "file"}
    if j.kind == "database_dump" and j.status == "succeeded" and not result.get("removed"):
        result["download"] = _url("jobs", j.id, "dump")
    return result


def job(j: Job, events: list[JobEvent] | None = None, replay: list[dict] | None = None) -> dict:
    body = {"id": j.id, "kind": j.kind, "status": j.status, "instance": j.instance_name,
            "created_by": j.created_by, "created_at": _ts(j.created_at), "started_at": _ts(j.started_at),
            "finished_at": _ts(j.finished_at), "error": j.error or None, "cancel_requested": j.cancel_requested,
            "result": _result(j), "url": job_url(j.id),
            # past JOB_RETENTION_DAYS a finished job's events (and artifacts) are removed; its row stays
            "events_pruned": j.events_pruned_at is not None, "events_pruned_at": _ts(j.events_pruned_at)}
    if events is not None:
        body["events"] = [event(e) for e in events]
    if replay is not None:
        body["replay"] = replay
    return body


def user(u, limits=None, cap=None) -> dict:
    """limits (capacity.Defaults): with the user's allowance; cap (capacity.Capacity): with what is used and left."""
    body = {"username": u.username, "is_admin": u.is_admin, "created_at": _ts(u.created_at)}
    if limits is not None:
        a = capacity.allowance(u, limits)
        body.update(storage_allowance_mb=a.storage_allowance_mb, max_databases=a.max_databases)
    if cap is not None:
        body["capacity"] = capacity_of(cap)
    return body


def capacity_of(c) -> dict:
    a = c.allowance
    return {"storage_allowance_mb": a.storage_allowance_mb, "storage_allowance_is_default": a.storage_is_default,
            "storage_allocated_mb": c.allocated_mb, "storage_used_bytes": c.used_bytes,
            "storage_left_mb": c.storage_left_mb, "max_databases": a.max_databases,
            "max_databases_is_default": a.databases_is_default, "databases": c.databases,
            "databases_left": c.databases_left, "databases_without_quota": c.unquoted}


def token(t) -> dict:
    from webapp.store.models import aware

    expires = aware(t.expires_at)
    return {"id": t.id, "name": t.name, "prefix": t.prefix, "scope": t.scope, "created_at": _ts(t.created_at),
            "expires_at": _ts(expires), "last_used_at": _ts(t.last_used_at), "revoked": t.revoked_at is not None,
            "expired": expires <= utcnow()}


def database(db, stats: dict | None = None) -> dict:
    from webapp.services import databases as dbsvc

    uri, ro_uri = dbsvc.uris(db)
    body = {"name": db.name, "instance": db.instance.name, "owner": db.owner.username, "role": db.role_name,
            "uri": uri, "readonly_uri": ro_uri, "quota_mb": db.quota_mb, "connection_limit": db.connection_limit,
            "parameters": db.parameters or {}, "status": db.status, "created_at": _ts(db.created_at),
            "url": _url("instances", db.instance.name, "databases", db.name),
            "ca_cert_url": ca_cert_url(db.instance.name)
            if certificates.ca_cert(db.instance) else None}
    if stats is not None:
        body["size_bytes"] = stats["size_bytes"]
        body["connections"] = stats["connections"]
    return body


def audit_event(e) -> dict:
    return {"id": e.id, "at": _ts(e.at), "actor": e.actor, "action": e.action, "object_type": e.object_type,
            "object": e.object_name, "remote_addr": e.remote_addr, "outcome": e.outcome, "detail": e.detail}

"""What the website's areas share: who is acting, the admin guard, a service's error beside its field, the audit of a
refusal, a secret shown once, the lookups that answer 404, an instance's TLS lines and the start of a job from an
instance page's form. Every name here is public; the area modules import nothing private from each other."""
from __future__ import annotations

from functools import wraps

import psycopg
from flask import abort, redirect, request, session, url_for
from flask_login import current_user, login_required

from webapp.extensions import services
from webapp.services import Conflict, Forbidden, Invalid, NotFound, ServiceError
from webapp.services import audit, certificates
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.store.models import utcnow


# -- who acts, and who may ------------------------------------------------------------------------------------
def actor() -> audit.Actor:
    return audit.Actor(current_user.username, current_user.is_admin, current_user.user_id,
                       request.remote_addr or "")


def admin_required(fn=None, *, operation: tuple | None = None):
    """For administrators; anyone else gets 403, audited as denied. operation: (audit action, object type, key)
    of what the view's form does, so that a refused POST is audited as that action (its object the path argument
    or the form field named key), as the API names the same refusal; otherwise the endpoint, method and path."""
    def deco(view):
        @wraps(view)
        @login_required
        def inner(*args, **kwargs):
            if not current_user.is_admin:
                record_failure(*_refused(operation), Forbidden("this needs an administrator"))
                abort(403, "This page is for administrators.")
            return view(*args, **kwargs)

        return inner

    return deco(fn) if fn is not None else deco


def _refused(operation: tuple | None) -> tuple[str, str, str]:
    if operation is None or request.method != "POST":
        return request.endpoint.rpartition(".")[2], "endpoint", f"{request.method} {request.path}"
    action, object_type, key = operation
    value = (request.view_args or {}).get(key)
    return action, object_type, str(value if value is not None else request.form.get(key, ""))


# -- errors on forms, and their audit -------------------------------------------------------------------------
def form_error(form, exc: ServiceError, fields: dict[str, str] | None = None) -> None:
    """Put a service's message beside the field it names (or above the form)."""
    name = (fields or {}).get(exc.details.get("field"), exc.details.get("field"))
    field = getattr(form, name, None) if name else None
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, exc.message]
    else:
        form.form_errors.append(exc.message)


def db_error_message(exc: psycopg.Error) -> str:
    msg = (exc.diag.message_primary if getattr(exc, "diag", None) else None) or str(exc).splitlines()[0]
    return f"the instance answered with an error: {msg}"


def record_failure(action: str, object_type: str, object_name: str, exc: Exception) -> None:
    audit.record_failure(services().store, actor(), action, object_type, object_name, exc)


def refuse(form, action: str, object_type: str, object_name: str, exc: ServiceError | psycopg.Error) -> None:
    """A form's service call was refused: audit it, and put the message on the form (beside the field it names)."""
    record_failure(action, object_type, object_name, exc)
    if isinstance(exc, psycopg.Error):
        form.form_errors.append(db_error_message(exc))
    else:
        form_error(form, exc)


# -- a secret shown on the next page only ---------------------------------------------------------------------
def reveal_once(kind: str, key: str, secret: str, **extra) -> None:
    """Keep a secret for the very next page only, sealed with the control plane's key (the session cookie is
    signed, not encrypted)."""
    session["reveal"] = services().box.seal({"kind": kind, "key": key, "secret": secret, **extra})


def pop_reveal(kind: str, key: str) -> dict | None:
    token = session.pop("reveal", None)
    if not token:
        return None
    try:
        data = services().box.open(token)
    except Exception:  # noqa: BLE001 (a stale or foreign token shows nothing)
        return None
    return data if data.get("kind") == kind and data.get("key") == key else None


# -- lookups that answer 404 ----------------------------------------------------------------------------------
def instance_or_404(s, name: str):
    try:
        return isvc.get(s, name)
    except NotFound:
        abort(404, f"There is no instance {name!r}.")


def database_or_404(s, instance: str, name: str):
    """A tenant database the current user may see."""
    try:
        return dbsvc.get(s, actor(), instance, name)
    except NotFound:
        abort(404, f"There is no database {name!r} on instance {instance!r} that you can see.")


# -- what the instance and database pages share ---------------------------------------------------------------
def tls_view(inst) -> dict | None:
    """The CA certificate to download and when the certificates end (the pages' TLS lines)."""
    t = (inst.meta or {}).get("tls")
    if not t:
        return None
    end = certificates.expiry(inst)
    return {"filename": certificates.ca_filename(inst), "active": bool(t.get("active")),
            "not_after": end.strftime("%Y-%m-%d %H:%M") + " UTC" if end else None,
            "days_left": (end - utcnow()).days if end else None, "renewing": "next" in t,
            "fingerprint": t.get("ca_fingerprint_sha256"),
            "renew_days": float(services().config["TLS_RENEW_DAYS"])}


def start_instance_job(name: str, action: str, start) -> tuple:
    """Start a job on an instance from one of its page's forms: start(s, instance, actor) queues it (and audits
    it). Answers (the redirect to the job's page, None), or (None, the service's error), audited as action."""
    try:
        with services().store.session() as s:
            job_id = start(s, isvc.get(s, name), actor()).id
    except NotFound:
        abort(404, f"There is no instance {name!r}.")
    except (Invalid, Conflict) as exc:
        record_failure(action, "instance", name, exc)
        return None, exc
    except psycopg.Error as exc:
        record_failure(action, "instance", name, exc)
        return None, Conflict(db_error_message(exc))
    return redirect(url_for("ui.job", job_id=job_id)), None

"""The audit log: who did what to which object, when, from where, and how it ended.

Every service call that changes something takes the Actor and records its own success row with record(), in the
caller's session: the row commits with the change or not at all, and the API, the website and the CLI write the
same row for the same operation. A refusal or failure rolls that session back, so the edges record it in a session
of their own with record_failure() (the API's error handler through audited(), the website's and the CLI's
record_failure), under the action name the service uses."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.exceptions import Forbidden, ServiceError, Unauthorized
from webapp.store.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    username: str
    is_admin: bool = False
    user_id: int | None = None
    remote_addr: str = ""


# The control plane's own maintenance (automatic rebuilds, certificate renewals), as the audit log names it.
MAINTENANCE_ACTOR = Actor("pgaas-maintenance", is_admin=True)


def record(s: Session, actor: Actor, action: str, object_type: str, object_name: str, outcome: str = "ok",
           detail: str = "") -> None:
    s.add(AuditEvent(actor=actor.username[:64], action=action[:64], object_type=object_type[:32],
                     object_name=object_name[:255], remote_addr=(actor.remote_addr or "")[:64], outcome=outcome,
                     detail=detail[:2000]))


def record_separately(store, actor: Actor, action: str, object_type: str, object_name: str, outcome: str,
                      detail: str = "") -> None:
    """For failures: the request's own transaction is rolled back, the audit row must still land."""
    with store.session() as s:
        record(s, actor, action, object_type, object_name, outcome, detail)


def record_failure(store, actor: Actor, action: str, object_type: str, object_name: str,
                   exc: Exception) -> None:
    """A refused or failed action, the same way from the API, the website and the CLI: outcome denied for a
    refusal of who asks (unauthorized, forbidden), failed for any other error, with the error's message."""
    outcome = "denied" if isinstance(exc, (Unauthorized, Forbidden)) else "failed"
    message = exc.message if isinstance(exc, ServiceError) else str(exc)
    record_separately(store, actor, action, object_type, object_name, outcome, message)


def failed_login(store, username, remote_addr: str, via: str, reason: str) -> None:
    """A log in (website) or token request (API) that was refused: who it claimed to be, from where."""
    name = (username.strip() if isinstance(username, str) else "")[:64] or "(none)"
    record_separately(store, Actor(name, remote_addr=remote_addr), "user.login", "user", name, "denied",
                      f"{via}: {reason}")


def list_events(s: Session, limit: int = 200, actor: str | None = None, object_name: str | None = None,
                offset: int = 0):
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if object_name:
        q = q.where(AuditEvent.object_name == object_name)
    return list(s.scalars(q))

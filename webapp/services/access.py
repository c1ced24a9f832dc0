"""Who sees which instance. Admins see every instance. Any other user sees an instance that is open to all (the
default) or restricted to a list of users that names them; an instance they may not see does not exist for them
(NotFound), and they cannot create databases on it. What a user sees of an instance they may see (its name, status
and version, never its members or placement) is the serializers' business."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.services import Invalid, NotFound, audit
from webapp.services.audit import Actor
from webapp.store.models import Instance, User, instance_access


def _visible_query(actor: Actor):
    q = select(Instance).order_by(Instance.name)
    if not actor.is_admin:
        named = select(instance_access.c.instance_id).where(instance_access.c.user_id == actor.user_id)
        q = q.where(Instance.access_restricted.is_(False) | Instance.id.in_(named))
    return q


def visible_instances(s: Session, actor: Actor, limit: int | None = None, offset: int = 0) -> list[Instance]:
    return list(s.scalars(_visible_query(actor).limit(limit).offset(offset)))


def get_visible(s: Session, actor: Actor, name: str) -> Instance:
    inst = s.scalar(_visible_query(actor).where(Instance.name == name)) if isinstance(name, str) else None
    if inst is None:
        raise NotFound(f"no instance {name!r}")
    return inst


def allowed_usernames(inst: Instance) -> list[str] | None:
    """None: open to every user; else the users it is restricted to (admins always see it)."""
    return [u.username for u in inst.allowed_users] if inst.access_restricted else None


def describe(usernames: list[str] | None) -> str:
    return "open to every user" if usernames is None else f"restricted to: {', '.join(usernames) or '(admins only)'}"


def set_access(s: Session, actor: Actor, inst: Instance, usernames) -> list[str] | None:
    """Restrict the instance to these users (a list; empty: admins only), or open it to all (None). Databases
    already on it stay with their owners; a user no longer named stops seeing the instance and cannot create
    databases on it. Audited."""
    if usernames is None:
        inst.access_restricted, inst.allowed_users = False, []
        allowed = None
    else:
        if not isinstance(usernames, list) or not all(isinstance(u, str) for u in usernames):
            raise Invalid("users must be a list of usernames, or null to open the instance to every user",
                          field="users")
        wanted = sorted(set(usernames))
        found = list(s.scalars(select(User).where(User.username.in_(wanted)).order_by(User.username)))
        if unknown := sorted(set(wanted) - {u.username for u in found}):
            raise Invalid(f"no such user(s): {', '.join(unknown)}", field="users")
        inst.access_restricted, inst.allowed_users = True, found
        allowed = allowed_usernames(inst)
    audit.record(s, actor, "instance.access", "instance", inst.name, detail=describe(allowed))
    return allowed

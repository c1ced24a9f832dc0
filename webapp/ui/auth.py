"""Flask-Login glue: the session names the user and their session version; a password change bumps the version,
so it ends every other session of that user."""
from __future__ import annotations

from dataclasses import dataclass

from flask import request
from flask_login import UserMixin, current_user

from webapp.services import audit


@dataclass
class SessionUser(UserMixin):
    user_id: int
    username: str
    is_admin: bool
    session_version: int

    @classmethod
    def of(cls, user) -> "SessionUser":
        return cls(user.id, user.username, user.is_admin, user.session_version or 0)

    def get_id(self) -> str:
        return f"{self.user_id}:{self.session_version}"


def load_user(session_id: str) -> SessionUser | None:
    from webapp.extensions import services
    from webapp.store.models import User

    uid, _, version = (session_id or "").partition(":")
    if not uid.isdigit() or not version.isdigit():
        return None
    with services().store.session() as s:
        user = s.get(User, int(uid))
        if user is None or (user.session_version or 0) != int(version):
            return None
        return SessionUser.of(user)


def actor() -> audit.Actor:
    return audit.Actor(current_user.username, current_user.is_admin, current_user.user_id,
                       request.remote_addr or "")

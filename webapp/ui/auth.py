"""Flask-Login glue: the session names the user and a fingerprint of their password hash, so changing a password
ends every other session of that user."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import request
from flask_login import UserMixin, current_user

from webapp.services import audit


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass
class SessionUser(UserMixin):
    user_id: int
    username: str
    is_admin: bool
    fingerprint: str

    @classmethod
    def of(cls, user) -> "SessionUser":
        return cls(user.id, user.username, user.is_admin, _fingerprint(user.password_hash))

    def get_id(self) -> str:
        return f"{self.user_id}:{self.fingerprint}"


def load_user(session_id: str) -> SessionUser | None:
    from webapp.extensions import services
    from webapp.store.models import User

    uid, _, fp = (session_id or "").partition(":")
    if not uid.isdigit():
        return None
    with services().store.session() as s:
        user = s.get(User, int(uid))
        if user is None or _fingerprint(user.password_hash) != fp:
            return None
        return SessionUser.of(user)


def actor() -> audit.Actor:
    return audit.Actor(current_user.username, current_user.is_admin, current_user.user_id,
                       request.remote_addr or "")

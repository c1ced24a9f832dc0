"""Users and API tokens."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from webapp.schemas import limits as L
from webapp.services import Conflict, Invalid, NotFound, Unauthorized, audit, row_id
from webapp.services.crypto import generate_password
from webapp.store.models import ApiToken, User, aware, utcnow

USERNAME_RE = re.compile(L.USERNAME_PATTERN)
MIN_PASSWORD = L.USER_PASSWORD_MIN
TOKEN_SCOPES = L.TOKEN_SCOPES
MAX_TOKEN_DAYS = L.TOKEN_DAYS_MAX
# A fixed hash to compare against when the user does not exist, so both paths cost one scrypt.
_DUMMY_HASH = generate_password_hash("not-a-password", method="scrypt")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def create_user(s: Session, username: str, password: str | None = None, is_admin: bool = False,
                actor: audit.Actor | None = None) -> tuple[User, str]:
    """Create a user; returns (user, password) where password is generated when none was given. Audited as the
    actor's; None only for the control plane's own set-up (the first administrator at first start)."""
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise Invalid("username must be 2 to 63 characters: a lowercase letter, then lowercase letters, digits, "
                      "'_', '.' or '-'", field="username")
    if password is None:
        password = generate_password(20)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if s.scalar(select(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), is_admin=bool(is_admin))
    s.add(user)
    s.flush()
    if actor is not None:
        audit.record(s, actor, "user.create", "user", user.username, detail=f"is_admin={user.is_admin}")
    return user, password


def set_password(s: Session, user: User, password: str, actor: audit.Actor) -> int:
    """A new password ends everything the old one opened: every API token of the user is revoked and every website
    session ends (the session version they carry is bumped). Returns how many tokens were revoked. Audited."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise Invalid(f"password must be at least {MIN_PASSWORD} characters", field="password")
    user.password_hash = hash_password(password)
    user.session_version = (user.session_version or 0) + 1
    now = utcnow()
    active = list(s.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))))
    for tok in active:
        tok.revoked_at = now
    audit.record(s, actor, "user.password", "user", user.username,
                 detail=f"{len(active)} API token(s) revoked, website sessions ended")
    return len(active)


def authenticate(s: Session, username, password) -> User:
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise Invalid("username and password are required")
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        raise Unauthorized("wrong username or password")
    if not check_password_hash(user.password_hash, password):
        raise Unauthorized("wrong username or password")
    return user


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(s: Session, user: User, name: str = "", *, actor: audit.Actor, scope="write", days=None,
                default_days: int = 30) -> tuple[ApiToken, str]:
    """A new token for the user: scope read (it may only read) or write (all its user may do), valid for days
    (default_days when None). Only its digest is stored. Audited as the actor's (the user, from where they ask)."""
    if scope not in TOKEN_SCOPES:
        raise Invalid(f"scope must be one of {', '.join(TOKEN_SCOPES)}", field="scope")
    if days is None:
        days = default_days
    elif isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= max(MAX_TOKEN_DAYS, default_days):
        raise Invalid(f"expires_in_days must be a whole number of days from 1 to {max(MAX_TOKEN_DAYS, default_days)}",
                      field="expires_in_days")
    raw = "pgaas_" + secrets.token_urlsafe(32)
    tok = ApiToken(user=user, token_hash=_digest(raw), prefix=raw[:12], name=(name or "")[:64], scope=scope,
                   expires_at=utcnow() + timedelta(days=days))
    s.add(tok)
    s.flush()
    audit.record(s, actor, "token.create", "token", f"{tok.prefix}… ({tok.id})",
                 detail=f"{tok.name}, scope {tok.scope}, expires {aware(tok.expires_at):%Y-%m-%d %H:%M} UTC")
    return tok, raw


def token_in_use(s: Session, raw: str) -> ApiToken:
    """The token a request presents; Unauthorized says why it does not work (unknown, revoked or expired)."""
    tok = s.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(raw)))
    if tok is None:
        raise Unauthorized("the API token is unknown")
    now = utcnow()
    if tok.revoked_at is not None:
        raise Unauthorized(f"the API token was revoked at {aware(tok.revoked_at):%Y-%m-%d %H:%M} UTC (a password "
                           "change revokes every token of its user)")
    if aware(tok.expires_at) <= now:
        raise Unauthorized(f"the API token expired at {aware(tok.expires_at):%Y-%m-%d %H:%M} UTC")
    # a write per request would serialize every API call on SQLite: a minute's precision is enough
    last = aware(tok.last_used_at)
    if last is None or (now - last).total_seconds() > 60:
        tok.last_used_at = now
    return tok


def get_user(s: Session, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(s: Session, limit: int | None = None, offset: int = 0) -> list[User]:
    return list(s.scalars(select(User).order_by(User.username).limit(limit).offset(offset)))


def database_counts(s: Session) -> dict[int, int]:
    """{user id: how many tenant databases they own}."""
    from sqlalchemy import func

    from webapp.store.models import Database

    return dict(s.execute(select(Database.owner_id, func.count()).group_by(Database.owner_id)).all())


def list_tokens(s: Session, user: User, limit: int | None = None, offset: int = 0) -> list[ApiToken]:
    return list(s.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
                          .limit(limit).offset(offset)))


def revoke_token(s: Session, actor: audit.Actor, token_id) -> ApiToken:
    """Revoke one of the actor's tokens (an administrator: anyone's); audited."""
    if (number := row_id(token_id)) is None:
        raise NotFound(f"no token {token_id!r}")
    tok = s.get(ApiToken, number)
    if tok is None or (tok.user_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"no token {token_id}")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
    audit.record(s, actor, "token.revoke", "token", f"{tok.prefix}… ({tok.id})")
    return tok


def delete_user(s: Session, actor: audit.Actor, username: str, transfer_to: str | None = None,
                drop_databases=None) -> list:
    """Refuses (Conflict) while the user owns databases, unless told what happens to them: transfer_to another
    user, or drop_databases (a callable that drops them: an explicit delete). Returns the dropped databases.
    Audited, saying what became of the databases."""
    from webapp.store.models import Database

    user = get_user(s, username)
    if user.id == actor.user_id:
        raise Conflict("you cannot delete yourself")
    owned = list(s.scalars(select(Database).where(Database.owner_id == user.id)))
    dropped = []
    if owned:
        if transfer_to:
            heir = get_user(s, transfer_to)
            if heir.id == user.id:
                raise Invalid("transfer_to must be another user", field="transfer_to")
            for db in owned:
                db.owner_id = heir.id
        elif drop_databases is not None:
            for db in owned:
                drop_databases(db)
                dropped.append(db)
        else:
            names = ", ".join(f"{d.instance.name}/{d.name}" for d in owned)
            raise Conflict(f"user {username!r} owns {len(owned)} database(s): {names}; pass transfer_to=<user> "
                           "to hand them over or delete_databases=true to delete them", databases=len(owned))
    s.delete(user)
    audit.record(s, actor, "user.delete", "user", username,
                 detail=(f"databases transferred to {transfer_to}" if transfer_to else
                         f"{len(dropped)} database(s) deleted" if dropped else ""))
    return dropped

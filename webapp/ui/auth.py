"""Logging in and out, and changing one's password. Flask-Login glue: the session names the user and their session
version; a password change bumps the version, so it ends every other session of that user."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_login import UserMixin, current_user, login_required, login_user, logout_user

from webapp import front_door
from webapp.extensions import services
from webapp.services import Invalid, Unauthorized, accounts, audit
from webapp.store.models import User
from webapp.ui import bp, forms
from webapp.ui.common import actor, form_error, record_failure


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
    uid, _, version = (session_id or "").partition(":")
    if not uid.isdigit() or not version.isdigit():
        return None
    with services().store.session() as s:
        user = s.get(User, int(uid))
        if user is None or (user.session_version or 0) != int(version):
            return None
        return SessionUser.of(user)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.app_context_processor
def _globals():
    return {"logout_form": forms.EmptyForm(prefix="logout")}


@bp.get("/")
@login_required
def home():
    return redirect(url_for("ui.instances" if current_user.is_admin else "ui.databases"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("ui.home"))
    form = forms.LoginForm()
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                user = accounts.authenticate(s, form.username.data.strip(), form.password.data)
                session_user = SessionUser.of(user)
        except (Unauthorized, Invalid):
            audit.failed_login(services().store, form.username.data, request.remote_addr or "", "website",
                               "wrong username or password")
            form.form_errors.append("Wrong username or password.")
        else:
            session.clear()  # a fresh session on log in
            login_user(session_user)
            return redirect(_safe_next(request.args.get("next")) or url_for("ui.home"))
    return render_template("ui/login.html", form=form), (401 if form.form_errors else 200)


@bp.errorhandler(RateLimitExceeded)
def _too_many_logins(exc: RateLimitExceeded):
    """The log in form again, saying when to try next (only /login is rate limited on the website)."""
    seconds = front_door.retry_after()
    form = forms.LoginForm()
    form.form_errors.append(f"{exc.description[:1].upper()}{exc.description[1:]}. Try again in {seconds} seconds.")
    return render_template("ui/login.html", form=form), 429, {"Retry-After": str(seconds)}


@bp.post("/logout")
def logout():
    form = forms.EmptyForm(prefix="logout")
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You are logged out.", "info")
    return redirect(url_for("ui.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def account_password():
    form = forms.ChangePasswordForm()
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                user = accounts.authenticate(s, current_user.username, form.current_password.data)
                revoked = accounts.set_password(s, user, form.new_password.data, actor())
                session_user = SessionUser.of(user)
        except Unauthorized as exc:
            record_failure("user.password", "user", current_user.username, exc)
            form.current_password.errors = [*form.current_password.errors, "This is not your current password."]
        except Invalid as exc:
            record_failure("user.password", "user", current_user.username, exc)
            form_error(form, exc, {"password": "new_password"})
        else:
            login_user(session_user)  # this session goes on; the others ended with the old session version
            flash(f"Your password was changed. Your other sessions were logged out and your API tokens revoked "
                  f"({revoked} token{'s' if revoked != 1 else ''}).", "success")
            return redirect(url_for("ui.home"))
    return render_template("ui/account_password.html", form=form)

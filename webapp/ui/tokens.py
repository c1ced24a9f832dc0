"""The Tokens page: a user's own API tokens, a form to issue one (shown once) and a button to revoke each."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from webapp.extensions import services
from webapp.services import Invalid, accounts
from webapp.store.models import aware, utcnow
from webapp.ui import bp, forms
from webapp.ui.common import actor, form_error, pop_reveal, reveal_once
from webapp.urls import API_PREFIX


def _render_tokens(form, status: int = 200):
    revealed = pop_reveal("token", str(current_user.user_id))
    with services().store.session() as s:
        user = accounts.get_user(s, current_user.username)
        now = utcnow()
        rows = [{"id": t.id, "name": t.name, "prefix": t.prefix, "scope": t.scope, "created_at": t.created_at,
                 "expires_at": t.expires_at, "expired": aware(t.expires_at) <= now,
                 "last_used_at": t.last_used_at, "revoked_at": t.revoked_at}
                for t in reversed(accounts.list_tokens(s, user))]
    return render_template("ui/tokens.html", form=form, tokens=rows, revealed=revealed,
                           api_base=request.host_url.rstrip("/") + API_PREFIX,
                           revoke_form=forms.EmptyForm(prefix="revoke")), status


@bp.route("/account/tokens", methods=["GET", "POST"])
@login_required
def tokens():
    form = forms.TokenCreateForm()
    if not form.validate_on_submit():
        return _render_tokens(form, 422 if form.is_submitted() else 200)
    name = form.name.data.strip()
    try:
        with services().store.session() as s:
            _, raw = accounts.issue_token(s, accounts.get_user(s, current_user.username), name, actor=actor(),
                                          scope=form.scope.data, days=form.expires_in_days.data,
                                          default_days=int(services().config["TOKEN_DAYS"]))
    except Invalid as exc:
        form_error(form, exc)
        return _render_tokens(form, 422)
    reveal_once("token", str(current_user.user_id), raw, name=name)
    return redirect(url_for("ui.tokens"))


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def token_revoke(token_id):
    form = forms.EmptyForm(prefix="revoke")
    if not form.validate_on_submit():
        abort(400)
    with services().store.session() as s:
        user = accounts.get_user(s, current_user.username)
        tok = next((x for x in accounts.list_tokens(s, user) if x.id == token_id), None)
        if tok is None:  # this page is about your own tokens only (an admin's API may revoke any)
            abort(404, f"You have no token {token_id}.")
        accounts.revoke_token(s, actor(), token_id)
        name = tok.name
    flash(f"Token {name} was revoked: it no longer works.", "success")
    return redirect(url_for("ui.tokens"))

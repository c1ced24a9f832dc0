"""Users on the website (administrators): the list with a create form (a generated password is shown once), and
each user's page: their databases, tokens and capacity allowance, and deletion with what becomes of their
databases."""
from __future__ import annotations

import psycopg
from flask import abort, flash, redirect, render_template, url_for
from wtforms.fields.choices import SelectChoice

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound
from webapp.services import accounts, capacity
from webapp.services import databases as dbsvc
from webapp.ui import bp, forms
from webapp.ui.common import actor, admin_required, refuse


@bp.route("/users", methods=["GET", "POST"])
@admin_required(operation=("user.create", "user", "username"))
def users():
    form = forms.UserCreateForm()
    created = None
    if form.validate_on_submit():
        username = (form.username.data or "").strip()
        try:
            with services().store.session() as s:
                user, password = accounts.create_user(s, username, form.password.data or None,
                                                      is_admin=bool(form.is_admin.data), actor=actor())
        except (Invalid, Conflict) as exc:
            refuse(form, "user.create", "user", username, exc)
        else:
            if form.password.data:
                flash(f"User {username} was created.", "success")
                return redirect(url_for("ui.users"))
            created = {"username": username, "password": password}  # generated: shown in this answer only
            form = forms.UserCreateForm(formdata=None)
    limits = services().capacity_defaults()
    with services().store.session() as s:
        owned = accounts.database_counts(s)
        rows = [{"username": u.username, "is_admin": u.is_admin, "created_at": u.created_at,
                 "databases": owned.get(u.id, 0), "allowance": capacity.allowance(u, limits)}
                for u in accounts.list_users(s)]
    return render_template("ui/users.html", form=form, users=rows, created=created)


@bp.route("/users/<username>", methods=["GET", "POST"])
@admin_required(operation=("user.delete", "user", "username"))
def user(username, allowance_form=None):
    """One user: their databases, tokens and capacity allowance (a form to set it), and deletion behind a typed
    confirmation that says what happens to their databases (transfer to another user, or delete them)."""
    svc = services()
    allowance_posted = allowance_form is not None  # user_allowance() shows its errors here: no delete to handle
    form = forms.UserDeleteForm(formdata=None) if allowance_posted else forms.UserDeleteForm()
    with svc.store.session() as s:
        try:
            u = accounts.get_user(s, username)
        except NotFound:
            abort(404, f"There is no user {username!r}.")
        dbs = [{"instance": d.instance.name, "name": d.name} for d in dbsvc.visible(s, actor())
               if d.owner_id == u.id]
        others = [x.username for x in accounts.list_users(s) if x.id != u.id]
        info = {"username": u.username, "is_admin": u.is_admin, "created_at": u.created_at,
                "tokens": sum(1 for t in accounts.list_tokens(s, u) if t.revoked_at is None)}
        cap = capacity.capacity(s, u, svc.capacity_defaults(), live_stats=lambda owned: dbsvc.live_stats(
            svc.box, [d for d in owned if d.instance.status == "available"]))
        if allowance_form is None:
            allowance_form = forms.AllowanceForm(prefix="allow", formdata=None,
                                                 storage_allowance_mb=u.storage_allowance_mb,
                                                 max_databases=u.max_databases)
    form.transfer_to.choices = [SelectChoice("", "choose a user")] + [SelectChoice(o, o) for o in others]
    if not allowance_posted and form.validate_on_submit():
        choice, heir = form.databases.data, form.transfer_to.data or None
        if form.confirm.data.strip() != username:
            form.confirm.errors = [*form.confirm.errors, f"Type {username} exactly to delete this user."]
        elif dbs and choice not in ("transfer", "delete"):
            form.databases.errors = [*form.databases.errors, "Say what happens to their databases."]
        elif dbs and choice == "transfer" and not heir:
            form.transfer_to.errors = [*form.transfer_to.errors, "Choose who gets their databases."]
        else:
            transfer = heir if dbs and choice == "transfer" else None
            try:
                with svc.store.session() as s:
                    dropper = ((lambda db: dbsvc.drop(s, svc.box, actor(), db))
                               if dbs and choice == "delete" else None)
                    dropped = accounts.delete_user(s, actor(), username, transfer_to=transfer,
                                                   drop_databases=dropper)
                    detail = (f"databases transferred to {transfer}" if transfer else
                              f"{len(dropped)} database(s) deleted" if dropped else "")
            except (Conflict, Invalid, NotFound, psycopg.Error) as exc:
                refuse(form, "user.delete", "user", username, exc)
            else:
                flash(f"User {username} was deleted" + (f"; {detail}." if detail else "."), "success")
                return redirect(url_for("ui.users"))
    return (render_template("ui/user.html", u=info, databases=dbs, form=form, cap=cap, allowance_form=allowance_form),
            422 if form.is_submitted() else 200)


@bp.post("/users/<username>/allowance")
@admin_required(operation=("user.allowance", "user", "username"))
def user_allowance(username):
    """Set the user's storage allowance and maximum number of databases (empty: the configured default)."""
    form = forms.AllowanceForm(prefix="allow")
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                u = accounts.get_user(s, username)
                capacity.set_allowance(s, actor(), u, storage_allowance_mb=form.storage_allowance_mb.data,
                                       max_databases=form.max_databases.data)
        except NotFound:
            abort(404, f"There is no user {username!r}.")
        except Invalid as exc:
            refuse(form, "user.allowance", "user", username, exc)
        else:
            flash(f"The allowance of {username} was saved.", "success")
            return redirect(url_for("ui.user", username=username))
    return user(username, allowance_form=form)

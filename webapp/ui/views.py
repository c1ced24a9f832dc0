"""Pages of the website. Each view is thin: a form, one service call, a redirect or a template. Service errors
with a field name land beside that field; others above the form."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

import psycopg
from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound, ServiceError, Unauthorized
from webapp.services import accounts, audit
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.ui import bp, forms
from webapp.store.models import ApiToken
from webapp.ui.auth import SessionUser, actor

TERMINAL = ("succeeded", "failed", "canceled", "error")


# -- helpers --------------------------------------------------------------------------------------------------
def admin_required(fn):
    @wraps(fn)
    @login_required
    def inner(*args, **kwargs):
        if not current_user.is_admin:
            abort(403, "This page is for administrators.")
        return fn(*args, **kwargs)

    return inner


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
    outcome = "denied" if isinstance(exc, Unauthorized) else "failed"
    message = exc.message if isinstance(exc, ServiceError) else str(exc)
    audit.record_separately(services().store, actor(), action, object_type, object_name, outcome, message)


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


def safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.after_request
def _no_store(resp):
    # pages show URIs, once-shown passwords and live state: never from a cache or the back button's store
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    return resp


@bp.app_context_processor
def _globals():
    return {"logout_form": forms.EmptyForm(prefix="logout")}


# -- log in / out ---------------------------------------------------------------------------------------------
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
            audit.record_separately(services().store, audit.Actor(form.username.data.strip()[:64], False, None,
                                                                   request.remote_addr or ""),
                                    "user.login", "user", form.username.data.strip()[:64], "denied",
                                    "wrong username or password")
            form.form_errors.append("Wrong username or password.")
        else:
            session.clear()  # a fresh session on log in
            login_user(session_user)
            return redirect(safe_next(request.args.get("next")) or url_for("ui.home"))
    return render_template("ui/login.html", form=form), (401 if form.form_errors else 200)


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
                accounts.set_password(s, user, form.new_password.data)
                audit.record(s, actor(), "user.password", "user", user.username)
                session_user = SessionUser.of(user)
        except Unauthorized:
            form.current_password.errors = [*form.current_password.errors, "This is not your current password."]
        except Invalid as exc:
            form_error(form, exc, {"password": "new_password"})
        else:
            login_user(session_user)  # other sessions of this user end with the old password
            flash("Your password was changed. Other sessions were logged out.", "success")
            return redirect(url_for("ui.home"))
    return render_template("ui/account_password.html", form=form)


# -- API tokens -----------------------------------------------------------------------------------------------
def _render_tokens(form, status: int = 200):
    revealed = pop_reveal("token", str(current_user.user_id))
    with services().store.session() as s:
        user = accounts.get_user(s, current_user.username)
        rows = [{"id": t.id, "name": t.name, "prefix": t.prefix, "created_at": t.created_at,
                 "last_used_at": t.last_used_at, "revoked_at": t.revoked_at}
                for t in reversed(accounts.list_tokens(s, user))]
    return render_template("ui/tokens.html", form=form, tokens=rows, revealed=revealed,
                           revoke_form=forms.EmptyForm(prefix="revoke")), status


@bp.route("/account/tokens", methods=["GET", "POST"])
@login_required
def tokens():
    form = forms.TokenCreateForm()
    if not form.validate_on_submit():
        return _render_tokens(form, 422 if form.is_submitted() else 200)
    name = form.name.data.strip()
    with services().store.session() as s:
        tok, raw = accounts.issue_token(s, accounts.get_user(s, current_user.username), name)
        audit.record(s, actor(), "token.create", "token", f"{tok.prefix}… ({tok.id})", detail=name)
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
        tok = s.get(ApiToken, token_id)
        if tok is None or tok.user_id != user.id:  # this page is about your own tokens only
            abort(404, f"You have no token {token_id}.")
        accounts.revoke_token(s, user, token_id)
        audit.record(s, actor(), "token.revoke", "token", f"{tok.prefix}… ({tok.id})")
        name = tok.name
    flash(f"Token {name} was revoked: it no longer works.", "success")
    return redirect(url_for("ui.tokens"))


# -- tenant databases -----------------------------------------------------------------------------------------
@bp.get("/databases")
@login_required
def databases():
    svc = services()
    with svc.store.session() as s:
        dbs = dbsvc.visible(s, actor())
        stats = dbsvc.live_stats(svc.box, [d for d in dbs if d.instance.status == "available"])
        rows = [{"db": d, "instance": d.instance.name, "owner": d.owner.username, "stats": stats.get(d.id)}
                for d in dbs]
    return render_template("ui/databases.html", rows=rows)


def _available_instances(s) -> list[str]:
    return [i.name for i in isvc.list_all(s) if i.status == "available"]


@bp.route("/databases/new", methods=["GET", "POST"])
@login_required
def database_new():
    svc = services()
    form = forms.DatabaseCreateForm()
    with svc.store.session() as s:
        names = _available_instances(s)
    form.instance.choices = [(n, n) for n in names]
    if not form.is_submitted() and request.args.get("instance") in names:
        form.instance.data = request.args["instance"]
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        try:
            with svc.store.session() as s:
                db, password = dbsvc.create(s, svc.box, actor(), form.instance.data, name, form.quota_mb.data,
                                            form.connection_limit.data)
        except (Invalid, Conflict, NotFound) as exc:
            record_failure("database.create", "database", f"{form.instance.data}/{name}", exc)
            form_error(form, exc, {"quota_mb": "quota_mb", "connection_limit": "connection_limit"})
        except psycopg.Error as exc:
            record_failure("database.create", "database", f"{form.instance.data}/{name}", exc)
            form.form_errors.append(db_error_message(exc))
        else:
            reveal_once("database", f"{form.instance.data}/{name}", password, reason="created")
            return redirect(url_for("ui.database", instance=form.instance.data, name=name))
    return render_template("ui/database_new.html", form=form, has_instances=bool(names))


def _load_db(s, instance: str, name: str):
    try:
        return dbsvc.get(s, actor(), instance, name)
    except NotFound:
        abort(404, f"There is no database {name!r} on instance {instance!r} that you can see.")


def _render_database(instance: str, name: str, edit_form=None, delete_form=None, status: int = 200):
    svc = services()
    revealed = pop_reveal("database", f"{instance}/{name}")
    with svc.store.session() as s:
        db = _load_db(s, instance, name)
        stats = dbsvc.live_stats(svc.box, [db]).get(db.id) if db.instance.status == "available" else None
        uri, ro_uri = dbsvc.uris(db)
        if edit_form is None:
            edit_form = forms.DatabaseEditForm(formdata=None, quota_mb=db.quota_mb,
                                               connection_limit=db.connection_limit,
                                               parameters="\n".join(f"{k} = {v}" for k, v in
                                                                    sorted((db.parameters or {}).items())))
        page = render_template("ui/database.html", db=db, instance=db.instance, owner=db.owner.username,
                               stats=stats, uri=uri, ro_uri=ro_uri, revealed=revealed, edit_form=edit_form,
                               password_form=forms.EmptyForm(prefix="pw"),
                               delete_form=delete_form or forms.ConfirmDeleteForm(prefix="del", formdata=None))
    return page, status


@bp.get("/instances/<instance>/databases/<name>")
@login_required
def database(instance, name):
    return _render_database(instance, name)


@bp.post("/instances/<instance>/databases/<name>/settings")
@login_required
def database_settings(instance, name):
    svc = services()
    form = forms.DatabaseEditForm()
    if form.validate_on_submit() and (params := form.parsed_parameters()) is not None:
        try:
            with svc.store.session() as s:
                db = _load_db(s, instance, name)
                changes = {k: v for k, v in params.items() if (db.parameters or {}).get(k) != v}
                changes.update({k: None for k in (db.parameters or {}) if k not in params})
                dbsvc.update(s, svc.box, actor(), db, quota_mb=form.quota_mb.data,
                             connection_limit=form.connection_limit.data, parameters=changes)
        except (Invalid, Conflict) as exc:
            record_failure("database.update", "database", f"{instance}/{name}", exc)
            form_error(form, exc)
        except psycopg.Error as exc:
            record_failure("database.update", "database", f"{instance}/{name}", exc)
            form.form_errors.append(db_error_message(exc))
        else:
            flash("Settings saved.", "success")
            return redirect(url_for("ui.database", instance=instance, name=name))
    return _render_database(instance, name, edit_form=form, status=422)


@bp.post("/instances/<instance>/databases/<name>/password")
@login_required
def database_password(instance, name):
    svc = services()
    form = forms.EmptyForm(prefix="pw")
    if not form.validate_on_submit():
        abort(400)
    try:
        with svc.store.session() as s:
            password = dbsvc.set_password(s, svc.box, actor(), _load_db(s, instance, name))
    except (Conflict, psycopg.Error) as exc:
        record_failure("database.password", "database", f"{instance}/{name}", exc)
        flash(f"The password was not changed: {exc.message if isinstance(exc, ServiceError) else exc}", "error")
    else:
        reveal_once("database", f"{instance}/{name}", password, reason="changed")
    return redirect(url_for("ui.database", instance=instance, name=name))


@bp.post("/instances/<instance>/databases/<name>/delete")
@login_required
def database_delete(instance, name):
    svc = services()
    form = forms.ConfirmDeleteForm(prefix="del")
    if form.validate_on_submit():
        if form.confirm.data.strip() != name:
            form.confirm.errors = [*form.confirm.errors, f"Type {name} exactly to delete this database."]
        else:
            try:
                with svc.store.session() as s:
                    db = _load_db(s, instance, name)
                    dump = dbsvc.final_dump(s, svc.box, svc.dump_settings(), db)
                    dbsvc.drop(s, svc.box, actor(), db)
                    expires = dump.expires_at
            except (Conflict, psycopg.Error) as exc:
                record_failure("database.delete", "database", f"{instance}/{name}", exc)
                form.form_errors.append(exc.message if isinstance(exc, ServiceError) else db_error_message(exc))
            else:
                flash(f"Database {name} was deleted. A final dump is kept until "
                      f"{expires:%Y-%m-%d %H:%M} UTC for a restore.", "success")
                return redirect(url_for("ui.databases"))
    return _render_database(instance, name, delete_form=form, status=422)


# -- instances (administrators) -------------------------------------------------------------------------------
@bp.get("/instances")
@admin_required
def instances():
    svc = services()
    with svc.store.session() as s:
        insts = isvc.list_all(s)
        states = isvc.live_states(insts, float(svc.config["PROBE_TIMEOUT"]))
        rows = [_instance_view(i, states.get(i.name), jobsvc.active_job(s, i.name)) for i in insts]
    return render_template("ui/instances.html", rows=rows)


def _instance_view(inst, st, active_job) -> dict:
    """What the pages show of an instance: the live view of Patroni when it answers, the placement otherwise."""
    if st is not None and st.reachable:
        members = ([st.primary] if st.primary else []) + list(st.replicas)
    else:
        state = "unknown" if inst.status == "available" else inst.status
        members = [isvc.MemberState(name=m.name, host=m.host, address=m.address, port=m.pg_port, container=m.name,
                                    role="primary" if m.ordinal == 0 else "replica", state=state)
                   for m in inst.members]
    uri, ro_uri = isvc.uris(inst)
    return {"inst": inst, "name": inst.name, "status": isvc.effective_status(inst, st),
            "reason": inst.status_reason or (st.problem if st is not None and not st.healthy else ""),
            "members": members, "primary": next((m for m in members if m.role == "primary"), None),
            "replicas": [m for m in members if m.role != "primary"], "same_host": isvc.same_host(inst),
            "live": st is not None and st.reachable, "active_job": active_job, "uri": uri, "ro_uri": ro_uri}


@bp.route("/instances/new", methods=["GET", "POST"])
@admin_required
def instance_new():
    svc = services()
    form = forms.InstanceCreateForm()
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        try:
            with svc.store.session() as s:
                inst, job, admin_password = isvc.create(s, svc.provider, svc.box, name=name,
                                                        synchronous=bool(form.synchronous.data),
                                                        created_by=current_user.username)
                audit.record(s, actor(), "instance.create", "instance", inst.name, detail=f"job {job.id}")
                job_id, admin_user = job.id, inst.admin_user
        except (Invalid, Conflict) as exc:
            record_failure("instance.create", "instance", name, exc)
            form_error(form, exc)
        else:
            reveal_once("job", str(job_id), admin_password, user=admin_user, instance=name)
            return redirect(url_for("ui.job", job_id=job_id))
    return render_template("ui/instance_new.html", form=form)


@bp.get("/instances/<name>")
@admin_required
def instance(name, delete_form=None, status=200):
    svc = services()
    with svc.store.session() as s:
        try:
            inst = isvc.get(s, name)
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        st = isvc.live_state(inst, float(svc.config["PROBE_TIMEOUT"])) if inst.status == "available" else None
        view = _instance_view(inst, st, jobsvc.active_job(s, name))
        dbs = dbsvc.visible(s, actor(), name)
        db_rows = [{"name": d.name, "owner": d.owner.username, "quota_mb": d.quota_mb, "status": d.status}
                   for d in dbs]
        jobs = jobsvc.list_jobs(s, name, limit=20)
        page = render_template("ui/instance.html", v=view, meta=inst.meta or {}, databases=db_rows, jobs=jobs,
                               delete_form=delete_form or forms.ConfirmDeleteForm(prefix="del", formdata=None))
    return page, status


@bp.post("/instances/<name>/delete")
@admin_required
def instance_delete(name):
    form = forms.ConfirmDeleteForm(prefix="del")
    if form.validate_on_submit():
        if form.confirm.data.strip() != name:
            form.confirm.errors = [*form.confirm.errors, f"Type {name} exactly to delete this instance."]
        else:
            force = bool(form.force.data)
            try:
                with services().store.session() as s:
                    job = isvc.delete(s, name, current_user.username, force=force)
                    audit.record(s, actor(), "instance.delete", "instance", name,
                                 detail=f"job {job.id}, force={force}")
                    job_id = job.id
            except NotFound:
                abort(404)
            except Conflict as exc:
                record_failure("instance.delete", "instance", name, exc)
                form.form_errors.append(exc.message)
            else:
                return redirect(url_for("ui.job", job_id=job_id))
    return instance(name, delete_form=form, status=422)


# -- jobs -----------------------------------------------------------------------------------------------------
def _visible_job(s, job_id):
    try:
        job = jobsvc.get(s, job_id)
    except NotFound:
        abort(404, f"There is no job {job_id}.")
    if not current_user.is_admin and job.created_by != current_user.username:
        abort(404, f"There is no job {job_id}.")
    return job


def _event_dict(e) -> dict:
    return {"id": e.id, "time": e.created_at.strftime("%H:%M:%S") if e.created_at else "", "event": e.event,
            "task": e.task, "host": e.host, "status": e.status,
            "duration": round(e.duration, 1) if e.duration is not None else None, "message": e.message}


def _failures(job, events) -> list[dict]:
    return [_event_dict(e) for e in events if e.status == "failed"]


@bp.get("/jobs")
@login_required
def jobs():
    with services().store.session() as s:
        rows = [j for j in jobsvc.list_jobs(s, request.args.get("instance") or None)
                if current_user.is_admin or j.created_by == current_user.username]
    return render_template("ui/jobs.html", jobs=rows)


@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id):
    revealed = pop_reveal("job", str(job_id))
    with services().store.session() as s:
        j = _visible_job(s, job_id)
        events = jobsvc.events_after(s, j.id, 0)
        page = render_template("ui/job.html", job=j, events=[_event_dict(e) for e in events],
                               failures=_failures(j, events), terminal=j.status in TERMINAL, revealed=revealed,
                               last_id=events[-1].id if events else 0)
    return page


@bp.get("/jobs/<int:job_id>/events")
@login_required
def job_events(job_id):
    """JSON for the job page's poller (session auth): the job's state and the events after ?after=N."""
    after = request.args.get("after", "0")
    after = int(after) if after.isdigit() else 0
    with services().store.session() as s:
        j = _visible_job(s, job_id)
        events = jobsvc.events_after(s, j.id, after)
        failures = _failures(j, jobsvc.events_after(s, j.id, 0)) if j.status in TERMINAL else []
        return {"id": j.id, "status": j.status, "terminal": j.status in TERMINAL, "error": j.error or "",
                "started": j.started_at.strftime("%H:%M:%S") if j.started_at else None,
                "finished": j.finished_at.strftime("%H:%M:%S") if j.finished_at else None,
                "events": [_event_dict(e) for e in events], "failures": failures,
                "instance_url": url_for("ui.instance", name=j.instance_name)
                if j.instance_name and current_user.is_admin else None}


# -- users and audit (administrators) -------------------------------------------------------------------------
@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users():
    form = forms.UserCreateForm()
    created = None
    if form.validate_on_submit():
        username = (form.username.data or "").strip()
        try:
            with services().store.session() as s:
                user, password = accounts.create_user(s, username, form.password.data or None,
                                                      is_admin=bool(form.is_admin.data))
                audit.record(s, actor(), "user.create", "user", user.username, detail=f"is_admin={user.is_admin}")
        except (Invalid, Conflict) as exc:
            record_failure("user.create", "user", username, exc)
            form_error(form, exc)
        else:
            if form.password.data:
                flash(f"User {username} was created.", "success")
                return redirect(url_for("ui.users"))
            created = {"username": username, "password": password}  # generated: shown in this answer only
            form = forms.UserCreateForm(formdata=None)
    with services().store.session() as s:
        rows = [{"username": u.username, "is_admin": u.is_admin, "created_at": u.created_at}
                for u in accounts.list_users(s)]
    return render_template("ui/users.html", form=form, users=rows, created=created)


@bp.get("/audit")
@admin_required
def audit_log():
    form = forms.AuditFilterForm(request.args)
    with services().store.session() as s:
        events = audit.list_events(s, 200, (form.actor.data or "").strip() or None,
                                   (form.object.data or "").strip() or None)
    return render_template("ui/audit.html", form=form, events=events)

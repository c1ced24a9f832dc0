"""Pages of the website. Each view is thin: a form, one service call, a redirect or a template. Service errors
with a field name land beside that field; others above the form."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

import psycopg
from flask import abort, flash, redirect, render_template, request, send_file, session, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user
from wtforms.fields.choices import SelectChoice

from webapp import front_door
from webapp.api import bp as api_bp
from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound, ServiceError, Unauthorized
from webapp.services import access, accounts, audit, capacity, certificates
from webapp.services import databases as dbsvc
from webapp.services import dumps, retries
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services import settings as ssvc
from webapp.store.models import utcnow
from webapp.ui import bp, forms
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
            audit.failed_login(services().store, form.username.data, request.remote_addr or "", "website",
                               "wrong username or password")
            form.form_errors.append("Wrong username or password.")
        else:
            session.clear()  # a fresh session on log in
            login_user(session_user)
            return redirect(safe_next(request.args.get("next")) or url_for("ui.home"))
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
                revoked = accounts.set_password(s, user, form.new_password.data)
                audit.record(s, actor(), "user.password", "user", user.username,
                             detail=accounts.password_change_detail(revoked))
                session_user = SessionUser.of(user)
        except Unauthorized:
            form.current_password.errors = [*form.current_password.errors, "This is not your current password."]
        except Invalid as exc:
            form_error(form, exc, {"password": "new_password"})
        else:
            login_user(session_user)  # this session goes on; the others ended with the old session version
            flash(f"Your password was changed. Your other sessions were logged out and your API tokens revoked "
                  f"({revoked} token{'s' if revoked != 1 else ''}).", "success")
            return redirect(url_for("ui.home"))
    return render_template("ui/account_password.html", form=form)


# -- API tokens -----------------------------------------------------------------------------------------------
def _render_tokens(form, status: int = 200):
    revealed = pop_reveal("token", str(current_user.user_id))
    with services().store.session() as s:
        user = accounts.get_user(s, current_user.username)
        now = utcnow()
        rows = [{"id": t.id, "name": t.name, "prefix": t.prefix, "scope": t.scope, "created_at": t.created_at,
                 "expires_at": t.expires_at, "expired": accounts.aware(t.expires_at) <= now,
                 "last_used_at": t.last_used_at, "revoked_at": t.revoked_at}
                for t in reversed(accounts.list_tokens(s, user))]
    return render_template("ui/tokens.html", form=form, tokens=rows, revealed=revealed,
                           api_base=request.host_url.rstrip("/") + api_bp.url_prefix,
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
            tok, raw = accounts.issue_token(s, accounts.get_user(s, current_user.username), name,
                                            scope=form.scope.data, days=form.expires_in_days.data,
                                            default_days=int(services().config["TOKEN_DAYS"]))
            audit.record(s, actor(), "token.create", "token", f"{tok.prefix}… ({tok.id})",
                         detail=accounts.token_detail(tok))
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
        existing = {(r["instance"], r["db"].name) for r in rows}
        dumps = [{"instance": d.instance_name, "name": d.database_name, "deleted_at": d.created_at,
                  "expires_at": d.expires_at, "size_bytes": d.size_bytes,
                  "exists": (d.instance_name, d.database_name) in existing}
                 for d in dbsvc.restorable_dumps(s, actor())]
        mine = [d.id for d in dbs if d.owner_id == current_user.user_id]  # measured above: no second round
        cap = capacity.capacity(s, accounts.get_user(s, current_user.username), svc.capacity_defaults(),
                                live_stats=lambda owned: {i: stats[i] for i in mine if i in stats})
    return render_template("ui/databases.html", rows=rows, dumps=dumps, restore_form=forms.EmptyForm(prefix="restore"),
                           cap=cap)


@bp.post("/instances/<instance>/databases/<name>/restore")
@login_required
def database_restore(instance, name):
    """Bring a deleted database back from its final dump; the new password is shown once on its page."""
    svc = services()
    if not forms.EmptyForm(prefix="restore").validate_on_submit():
        abort(400)
    try:
        with svc.store.session() as s:
            db, password, job_ = dumps.start_final_restore(s, svc.box, actor(), instance, name,
                                                           limits=svc.capacity_defaults())
            job_id, role = job_.id, db.role_name
    except (NotFound, Conflict, Invalid, psycopg.Error) as exc:
        record_failure("database.restore", "database", f"{instance}/{name}", exc)
        flash(f"{name} was not restored: {exc.message if isinstance(exc, ServiceError) else db_error_message(exc)}",
              "error")
        return redirect(url_for("ui.databases"))
    reveal_once("job", str(job_id), password, database=name, user=role)
    flash(f"Database {name} was created again; job {job_id} restores its final dump into it.", "success")
    return redirect(url_for("ui.job", job_id=job_id))


def _start_database_job(instance: str, name: str, action: str, start):
    """Start a dump or delete job from the database page and show the job; a refusal shows on the database page."""
    try:
        with services().store.session() as s:
            job_id = start(s, actor(), instance, name).id
    except (NotFound, Conflict) as exc:
        record_failure(action, "database", f"{instance}/{name}", exc)
        flash(exc.message, "error")
        return redirect(url_for("ui.database", instance=instance, name=name))
    return redirect(url_for("ui.job", job_id=job_id))


@bp.post("/instances/<instance>/databases/<name>/dump")
@login_required
def database_dump(instance, name):
    if not forms.EmptyForm(prefix="dump").validate_on_submit():
        abort(400)
    return _start_database_job(instance, name, "database.dump", dumps.start_dump)


@bp.post("/instances/<instance>/databases/<name>/restore-upload")
@login_required
def database_restore_upload(instance, name):
    """Restore an uploaded archive into this database, as a job (the upload may be as large as
    DUMP_UPLOAD_MAX_BYTES: webapp/uploads.py)."""
    svc = services()
    form = forms.RestoreUploadForm(prefix="up")
    if form.validate_on_submit():
        try:
            with svc.store.session() as s:
                dumps.check_restore_target(s, actor(), instance, name)
            upload = dumps.new_upload(svc.dump_settings())
            form.file.data.save(upload)
            with svc.store.session() as s:
                job_id = dumps.start_restore(s, actor(), instance, name, upload, bool(form.clean.data)).id
        except (Invalid, NotFound, Conflict) as exc:
            record_failure("database.restore", "database", f"{instance}/{name}", exc)
            form_error(form, exc)
        else:
            return redirect(url_for("ui.job", job_id=job_id))
    return _render_database(instance, name, upload_form=form, status=422)


@bp.get("/jobs/<int:job_id>/dump")
@login_required
def job_dump(job_id):
    try:
        with services().store.session() as s:
            path, filename = dumps.download(s, _visible_job(s, job_id))
    except (NotFound, Conflict) as exc:
        abort(404 if isinstance(exc, NotFound) else 409, exc.message)
    return send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=filename,
                     conditional=True, max_age=0)


def _available_instances(s) -> list[str]:
    return [i.name for i in access.visible_instances(s, actor()) if i.status == "available"]


@bp.route("/databases/new", methods=["GET", "POST"])
@login_required
def database_new():
    svc = services()
    form = forms.DatabaseCreateForm()
    with svc.store.session() as s:
        names = _available_instances(s)
    form.instance.choices = [SelectChoice(n, n) for n in names]
    if not form.is_submitted() and request.args.get("instance") in names:
        form.instance.data = request.args["instance"]
    if form.validate_on_submit() and (params := form.parsed_parameters()) is not None:
        name = (form.name.data or "").strip()
        try:
            with svc.store.session() as s:
                db, password = dbsvc.create(s, svc.box, actor(), form.instance.data, name, form.quota_mb.data,
                                            form.connection_limit.data, params or None,
                                            limits=svc.capacity_defaults())
        except (Invalid, Conflict, NotFound) as exc:
            record_failure("database.create", "database", f"{form.instance.data}/{name}", exc)
            form_error(form, exc)
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


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours" if hours >= 2 else f"{seconds / 60:g} minutes"


def _render_database(instance: str, name: str, edit_form=None, delete_form=None, upload_form=None,
                     status: int = 200):
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
                               tls=_tls_view(db.instance),
                               password_form=forms.EmptyForm(prefix="pw"), dump_form=forms.EmptyForm(prefix="dump"),
                               dump_retention=_duration(float(svc.config["DUMP_RETENTION_SECONDS"])),
                               upload_form=upload_form or forms.RestoreUploadForm(prefix="up", formdata=None),
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
                             connection_limit=form.connection_limit.data, parameters=changes,
                             limits=svc.capacity_defaults())
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
                    job_id = dumps.start_delete(s, actor(), instance, name).id
            except (NotFound, Conflict) as exc:
                record_failure("database.delete", "database", f"{instance}/{name}", exc)
                form.form_errors.append(exc.message)
            else:
                return redirect(url_for("ui.job", job_id=job_id))
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
            "live": st is not None and st.reachable, "active_job": active_job, "uri": uri, "ro_uri": ro_uri,
            "tls": _tls_view(inst)}


def _tls_view(inst) -> dict | None:
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


@bp.get("/instances/<name>/ca.crt")
@login_required
def instance_ca(name):
    """The instance's CA certificate, for anyone who may see the instance (its tenants connect with it)."""
    with services().store.session() as s:
        try:
            inst = certificates.instance_for_ca(s, actor(), name)
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        pem = certificates.ca_cert(inst)
        if not pem:
            abort(404, f"Instance {name!r} has no certificates yet.")
        return pem, 200, {"Content-Type": "application/x-pem-file",
                          "Content-Disposition": f'attachment; filename="{certificates.ca_filename(inst)}"'}


@bp.route("/instances/new", methods=["GET", "POST"])
@admin_required
def instance_new():
    svc = services()
    form = forms.InstanceCreateForm()
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        try:
            with svc.store.session() as s:
                inst, job, admin_password = isvc.create(
                    s, svc.provider, svc.box, name=name, synchronous=bool(form.synchronous.data),
                    replicas=form.replicas.data, cpus=float(form.cpus.data) if form.cpus.data is not None else None,
                    memory_mb=form.memory_mb.data, storage_gb=form.storage_gb.data,
                    admin_password=form.admin_password.data or None,
                    admin_database=(form.admin_database.data or "").strip() or None, created_by=current_user.username,
                    cert_days=int(svc.config["TLS_CERT_DAYS"]))
                audit.record(s, actor(), "instance.create", "instance", inst.name, detail=f"job {job.id}")
                job_id, admin_user = job.id, inst.admin_user
        except (Invalid, Conflict) as exc:
            record_failure("instance.create", "instance", name, exc)
            form_error(form, exc)
        else:
            if not form.admin_password.data:  # a password the admin typed is not shown back
                reveal_once("job", str(job_id), admin_password, user=admin_user, instance=name)
            return redirect(url_for("ui.job", job_id=job_id))
    return render_template("ui/instance_new.html", form=form)


def _settings_text(inst) -> str:
    return "\n".join(f"{k} = {v.get('value') if isinstance(v, dict) else v}"
                     for k, v in sorted(((inst.meta or {}).get("settings") or {}).items()))


def _settings_view(inst, svc) -> dict | None:
    """Per member: each setting changed through pgaas (and any waiting for a restart), with its flags."""
    if inst.status != "available":
        return None
    cur = ssvc.current(inst, svc.box, float(svc.config["PROBE_TIMEOUT"]) + 1)
    names = sorted({x["name"] for m in cur["members"] for x in m["settings"]} | set(cur["requested"]))
    rows = [{"name": n, "requested": cur["requested"].get(n),
             "members": [next((x for x in m["settings"] if x["name"] == n), None) for m in cur["members"]]}
            for n in names]
    return {"members": cur["members"], "rows": rows, "pending_restart": cur["pending_restart"]}


@bp.get("/instances/<name>")
@admin_required
def instance(name, delete_form=None, status=200, **form_overrides):
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
        edit = {
            "settings_form": forms.InstanceSettingsForm(prefix="set", formdata=None, settings=_settings_text(inst)),
            "sizes_form": forms.InstanceSizesForm(prefix="size", formdata=None, cpus=inst.cpus,
                                                  memory_mb=inst.memory_mb, storage_gb=inst.storage_gb),
            "restart_form": forms.EmptyForm(prefix="restart", formdata=None),
            "access_form": forms.InstanceAccessForm(
                prefix="acc", formdata=None, open_to_all=not inst.access_restricted,
                users=", ".join(access.allowed_usernames(inst) or [])),
            **form_overrides}
        page = render_template("ui/instance.html", v=view, meta=inst.meta or {}, databases=db_rows, jobs=jobs,
                               delete_form=delete_form or forms.ConfirmDeleteForm(prefix="del", formdata=None),
                               settings=_settings_view(inst, svc), **edit)
    return page, status


def _instance_or_404(name: str):
    with services().store.session() as s:
        try:
            inst = isvc.get(s, name)
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        s.expunge(inst)
        return inst


def _change_instance(name: str, action: str, start) -> tuple:
    """Start a job on an instance from one of its page's forms: to the job's page, or back with the errors."""
    try:
        with services().store.session() as s:
            job = start(s, isvc.get(s, name))
            audit.record(s, actor(), action, "instance", name, detail=f"job {job.id}")
            job_id = job.id
    except NotFound:
        abort(404, f"There is no instance {name!r}.")
    except (Invalid, Conflict) as exc:
        record_failure(action, "instance", name, exc)
        return None, exc
    except psycopg.Error as exc:
        record_failure(action, "instance", name, exc)
        return None, Conflict(db_error_message(exc))
    return redirect(url_for("ui.job", job_id=job_id)), None


def _apply_change(name: str, form, invalid_field, **changes):
    """Queue a settings/sizes job: its page, or None with the error beside invalid_field (a setting's name or
    value) or the field it names."""
    svc = services()
    done, exc = _change_instance(name, "instance.settings", lambda s, inst: ssvc.change(
        s, svc.box, inst, current_user.username, **changes))
    if done is None:
        if invalid_field is not None and isinstance(exc, Invalid):
            invalid_field.errors = [*invalid_field.errors, exc.message]
        else:
            form_error(form, exc)
    return done


@bp.post("/instances/<name>/settings")
@admin_required
def instance_settings(name):
    form = forms.InstanceSettingsForm(prefix="set")
    if form.validate_on_submit() and (wanted := form.parsed()) is not None:
        managed = {k.lower(): (v.get("value") if isinstance(v, dict) else v)
                   for k, v in ((_instance_or_404(name).meta or {}).get("settings") or {}).items()}
        changes = {k: v for k, v in wanted.items() if managed.get(k) != v}
        changes.update({k: None for k in managed if k not in wanted})
        if not changes:
            form.settings.errors = [*form.settings.errors, "Nothing changed: edit a line, add one or remove one."]
        elif done := _apply_change(name, form, form.settings, settings=changes):
            return done
    return instance(name, status=422, settings_form=form)


@bp.post("/instances/<name>/sizes")
@admin_required
def instance_sizes(name):
    form = forms.InstanceSizesForm(prefix="size")
    if form.validate_on_submit():
        inst = _instance_or_404(name)
        current = {"cpus": inst.cpus, "memory_mb": inst.memory_mb, "storage_gb": inst.storage_gb}
        wanted = {"cpus": float(form.cpus.data) if form.cpus.data is not None else None,
                  "memory_mb": form.memory_mb.data, "storage_gb": form.storage_gb.data}
        changes = {k: v for k, v in wanted.items() if v is not None and v != current[k]}
        if not changes:
            form.form_errors.append("Nothing changed: give a new CPU, memory or storage size (a size cannot be "
                                    "removed once set).")
        elif done := _apply_change(name, form, None, **changes):
            return done
    return instance(name, status=422, sizes_form=form)


@bp.post("/instances/<name>/access")
@admin_required
def instance_access(name):
    """Open the instance to every user, or restrict it to the named ones."""
    form = forms.InstanceAccessForm(prefix="acc")
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                users = access.set_access(s, isvc.get(s, name), None if form.open_to_all.data else form.usernames())
                audit.record(s, actor(), "instance.access", "instance", name, detail=access.describe(users))
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        except Invalid as exc:
            record_failure("instance.access", "instance", name, exc)
            form_error(form, exc)
        else:
            flash(f"Instance {name} is now {access.describe(users)}.", "success")
            return redirect(url_for("ui.instance", name=name))
    return instance(name, status=422, access_form=form)


@bp.post("/instances/<name>/restart")
@admin_required
def instance_restart(name):
    form = forms.EmptyForm(prefix="restart")
    if not form.validate_on_submit():
        abort(400)
    done, exc = _change_instance(name, "instance.restart", lambda s, inst: ssvc.restart(s, inst, current_user.username))
    if done:
        return done
    form.form_errors.append(exc.message)
    return instance(name, status=409, restart_form=form)


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
        rows = jobsvc.list_jobs(s, request.args.get("instance") or None,
                                created_by=None if current_user.is_admin else current_user.username)
    return render_template("ui/jobs.html", jobs=rows)


def _retryable(s, j) -> bool:
    if not current_user.is_admin:
        return False
    try:
        jobsvc.check_retryable(s, j)
    except Conflict:
        return False
    return True


@bp.get("/jobs/<int:job_id>")
@login_required
def job(job_id, status=200, action_error=None):
    revealed = pop_reveal("job", str(job_id))
    with services().store.session() as s:
        j = _visible_job(s, job_id)
        events = jobsvc.events_after(s, j.id, 0)
        retry_of = (j.params or {}).get("retry_of")
        page = render_template("ui/job.html", job=j, events=[_event_dict(e) for e in events],
                               failures=_failures(j, events), terminal=j.status in TERMINAL, revealed=revealed,
                               last_id=events[-1].id if events else 0, retryable=_retryable(s, j),
                               retry_of=retry_of if isinstance(retry_of, int) else None,
                               action_form=forms.EmptyForm(prefix="job"), action_error=action_error)
    return page, status


@bp.post("/jobs/<int:job_id>/cancel")
@login_required
def job_cancel(job_id):
    if not forms.EmptyForm(prefix="job").validate_on_submit():
        abort(400)
    try:
        with services().store.session() as s:
            j = _visible_job(s, job_id)
            jobsvc.cancel(s, j, current_user.username, on_queued_cancel=isvc.on_queued_cancel)
            audit.record(s, actor(), "job.cancel", "job", str(j.id), detail=f"{j.kind}, was {j.status}")
    except Conflict as exc:
        record_failure("job.cancel", "job", str(job_id), exc)
        return job(job_id, status=409, action_error=exc.message)
    return redirect(url_for("ui.job", job_id=job_id))


@bp.post("/jobs/<int:job_id>/retry")
@admin_required
def job_retry(job_id):
    if not forms.EmptyForm(prefix="job").validate_on_submit():
        abort(400)
    try:
        with services().store.session() as s:
            new = retries.retry_job(s, _visible_job(s, job_id), current_user.username)
            audit.record(s, actor(), "job.retry", "job", str(job_id), detail=f"job {new.id} ({new.kind})")
            new_id = new.id
    except (Conflict, NotFound) as exc:
        record_failure("job.retry", "job", str(job_id), exc)
        return job(job_id, status=409, action_error=exc.message)
    return redirect(url_for("ui.job", job_id=new_id))


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
                "cancel_requested": bool(j.cancel_requested),
                "download_url": url_for("ui.job_dump", job_id=j.id)
                if j.kind == "database_dump" and j.status == "succeeded" else None,
                "retryable": j.status in TERMINAL and _retryable(s, j),
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
    limits = services().capacity_defaults()
    with services().store.session() as s:
        owned = accounts.database_counts(s)
        rows = [{"username": u.username, "is_admin": u.is_admin, "created_at": u.created_at,
                 "databases": owned.get(u.id, 0), "allowance": capacity.allowance(u, limits)}
                for u in accounts.list_users(s)]
    return render_template("ui/users.html", form=form, users=rows, created=created)


@bp.route("/users/<username>", methods=["GET", "POST"])
@admin_required
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
                    requester = accounts.get_user(s, current_user.username)
                    dropper = ((lambda db: dbsvc.drop(s, svc.box, actor(), db))
                               if dbs and choice == "delete" else None)
                    dropped = accounts.delete_user(s, requester, username, transfer_to=transfer,
                                                   drop_databases=dropper)
                    detail = (f"databases transferred to {transfer}" if transfer else
                              f"{len(dropped)} database(s) deleted" if dropped else "")
                    audit.record(s, actor(), "user.delete", "user", username, detail=detail)
            except (Conflict, Invalid, NotFound) as exc:
                record_failure("user.delete", "user", username, exc)
                form_error(form, exc)
            except psycopg.Error as exc:
                record_failure("user.delete", "user", username, exc)
                form.form_errors.append(db_error_message(exc))
            else:
                flash(f"User {username} was deleted" + (f"; {detail}." if detail else "."), "success")
                return redirect(url_for("ui.users"))
    return (render_template("ui/user.html", u=info, databases=dbs, form=form, cap=cap, allowance_form=allowance_form),
            422 if form.is_submitted() else 200)


@bp.post("/users/<username>/allowance")
@admin_required
def user_allowance(username):
    """Set the user's storage allowance and maximum number of databases (empty: the configured default)."""
    form = forms.AllowanceForm(prefix="allow")
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                u = accounts.get_user(s, username)
                changed = capacity.set_allowance(u, storage_allowance_mb=form.storage_allowance_mb.data,
                                                 max_databases=form.max_databases.data)
                audit.record(s, actor(), "user.allowance", "user", username, detail=", ".join(changed))
        except NotFound:
            abort(404, f"There is no user {username!r}.")
        except Invalid as exc:
            record_failure("user.allowance", "user", username, exc)
            form_error(form, exc)
        else:
            flash(f"The allowance of {username} was saved.", "success")
            return redirect(url_for("ui.user", username=username))
    return user(username, allowance_form=form)


@bp.get("/audit")
@admin_required
def audit_log():
    form = forms.AuditFilterForm(request.args)
    with services().store.session() as s:
        events = audit.list_events(s, 200, (form.actor.data or "").strip() or None,
                                   (form.object.data or "").strip() or None)
    return render_template("ui/audit.html", form=form, events=events)

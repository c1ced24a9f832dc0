"""Tenant databases on the website: "My databases" (with the dumps of deleted ones to restore), the create form,
and each database's page: its URIs, live figures, settings, a new password, dumps, restores and deletion."""
from __future__ import annotations

import psycopg
from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from wtforms.fields.choices import SelectChoice

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound, ServiceError
from webapp.services import access, accounts, capacity, dumps
from webapp.services import databases as dbsvc
from webapp.ui import bp, forms
from webapp.ui.common import (actor, database_or_404, db_error_message, pop_reveal, record_failure, refuse,
                              reveal_once, tls_view)


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
        final_dumps = [{"instance": d.instance_name, "name": d.database_name, "deleted_at": d.created_at,
                        "expires_at": d.expires_at, "size_bytes": d.size_bytes,
                        "exists": (d.instance_name, d.database_name) in existing}
                       for d in dbsvc.restorable_dumps(s, actor())]
        mine = [d.id for d in dbs if d.owner_id == current_user.user_id]  # measured above: no second round
        cap = capacity.capacity(s, accounts.get_user(s, current_user.username), svc.capacity_defaults(),
                                live_stats=lambda owned: {i: stats[i] for i in mine if i in stats})
    return render_template("ui/databases.html", rows=rows, dumps=final_dumps,
                           restore_form=forms.EmptyForm(prefix="restore"), cap=cap)


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
            refuse(form, "database.restore", "database", f"{instance}/{name}", exc)
        else:
            return redirect(url_for("ui.job", job_id=job_id))
    return _render_database(instance, name, upload_form=form, status=422)


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
        except (Invalid, Conflict, NotFound, psycopg.Error) as exc:
            refuse(form, "database.create", "database", f"{form.instance.data}/{name}", exc)
        else:
            reveal_once("database", f"{form.instance.data}/{name}", password, reason="created")
            return redirect(url_for("ui.database", instance=form.instance.data, name=name))
    return render_template("ui/database_new.html", form=form, has_instances=bool(names))


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours" if hours >= 2 else f"{seconds / 60:g} minutes"


def _render_database(instance: str, name: str, edit_form=None, delete_form=None, upload_form=None,
                     status: int = 200):
    svc = services()
    revealed = pop_reveal("database", f"{instance}/{name}")
    with svc.store.session() as s:
        db = database_or_404(s, instance, name)
        stats = dbsvc.live_stats(svc.box, [db]).get(db.id) if db.instance.status == "available" else None
        uri, ro_uri = dbsvc.uris(db)
        if edit_form is None:
            edit_form = forms.DatabaseEditForm(formdata=None, quota_mb=db.quota_mb,
                                               connection_limit=db.connection_limit,
                                               parameters="\n".join(f"{k} = {v}" for k, v in
                                                                    sorted((db.parameters or {}).items())))
        page = render_template("ui/database.html", db=db, instance=db.instance, owner=db.owner.username,
                               stats=stats, uri=uri, ro_uri=ro_uri, revealed=revealed, edit_form=edit_form,
                               tls=tls_view(db.instance),
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
                db = database_or_404(s, instance, name)
                changes = {k: v for k, v in params.items() if (db.parameters or {}).get(k) != v}
                changes.update({k: None for k in (db.parameters or {}) if k not in params})
                dbsvc.update(s, svc.box, actor(), db, quota_mb=form.quota_mb.data,
                             connection_limit=form.connection_limit.data, parameters=changes,
                             limits=svc.capacity_defaults())
        except (Invalid, Conflict, psycopg.Error) as exc:
            refuse(form, "database.update", "database", f"{instance}/{name}", exc)
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
            password = dbsvc.set_password(s, svc.box, actor(), database_or_404(s, instance, name))
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

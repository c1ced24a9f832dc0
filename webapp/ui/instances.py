"""Instances on the website (administrators): the list, the create form, and the forms on each instance's page
(settings, sizes, access, restart, delete); each change starts a job and goes to its page, or draws the instance
page again with the service's refusal beside the form. The page itself is instance_page.py's; the CA
certificate is for anyone who may see the instance."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import login_required

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound
from webapp.services import access, certificates, livestate
from webapp.services import instances as isvc
from webapp.services import jobs as jobsvc
from webapp.services import settings as ssvc
from webapp.ui import bp, forms, instance_page
from webapp.ui.common import (actor, admin_required, form_error, instance_or_404, record_failure, refuse,
                              reveal_once, start_instance_job)


@bp.get("/instances")
@admin_required
def instances():
    svc = services()
    with svc.store.session() as s:
        insts = isvc.list_all(s)
        states = livestate.read(s, insts, float(svc.config["PROBE_TIMEOUT"]), live=request.args.get("live") == "1")
        jobs = jobsvc.active_jobs(s, [i.name for i in insts])
        rows = [instance_page.instance_view(i, *states.get(i.name, (None, None)), active_job=jobs.get(i.name))
                for i in insts]
        oldest = max((age for _st, age in states.values()), default=None)
    return render_template("ui/instances.html", rows=rows, oldest=oldest)


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
@admin_required(operation=("instance.create", "instance", "name"))
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
                    admin_database=(form.admin_database.data or "").strip() or None, actor=actor(),
                    cert_days=int(svc.config["TLS_CERT_DAYS"]))
                job_id, admin_user = job.id, inst.admin_user
        except (Invalid, Conflict) as exc:
            refuse(form, "instance.create", "instance", name, exc)
        else:
            if not form.admin_password.data:  # a password the admin typed is not shown back
                reveal_once("job", str(job_id), admin_password, user=admin_user, instance=name)
            return redirect(url_for("ui.job", job_id=job_id))
    return render_template("ui/instance_new.html", form=form)


@bp.get("/instances/<name>")
@admin_required
def instance(name):
    return instance_page.render(name)


def _detached_instance(name: str):
    with services().store.session() as s:
        inst = instance_or_404(s, name)
        s.expunge(inst)
        return inst


def _apply_change(name: str, form, invalid_field, **changes):
    """Queue a settings/sizes job: its page, or None with the error beside invalid_field (a setting's name or
    value) or the field it names."""
    svc = services()
    done, exc = start_instance_job(name, "instance.settings", lambda s, inst, who: ssvc.change(
        s, svc.box, inst, who, **changes))
    if done is None:
        if invalid_field is not None and isinstance(exc, Invalid):
            invalid_field.errors = [*invalid_field.errors, exc.message]
        else:
            form_error(form, exc)
    return done


@bp.post("/instances/<name>/settings")
@admin_required(operation=("instance.settings", "instance", "name"))
def instance_settings(name):
    form = forms.InstanceSettingsForm(prefix="set")
    if form.validate_on_submit() and (wanted := form.parsed()) is not None:
        managed = {k.lower(): v for k, v in instance_page.managed_settings(_detached_instance(name)).items()}
        changes = {k: v for k, v in wanted.items() if managed.get(k) != v}
        changes.update({k: None for k in managed if k not in wanted})
        if not changes:
            form.settings.errors = [*form.settings.errors, "Nothing changed: edit a line, add one or remove one."]
        elif done := _apply_change(name, form, form.settings, settings=changes):
            return done
    return instance_page.render(name, status=422, settings_form=form)


@bp.post("/instances/<name>/sizes")
@admin_required(operation=("instance.settings", "instance", "name"))
def instance_sizes(name):
    form = forms.InstanceSizesForm(prefix="size")
    if form.validate_on_submit():
        inst = _detached_instance(name)
        current = {"cpus": inst.cpus, "memory_mb": inst.memory_mb, "storage_gb": inst.storage_gb}
        wanted = {"cpus": float(form.cpus.data) if form.cpus.data is not None else None,
                  "memory_mb": form.memory_mb.data, "storage_gb": form.storage_gb.data}
        changes = {k: v for k, v in wanted.items() if v is not None and v != current[k]}
        if not changes:
            form.form_errors.append("Nothing changed: give a new CPU, memory or storage size (a size cannot be "
                                    "removed once set).")
        elif done := _apply_change(name, form, None, **changes):
            return done
    return instance_page.render(name, status=422, sizes_form=form)


@bp.post("/instances/<name>/access")
@admin_required(operation=("instance.access", "instance", "name"))
def instance_access(name):
    """Open the instance to every user, or restrict it to the named ones."""
    form = forms.InstanceAccessForm(prefix="acc")
    if form.validate_on_submit():
        try:
            with services().store.session() as s:
                users = access.set_access(s, actor(), isvc.get(s, name),
                                          None if form.open_to_all.data else form.usernames())
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        except Invalid as exc:
            refuse(form, "instance.access", "instance", name, exc)
        else:
            flash(f"Instance {name} is now {access.describe(users)}.", "success")
            return redirect(url_for("ui.instance", name=name))
    return instance_page.render(name, status=422, access_form=form)


@bp.post("/instances/<name>/restart")
@admin_required(operation=("instance.restart", "instance", "name"))
def instance_restart(name):
    form = forms.EmptyForm(prefix="restart")
    if not form.validate_on_submit():
        abort(400)
    done, exc = start_instance_job(name, "instance.restart", ssvc.restart)
    if done:
        return done
    form.form_errors.append(exc.message)
    return instance_page.render(name, status=409, restart_form=form)


@bp.post("/instances/<name>/delete")
@admin_required(operation=("instance.delete", "instance", "name"))
def instance_delete(name):
    form = forms.ConfirmDeleteForm(prefix="del")
    if form.validate_on_submit():
        if form.confirm.data.strip() != name:
            form.confirm.errors = [*form.confirm.errors, f"Type {name} exactly to delete this instance."]
        else:
            force = bool(form.force.data)
            try:
                with services().store.session() as s:
                    job_id = isvc.delete(s, name, actor(), force=force).id
            except NotFound:
                abort(404)
            except Conflict as exc:
                record_failure("instance.delete", "instance", name, exc)
                form.form_errors.append(exc.message)
            else:
                return redirect(url_for("ui.job", job_id=job_id))
    return instance_page.render(name, delete_form=form, status=422)

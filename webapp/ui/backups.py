"""Backups on the website (administrators): the instance page's Backups section starts a backup now, restores the
instance in place (after the name is typed again) or changes the schedule and retention; each goes to the job's
page (or back to the page), or draws the instance page again with the service's refusal beside the form. Thin views
over services.backups; the section's content (the list and the recoverable window) is built with the page, in
instance_page.py."""
from __future__ import annotations

from flask import abort, flash, redirect, url_for

from webapp.extensions import services
from webapp.services import Conflict, Invalid, NotFound
from webapp.services import backups as bsvc
from webapp.ui import bp, forms, instance_page
from webapp.ui.common import actor, admin_required, form_error, refuse, start_instance_job


@bp.post("/instances/<name>/backups")
@admin_required(operation=("instance.backup", "instance", "name"))
def instance_backup(name):
    form = forms.BackupStartForm(prefix="bk")
    if not form.validate_on_submit():
        abort(400)
    done, exc = start_instance_job(name, "instance.backup",
                                   lambda s, inst, who: bsvc.start_backup(s, who, inst.name, form.type.data))
    if done:
        return done
    form_error(form, exc)
    return instance_page.render(name, status=422 if isinstance(exc, Invalid) else 409, backup_form=form)


@bp.post("/instances/<name>/restore")
@admin_required(operation=("instance.restore", "instance", "name"))
def instance_restore(name):
    form, status = forms.RestoreForm(prefix="rs"), 422
    if form.validate_on_submit():
        target = (form.target_time.data or "").strip() or None
        done, exc = start_instance_job(name, "instance.restore", lambda s, inst, who: bsvc.start_restore(
            s, who, inst.name, target, form.confirm.data.strip())[0])
        if done:
            return done
        if isinstance(exc, Invalid) and exc.details.get("field") in ("target_time", "confirm"):
            getattr(form, exc.details["field"]).errors = [exc.message]
        else:
            form_error(form, exc)
            status = 409 if isinstance(exc, Conflict) else 422
    return instance_page.render(name, status=status, restore_form=form)


@bp.post("/instances/<name>/backup_policy")
@admin_required(operation=("instance.backup_policy", "instance", "name"))
def instance_backup_policy(name):
    form = forms.BackupPolicyForm(prefix="bp")
    if form.validate_on_submit():
        data = {k: getattr(form, k).data for k in ("full_every_days", "diff_every_days", "retention_type",
                                                   "retention_full")}
        try:
            with services().store.session() as s:
                bsvc.update_policy(s, actor(), name, data)
        except NotFound:
            abort(404, f"There is no instance {name!r}.")
        except (Invalid, Conflict) as exc:
            refuse(form, "instance.backup_policy", "instance", name, exc)
        else:
            flash(f"The backup policy of {name} is saved.", "success")
            return redirect(url_for("ui.instance", name=name) + "#backups")
    return instance_page.render(name, status=422, backup_policy_form=form)

"""Failover on the website (administrators): the forms of the instance page's failover section start a
switchover, a forced failover or the rebuild of a standby; each goes to its job's page, or draws the instance page
again with the service's refusal beside the form. Thin views over services.failover; the section's content (the
primary changes, each member's state) is built with the page, in instance_page.py."""
from __future__ import annotations

from flask import abort

from webapp.extensions import services
from webapp.services import Invalid
from webapp.services import failover as fsvc
from webapp.ui import bp, forms, instance_page
from webapp.ui.common import admin_required, form_error, start_instance_job


def _timeout() -> float:
    return float(services().config["PROBE_TIMEOUT"])


def _start(name: str, action: str, start, form, field: str | None, **override):
    """Queue the job and go to its page; or the instance page again with the refusal beside the form."""
    done, exc = start_instance_job(name, action, start)
    if done:
        return done
    form_error(form, exc, {field: field} if field else None)
    return instance_page.render(name, status=422 if isinstance(exc, Invalid) else 409, **override)


@bp.post("/instances/<name>/switchover")
@admin_required(operation=("instance.switchover", "instance", "name"))
def instance_switchover(name):
    form = forms.SwitchoverForm(prefix="sw")
    if not form.validate_on_submit():
        abort(400)
    candidate = form.candidate.data or None
    return _start(name, "instance.switchover",
                  lambda s, inst, who: fsvc.switchover(s, inst, who, candidate, _timeout()),
                  form, "candidate", switchover_form=form)


@bp.post("/instances/<name>/failover")
@admin_required(operation=("instance.failover", "instance", "name"))
def instance_failover(name):
    form = forms.FailoverForm(prefix="fo")
    if not form.validate_on_submit():
        abort(400)
    candidate = form.candidate.data or None
    return _start(name, "instance.failover",
                  lambda s, inst, who: fsvc.failover(s, inst, who, candidate, _timeout()),
                  form, "candidate", failover_form=form)


@bp.post("/instances/<name>/members/<member>/rebuild")
@admin_required(operation=("instance.rebuild", "instance", "name"))
def instance_rebuild(name, member):
    form = forms.RebuildForm(prefix=forms.RebuildForm.prefix_for(member))
    if not form.validate_on_submit():
        abort(400)
    provider = services().provider
    return _start(name, "instance.rebuild",
                  lambda s, inst, who: fsvc.rebuild(s, provider, inst, who, member, _timeout()),
                  form, None, rebuild_form=form)

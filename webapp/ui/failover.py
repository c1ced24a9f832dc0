"""Failover pages of the website (admins): the history of primary changes on the instance page, and the forms that
start a switchover, a forced failover or the rebuild of a standby; each goes to its job's page, or back to the
instance page with the service's refusal beside the form. Thin views over services.failover.

The forms live here rather than in forms.py: they belong to this section only, and webapp/ui/forms.py is the
rest of the website's."""
from __future__ import annotations

from flask import abort
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from webapp.extensions import services
from webapp.services import Invalid, NotFound
from webapp.services import failover as fsvc
from webapp.services import instances as isvc
from webapp.ui import bp
from webapp.ui import views
from webapp.ui.views import admin_required, form_error

AUTOMATIC = ""


class SwitchoverForm(FlaskForm):
    candidate = SelectField("New primary", choices=[], validate_choice=False,
                            description="In synchronous mode Patroni accepts only the synchronous standby.")


class FailoverForm(FlaskForm):
    candidate = SelectField("Standby to promote", choices=[], validate_choice=False)


class RebuildForm(FlaskForm):
    """A button per standby: only the CSRF token; the member is in the URL."""


def _rebuild_prefix(member: str) -> str:
    return f"rb-{member}"


def _panel(v: dict, switchover_form=None, failover_form=None, rebuild_form=None, rebuild_member=None) -> dict:
    """What the instance page's failover section shows: recent primary changes, the forms, each member's state."""
    with services().store.session() as s:
        try:
            inst = isvc.get(s, v["name"])
        except NotFound:
            return {"changes": [], "members": []}
        changes = [{"at": c.at, "from": c.from_member, "to": c.to_member, "cause": c.cause, "timeline": c.timeline,
                    "lag_bytes": c.lag_bytes, "job_id": c.job_id, "reason": c.reason}
                   for c in fsvc.history(s, inst, limit=20)]
        lost = {m.name: m.lost_since for m in inst.members}
    primary = v["primary"].name if v.get("primary") else None
    standbys = [m for m in v["members"] if m.name != primary]
    sw = switchover_form or SwitchoverForm(prefix="sw", formdata=None)
    sw.candidate.choices = [SelectChoice(AUTOMATIC, "the synchronous standby, else the least lagging one")] + \
        [SelectChoice(m.name, f"{m.name} ({m.state})") for m in standbys]
    fo = failover_form or FailoverForm(prefix="fo", formdata=None)
    fo.candidate.choices = [SelectChoice(m.name, f"{m.name} ({m.state})") for m in standbys]
    members = [{"name": m.name, "state": m.state, "primary": m.name == primary, "lost_since": lost.get(m.name),
                "form": RebuildForm(prefix=_rebuild_prefix(m.name), formdata=None)} for m in v["members"]]
    return {"changes": changes, "switchover_form": sw, "failover_form": fo, "members": members,
            "rebuild_errors": rebuild_form.form_errors if rebuild_form is not None else [],
            "rebuild_after": float(services().config["REBUILD_AFTER_SECONDS"])}


@bp.app_context_processor
def _failover_globals():
    return {"failover_panel": _panel}


def _timeout() -> float:
    return float(services().config["PROBE_TIMEOUT"])


def _start(name: str, action: str, start, form, field: str | None, **override):
    """Queue the job and go to its page; or the instance page again with the refusal beside the form."""
    done, exc = views._change_instance(name, action, start)
    if done:
        return done
    form_error(form, exc, {field: field} if field else None)
    return views.instance(name, status=422 if isinstance(exc, Invalid) else 409, **override)


@bp.post("/instances/<name>/switchover")
@admin_required
def instance_switchover(name):
    form = SwitchoverForm(prefix="sw")
    if not form.validate_on_submit():
        abort(400)
    candidate = form.candidate.data or None
    return _start(name, "instance.switchover",
                  lambda s, inst: fsvc.switchover(s, inst, current_user.username, candidate, _timeout()),
                  form, "candidate", switchover_form=form)


@bp.post("/instances/<name>/failover")
@admin_required
def instance_failover(name):
    form = FailoverForm(prefix="fo")
    if not form.validate_on_submit():
        abort(400)
    candidate = form.candidate.data or None
    return _start(name, "instance.failover",
                  lambda s, inst: fsvc.failover(s, inst, current_user.username, candidate, _timeout()),
                  form, "candidate", failover_form=form)


@bp.post("/instances/<name>/members/<member>/rebuild")
@admin_required
def instance_rebuild(name, member):
    form = RebuildForm(prefix=_rebuild_prefix(member))
    if not form.validate_on_submit():
        abort(400)
    provider = services().provider
    return _start(name, "instance.rebuild",
                  lambda s, inst: fsvc.rebuild(s, provider, inst, current_user.username, member, _timeout()),
                  form, None, rebuild_form=form, rebuild_member=member)

"""The audit log on the website (administrators): the newest events, filtered by actor and object."""
from __future__ import annotations

from flask import render_template, request

from webapp.extensions import services
from webapp.services import audit
from webapp.ui import bp, forms
from webapp.ui.common import admin_required


@bp.get("/audit")
@admin_required
def audit_log():
    form = forms.AuditFilterForm(request.args)
    with services().store.session() as s:
        events = audit.list_events(s, 200, (form.actor.data or "").strip() or None,
                                   (form.object.data or "").strip() or None)
    return render_template("ui/audit.html", form=form, events=events)

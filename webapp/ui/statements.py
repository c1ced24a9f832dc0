"""Query insights on the website: a database's top statements for its owner (and admins), with a reset; an
instance's over all its databases for admins (services/statements.py)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from flask_login import login_required

from webapp.extensions import services
from webapp.services import Conflict, Invalid, statements
from webapp.ui import bp, forms
from webapp.ui.common import actor, admin_required, database_or_404, instance_or_404, record_failure


def _page(title: str, load, db: str | None, back: str, reset_action: str | None):
    """load(session) -> the instance (404 for what the user may not see)."""
    svc = services()
    order = request.args.get("order") or "total_time"
    error, found = None, None
    with svc.store.session() as s:
        inst = load(s)
        try:
            found = statements.top(s, svc.box, inst, db, request.args.get("limit"), order)
        except (Conflict, Invalid) as exc:
            error = exc.message
    return render_template("ui/statements.html", title=title, instance=inst.name, database=db, found=found,
                           error=error, order=order, orders=list(statements.ORDERS), back=back,
                           reset_action=reset_action, reset_form=forms.EmptyForm(prefix="reset"))


@bp.get("/instances/<instance>/databases/<name>/statements")
@login_required
def database_statements(instance, name):
    return _page(f"Top statements of {name}", lambda s: database_or_404(s, instance, name).instance, name, url_for("ui.database", instance=instance, name=name),
                 url_for("ui.database_statements_reset", instance=instance, name=name))


@bp.post("/instances/<instance>/databases/<name>/statements/reset")
@login_required
def database_statements_reset(instance, name):
    svc = services()
    if not forms.EmptyForm(prefix="reset").validate_on_submit():
        abort(400)
    try:
        with svc.store.session() as s:
            db = database_or_404(s, instance, name)
            statements.reset(s, svc.box, actor(), db.instance, db.name)
    except Conflict as exc:
        record_failure("database.statements_reset", "database", f"{instance}/{name}", exc)
        flash(f"Nothing was reset: {exc.message}", "error")
    else:
        flash("Statement statistics reset.", "success")
    return redirect(url_for("ui.database_statements", instance=instance, name=name))


@bp.get("/instances/<name>/statements")
@admin_required
def instance_statements(name):
    return _page(f"Top statements on {name}", lambda s: instance_or_404(s, name), None, url_for("ui.instance", name=name), None)

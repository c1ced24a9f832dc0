"""Monitoring pages of the website: charts on the database and instance pages (SVG drawn by the server, images
from these routes), report downloads for a period, the admin dashboard (a page whose script polls a JSON route
with the session cookie), alerts (a page, and a count in the navigation). Thin views over services.charts,
services.reports and services.alerts."""
from __future__ import annotations

from flask import Response, abort, render_template, request
from flask_login import current_user, login_required

from webapp.extensions import services
from webapp.services import NotFound
from webapp.services import alerts as alertsvc
from webapp.services import charts, reports, statements
from webapp.ui import bp
from webapp.ui.common import actor, admin_required, database_or_404, instance_or_404


def _alert_count() -> int:
    """Firing alerts as the workers last recorded them: the user's own databases', or all for an admin."""
    if not current_user.is_authenticated:
        return 0
    with services().store.session() as s:
        return alertsvc.firing_count(s, actor())


@bp.app_context_processor
def _monitoring_globals():
    return {"alert_count": _alert_count, "chart_periods": list(charts.PERIODS),
            "chart_period": lambda: charts.period(request.args.get("period"))[0],
            "database_charts": charts.DATABASE_CHARTS, "instance_charts": charts.INSTANCE_CHARTS}


def _svg(body: str) -> Response:
    resp = Response(body, mimetype="image/svg+xml")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _download(report, fmt: str) -> Response:
    body, mimetype, filename = reports.render(report, fmt)
    disposition = "inline" if fmt == "html" else "attachment"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'{disposition}; filename="{filename}"',
                             # the html report carries its own <style>: a sandboxed document, nothing else
                             "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                        "img-src data:; sandbox"})


def _format() -> str:
    fmt = request.args.get("format", "html")
    if fmt not in ("html", "pdf", "csv", "json"):
        abort(404, f"There is no report format {fmt!r}: html, pdf, csv or json.")
    return fmt


# -- charts and reports of a database ---------------------------------------------------------------------------
@bp.get("/instances/<instance>/databases/<name>/charts/<chart>.svg")
@login_required
def database_chart(instance, name, chart):
    _, start, end = charts.period(request.args.get("period"))
    with services().store.session() as s:
        database_or_404(s, instance, name)
        try:
            return _svg(charts.database_chart(s, instance, name, chart, start, end))
        except NotFound as exc:
            abort(404, exc.message)


@bp.get("/instances/<instance>/databases/<name>/report")
@login_required
def database_report(instance, name):
    fmt = _format()
    _, start, end = charts.period(request.args.get("period"))
    svc = services()
    with svc.store.session() as s:
        db = database_or_404(s, instance, name)
        report = reports.database_report(s, instance, name, start, end)
        report.statements = statements.for_report(s, svc.box, db.instance, db.name)
        return _download(report, fmt)


# -- charts and reports of an instance (administrators) -----------------------------------------------------------
@bp.get("/instances/<name>/charts/<chart>.svg")
@admin_required
def instance_chart(name, chart):
    _, start, end = charts.period(request.args.get("period"))
    with services().store.session() as s:
        instance_or_404(s, name)
        try:
            return _svg(charts.instance_chart(s, name, chart, start, end))
        except NotFound as exc:
            abort(404, exc.message)


@bp.get("/instances/<name>/report")
@admin_required
def instance_report(name):
    fmt = _format()
    _, start, end = charts.period(request.args.get("period"))
    with services().store.session() as s:
        instance_or_404(s, name)
        return _download(reports.instance_report(s, name, start, end), fmt)


# -- the admin dashboard ------------------------------------------------------------------------------------------
@bp.get("/dashboard")
@admin_required
def dashboard():
    return render_template("ui/dashboard.html", refresh_ms=3000)


@bp.get("/dashboard/data")
@admin_required
def dashboard_data():
    """JSON for the dashboard's poller (session auth): the newest sample of every instance and host."""
    svc = services()
    with svc.store.session() as s:
        return charts.dashboard(s, svc.provider)


# -- alerts ---------------------------------------------------------------------------------------------------------
@bp.get("/alerts")
@login_required
def alerts():
    svc = services()
    with svc.store.session() as s:
        live = alertsvc.visible(s, actor(), alertsvc.Thresholds.from_config(svc.config), svc.provider)
        since = {r.id: r.started_at for r in alertsvc.firing(s, actor())}
    rows = [{**a, "since": since.get(a["id"])} for a in
            sorted(live, key=lambda a: (a["severity"] != "critical", a["instance"], a["id"]))]
    return render_template("ui/alerts.html", alerts=rows)

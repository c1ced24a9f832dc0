"""Reports for a period (json, csv, html with inline SVG, pdf) and the alerts list: thin views over
services.reports and services.alerts."""
from flask import Response, request

from webapp.api import actor, auth_required, bp
from webapp.api.pagination import page, paged
from webapp.extensions import services
from webapp.services import alerts as alertsvc
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import metrics, reports, statements


def _args():
    fmt = reports.check_format(request.args.get("format"))
    start, end = metrics.parse_range(request.args.get("from"), request.args.get("to"))
    return fmt, start, end


def _send(report, fmt):
    body, mimetype, filename = reports.render(report, fmt)
    disposition = "inline" if fmt in ("json", "html") else "attachment"
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'{disposition}; filename="{filename}"'})


@bp.get("/instances/<instance>/databases/<name>/report")
@auth_required()
def database_report(instance, name):
    fmt, start, end = _args()
    svc = services()
    with svc.store.session() as s:
        db = dbsvc.get(s, actor(), instance, name)  # 404 for someone else's
        report = reports.database_report(s, instance, name, start, end)
        report.statements = statements.for_report(s, svc.box, db.instance, db.name)
        return _send(report, fmt)


@bp.get("/instances/<name>/report")
@auth_required(admin=True)
def instance_report(name):
    fmt, start, end = _args()
    with services().store.session() as s:
        isvc.get(s, name)
        return _send(reports.instance_report(s, name, start, end), fmt)


@bp.get("/alerts")
@auth_required()
def list_alerts():
    """Alerts firing now, from the newest samples: admins see all, a user those of their own databases."""
    pg = page()
    with services().store.session() as s:
        alerts = alertsvc.visible(s, actor(), alertsvc.Thresholds.from_config(services().config), services().provider)
        return paged("alerts", pg.slice(alerts), pg, dict)

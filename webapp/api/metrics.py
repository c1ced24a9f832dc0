from flask import Response, request

from webapp.api import actor, auth_required, bp
from webapp.extensions import services
from webapp.services import databases as dbsvc
from webapp.services import instances as isvc
from webapp.services import metrics


def _range():
    return metrics.parse_range(request.args.get("from"), request.args.get("to"))


@bp.get("/instances/<instance>/databases/<name>/metrics")
@auth_required()
def database_metrics(instance, name):
    start, end = _range()
    with services().store.session() as s:
        dbsvc.get(s, actor(), instance, name)  # 404 for someone else's
        return {"instance": instance, "database": name, "from": start.isoformat(), "to": end.isoformat(),
                "points": metrics.database_series(s, instance, name, start, end)}


@bp.get("/instances/<name>/metrics")
@auth_required(admin=True)
def instance_metrics(name):
    start, end = _range()
    with services().store.session() as s:
        isvc.get(s, name)
        return {"instance": name, "from": start.isoformat(), "to": end.isoformat(),
                "points": metrics.instance_series(s, name, start, end)}


@bp.get("/admin/usage")
@auth_required(admin=True)
def usage():
    """The newest sample of every instance (members, containers) and database."""
    with services().store.session() as s:
        insts = metrics.latest_instance_samples(s)
        dbs = metrics.latest_database_samples(s)
        return {
            "instances": [{"instance": n, "at": r.at.isoformat(), "healthy": r.healthy,
                           "connections": r.connections, "max_connections": r.max_connections,
                           "timeline": r.timeline, "max_lag_bytes": r.max_lag_bytes,
                           "max_lag_seconds": r.max_lag_seconds, **(r.detail or {})} for n, r in sorted(insts.items())],
            "databases": [{"instance": p[0].instance_name, "database": p[0].database_name,
                           "at": p[0].at.isoformat(), "size_bytes": p[0].size_bytes,
                           "connections": p[0].numbackends, "quota_mb": p[0].quota_mb} for p in dbs],
        }


@bp.get("/metrics")
@auth_required(admin=True)
def prometheus_api():
    with services().store.session() as s:
        return Response(metrics.prometheus_text(s), mimetype="text/plain; version=0.0.4")

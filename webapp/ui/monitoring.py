"""Monitoring pages of the website: charts on the database and instance pages, the admin dashboard (live, polled
JSON), alerts. Thin views over services.metrics, services.reports and services.alerts."""
from __future__ import annotations

from flask import render_template
from flask_login import login_required

from webapp.ui import bp
from webapp.ui.views import admin_required


@bp.app_context_processor
def _monitoring_globals():
    return {"alert_count": lambda: 0}


@bp.get("/dashboard")
@admin_required
def dashboard():
    return render_template("ui/dashboard.html")


@bp.get("/alerts")
@login_required
def alerts():
    return render_template("ui/alerts.html", alerts=[])

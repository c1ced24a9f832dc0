"""The website: server-rendered pages (Jinja) over the same services as the JSON API, Flask-Login sessions,
Flask-WTF forms (CSRF on every form). No CDN: one hand-written CSS file and one small script live in static/."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui/static")

from webapp.ui import failover, hosts, monitoring, views  # noqa: E402,F401

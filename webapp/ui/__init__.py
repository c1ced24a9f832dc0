"""The website: server-rendered pages (Jinja) over the same services as the JSON API, Flask-Login sessions,
Flask-WTF forms (CSRF on every form, all in forms.py). No CDN: one hand-written CSS file and one small script live
in static/. One module per area registers its pages on this blueprint; common.py holds what they share."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui/static")

from webapp.ui import (audit, auth, databases, failover, hosts, instances, jobs, monitoring,  # noqa: E402,F401
                       tokens, users)
from webapp.ui import backups  # noqa: E402,F401
from webapp.ui import statements  # noqa: E402,F401

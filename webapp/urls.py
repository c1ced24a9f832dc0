"""Where the control plane answers: the JSON API's URL prefix, for the API blueprint and for the website's pages that
show clients where to point (neither face imports the other)."""
from __future__ import annotations

API_PREFIX = "/api/v1"

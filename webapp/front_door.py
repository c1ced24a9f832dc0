"""What every request passes before a view: the proxy in front (X-Forwarded-* honoured only from PROXY_FIX_HOPS
proxies), the security headers of every answer (website and API alike), and the rate limits on logging in.

Rate limits (Flask-Limiter): failed logins on the website's /login and on POST /api/v1/tokens count together, per
client address and per username. Only a refused password counts (a 401 answer), so people who log in are never
limited; the limits are checked before the view runs, so once one is reached a try costs no password hash (scrypt,
about 32 MiB and tens of milliseconds each). The counters live in the metadata store by default (pgaas://,
webapp/store/ratelimit.py), so every process on one store shares them."""
from __future__ import annotations

import time

from flask import Flask, current_app, request
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

LOGIN_ENDPOINTS = ("ui.login", "api.create_token")
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def install(app: Flask, store) -> None:
    """After the blueprints are registered (the limits wrap their login views)."""
    hops = int(app.config["PROXY_FIX_HOPS"] or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)
    app.after_request(_security_headers)
    _install_limits(app, store)


def _security_headers(resp):
    # answers carry URIs, once-shown passwords and tokens, and live state: never from a cache or the back button
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if str(current_app.config["PUBLIC_URL"]).lower().startswith("https://"):
        resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return resp


# -- rate limits on logging in --------------------------------------------------------------------------------
def client_address() -> str:
    """The peer's address, or the client's as the trusted proxies say (PROXY_FIX_HOPS)."""
    return request.remote_addr or "unknown"


def submitted_username() -> str:
    """The username a login form or token request names ("(none)" when it names none: such a request is refused
    before any password is checked)."""
    data = request.get_json(silent=True) if request.is_json else request.form
    name = data.get("username") if hasattr(data, "get") else None
    return (name.strip().lower()[:64] if isinstance(name, str) else "") or "(none)"


def _refused(response) -> bool:
    return response.status_code == 401


def _install_limits(app: Flask, store) -> None:
    import webapp.store.ratelimit  # noqa: F401 (registers the pgaas:// storage scheme)

    uri = app.config["RATELIMIT_STORAGE_URI"]
    limiter = Limiter(key_func=client_address, storage_uri=uri, strategy="fixed-window",
                      storage_options={"store": store} if uri.startswith("pgaas:") else {}, headers_enabled=False)
    limiter.init_app(app)
    per_address = limiter.shared_limit(lambda: current_app.config["LOGIN_LIMIT_PER_ADDRESS"], "login-address",
                                       key_func=client_address, methods=["POST"], deduct_when=_refused,
                                       error_message="too many failed logins from your address")
    per_username = limiter.shared_limit(lambda: current_app.config["LOGIN_LIMIT_PER_USERNAME"], "login-username",
                                        key_func=submitted_username, methods=["POST"], deduct_when=_refused,
                                        error_message="too many failed logins for this username")
    for endpoint in LOGIN_ENDPOINTS:
        app.view_functions[endpoint] = per_username(per_address(app.view_functions[endpoint]))
    app.extensions["pgaas.limiter"] = limiter


def retry_after() -> int:
    """Seconds until the limit this request broke lets a try through again."""
    limit = current_app.extensions["pgaas.limiter"].current_limit
    return max(1, int(limit.reset_at - time.time())) if limit is not None else 60

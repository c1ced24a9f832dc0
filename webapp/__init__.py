"""pgaas control plane: create_app(test_config=None): config -> extensions -> blueprints -> error handlers."""
from __future__ import annotations

import os

from flask import Flask

from webapp import config as config_mod
from webapp.config import REPO_ROOT


def create_app(test_config: dict | None = None) -> Flask:
    instance_path = (test_config or {}).get("INSTANCE_PATH") or os.environ.get("PGAAS_INSTANCE_PATH") \
        or str(REPO_ROOT / "instance")
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    from webapp.uploads import PgaasRequest

    app.request_class = PgaasRequest  # a larger body limit for dump uploads only
    config_mod.load(app, test_config)

    from webapp.extensions import Services, csrf, login_manager
    from webapp.providers import get_provider
    from webapp.services import certificates
    from webapp.services.crypto import SecretBox
    from webapp.store import Store

    store = Store(app.config["DATABASE_URL"])
    if app.config.get("AUTO_MIGRATE", True):
        store.upgrade()
    box = SecretBox(app.config["ENCRYPTION_KEY"])
    certificates.register(box, app.config["TLS_CA_EXPORT_DIR"])
    app.extensions["pgaas"] = Services(
        store=store, box=box,
        provider=get_provider(app.config["PROVIDER"], app.config, store=store, box=box), config=app.config,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    from webapp.ui.auth import load_user

    login_manager.user_loader(load_user)
    login_manager.login_view = "ui.login"
    login_manager.login_message = "Log in to see this page."
    login_manager.login_message_category = "info"

    from webapp.api import bp as api_bp

    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    from webapp.api.metrics import prometheus_api

    app.add_url_rule("/metrics", "prometheus", prometheus_api)  # where Prometheus looks by default
    from webapp.ui import bp as ui_bp

    app.register_blueprint(ui_bp)

    from webapp import front_door
    from webapp.errors import register as register_errors

    front_door.install(app, store)
    register_errors(app)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app

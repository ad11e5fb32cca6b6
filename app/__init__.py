"""Scheduler: a self-hosted scheduling service. `create_app` is the application factory."""

from __future__ import annotations

import os
from typing import Any

from flask import Config, Flask, redirect, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import config as config_module
from app.clock import Clock, SystemClock
from app.database import configure_engine, db, engine_options
from app.extensions import csrf
from app.ratelimit import limiter

MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "migrations")


def create_app(test_config: dict[str, Any] | None = None, *, migrations: bool = True) -> Flask:
    """migrations: register Flask-Migrate (the `flask db` commands, and what `upgrade()`
    needs); an app that only serves requests goes without it, and without importing alembic."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    from_file = Config(app.instance_path)
    from_file.from_pyfile("config.py", silent=True)
    app.config.from_mapping(config_module.FLASK_DEFAULTS | from_file)
    app.config.from_mapping(config_module.settings(from_file, test_config or {}))
    if test_config:
        app.config.from_mapping(test_config)  # and what is not a setting (CLOCK, TESTING)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = config_module.instance_secret_key(app.instance_path)
    url = config_module.database_url(app.config, app.instance_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(url))
    app.extensions["clock"] = app.config.get("CLOCK") or SystemClock()
    app.session_interface = SessionInterface()
    if app.config.get("TRUST_PROXY"):
        # Behind a TLS-terminating proxy: believe its X-Forwarded-Proto/-For/-Host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    db.init_app(app)
    if migrations:
        from flask_migrate import Migrate

        Migrate(app, db, directory=MIGRATIONS)
    with app.app_context():
        configure_engine(db.engine)

    from app import auth, cli, logs, problems
    from app.api import bp as api_bp
    from app.ui import bp as ui_bp

    logs.init_app(app)  # first: a request's time counts everything else
    problems.register(app)
    app.before_request(auth.refuse_unguarded_remote)
    limiter.init_app(app)
    csrf.init_app(app)
    csrf.exempt(api_bp)  # the JSON API carries no cookies to forge; it uses API keys
    app.register_blueprint(api_bp)
    app.register_blueprint(ui_bp)
    cli.register(app)

    @app.get("/")
    def home() -> Any:
        return redirect("/ui/")

    return app


def clock_of(app: Flask) -> Clock:
    clock: Clock = app.extensions["clock"]
    return clock


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Without a session cookie there is nothing to verify: no signer is built (most API
        # requests carry none, and building one costs more than the rest of this).
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

"""The retention CRM: `create_app()` is the only way to get an app (web, worker, CLI, tests)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from crm import config as config_module
from crm.extensions import babel, csrf, db, htmx, limiter, login, migrate, redis


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment, with `config` overriding single keys (tests)."""
    settings = config_module.load()
    settings.update(config or {})
    app = Flask(__name__, instance_path=settings["INSTANCE_DIR"], instance_relative_config=False)
    app.config.update(settings)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS",
                          config_module.engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    # Without Redis (a bare dev CLI, a test) the limiter counts in memory; with it, in Redis, so
    # every gunicorn worker shares one count.
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")

    hops = app.config["PROXY_FIX_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops)

    db.init_app(app)
    # Batch mode lets Alembic alter tables on SQLite, which cannot ALTER most things in place.
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"),
                     render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    redis.init_app(app)
    _init_login(app)
    _init_i18n(app)

    from crm import models  # noqa: F401  (registers every table with the metadata)
    from crm.cli import register_cli
    from crm.web import register_web

    register_web(app)
    register_cli(app)
    return app


def _init_login(app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    from crm.models import User

    login.init_app(app)
    login.login_view = "auth.login"
    login.login_message = _l("Please sign in to see this page.")
    login.login_message_category = "info"

    @login.user_loader
    def load_user(token: str) -> User | None:
        user = db.session.scalar(db.select(User).where(User.session_token == token))
        # A deactivated user's sessions end at their next request.
        return user if user is not None and user.active else None


def _init_i18n(app: Flask) -> None:
    from crm.i18n import select_locale, select_timezone

    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)

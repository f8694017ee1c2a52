"""Settings from the environment (12-factor), with safe defaults for local development.

`APP_ENV` picks the profile: `production` (the default, so a host that forgets to set it gets
the strict one), `development` (what `make run` sets) or `testing` (what the tests set).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("INSTANCE_PATH", PROJECT_ROOT / "instance"))


class ConfigError(RuntimeError):
    """Raised when the environment cannot produce a safe configuration."""


def database_url(raw: str | None, instance_dir: Path = INSTANCE_DIR) -> str:
    """Return a SQLAlchemy URL: psycopg 3 for PostgreSQL, an SQLite file under instance/ by default."""
    if not raw:
        return f"sqlite:///{instance_dir / 'crm.sqlite3'}"
    # Heroku-like hosts hand out `postgres://`, which SQLAlchemy 2 no longer accepts; psycopg
    # (v3) is the driver we ship, so both spellings are pointed at it.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def redis_url(raw: str | None) -> str | None:
    """Return the Redis URL, adding `ssl_cert_reqs=none` to `rediss://` as Heroku Redis needs."""
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme != "rediss":
        return raw
    query = dict(parse_qsl(parts.query))
    # Heroku Redis serves TLS with a self-signed certificate; verification would always fail.
    query.setdefault("ssl_cert_reqs", "none")
    return urlunsplit(parts._replace(query=urlencode(query)))


def engine_options(url: str) -> dict:
    """Return the SQLAlchemy engine options for a database URL."""
    options: dict = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        # Dates cut from timestamps (expected next order, "today") are UTC dates, as in Python.
        options["connect_args"] = {"options": "-c timezone=utc"}
    return options


def _dev_secret_key(instance_dir: Path) -> str:
    """Return a random key kept in instance/, so dev sessions survive restarts."""
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load(env: dict[str, str] | None = None) -> dict:
    """Build the Flask config mapping from an environment (os.environ by default)."""
    env = dict(os.environ if env is None else env)
    app_env = env.get("APP_ENV", "production")
    if app_env not in ("production", "development", "testing"):
        raise ConfigError(f"APP_ENV must be production, development or testing, not {app_env!r}")
    production = app_env == "production"
    instance_dir = Path(env.get("INSTANCE_PATH", INSTANCE_DIR))

    secret_key = env.get("SECRET_KEY")
    if not secret_key:
        if production:
            raise ConfigError(
                "SECRET_KEY is not set. In production it must come from the environment "
                "(e.g. `heroku config:set SECRET_KEY=$(python -c 'import secrets; "
                "print(secrets.token_hex(32))')`). For local use run `make run`, "
                "or set APP_ENV=development."
            )
        secret_key = _dev_secret_key(instance_dir)

    return {
        "APP_ENV": app_env,
        "TESTING": app_env == "testing",
        "SECRET_KEY": secret_key,
        "INSTANCE_DIR": str(instance_dir),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_dir),
        "REDIS_URL": redis_url(env.get("REDIS_URL")),
        "RQ_QUEUES": ["default"],
        # The team's defaults; users may override the language for themselves.
        "TEAM_TIMEZONE": env.get("TEAM_TIMEZONE", "UTC"),
        "TEAM_CURRENCY": env.get("TEAM_CURRENCY", "USD"),
        # Phone numbers written without a country code are read as this country's.
        "TEAM_COUNTRY": env.get("TEAM_COUNTRY", "US"),
        # Call-backs for a day fall due when the team's working day starts (team's time zone).
        "WORKDAY_START_HOUR": int(env.get("WORKDAY_START_HOUR", "9")),
        "WORKDAY_END_HOUR": int(env.get("WORKDAY_END_HOUR", "18")),
        "WORKDAYS": env.get("WORKDAYS", "1-5"),  # ISO weekdays, 1 = Monday
        "BABEL_DEFAULT_LOCALE": env.get("DEFAULT_LOCALE", "en"),
        "BABEL_DEFAULT_TIMEZONE": env.get("TEAM_TIMEZONE", "UTC"),
        "LANGUAGES": {"en": "English", "ru": "Русский"},
        # A page left open all day must still submit: the token lives as long as the session.
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_SSL_STRICT": production,
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        # Login throttling: per client address and per account name.
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "PROXY_FIX_HOPS": int(env.get("PROXY_FIX_HOPS", "1")),
        # Where customers reach the app: tracked and unsubscribe links in messages start with it.
        "PUBLIC_URL": env.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        # Apprise URLs per channel for hosts that keep secrets in the environment; when set they
        # replace what Settings holds for that channel (crm.channels).
        "CHANNEL_URLS": {channel: env[f"CHANNEL_{channel.upper()}_URLS"]
                         for channel in ("email", "sms", "telegram", "whatsapp")
                         if env.get(f"CHANNEL_{channel.upper()}_URLS")},
        # Sending: messages per send job, and how many go out at once inside one job.
        "SEND_BATCH": int(env.get("SEND_BATCH", "200")),
        "SEND_CONCURRENCY": int(env.get("SEND_CONCURRENCY", "16")),
        # Seconds after which a queued message whose job never ran is enqueued again, and a message
        # left "sending" (its worker killed) is marked uncertain (crm.dispatch.repair).
        "SEND_REQUEUE_AFTER": int(env.get("SEND_REQUEUE_AFTER", "300")),
        "SEND_UNCERTAIN_AFTER": int(env.get("SEND_UNCERTAIN_AFTER", "900")),
    }

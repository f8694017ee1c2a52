"""Extensions, created unbound here and bound to an app in `create_app()`."""

from __future__ import annotations

import sqlite3

from flask import Flask, current_app
from flask_babel import Babel
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from redis import Redis
from rq import Queue
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints, so Alembic can alter them on SQLite (batch mode) and PostgreSQL alike.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # SQLite leaves foreign keys (and so ON DELETE CASCADE) off unless asked per connection; WAL
    # lets the web server read while the worker writes.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


def upsert_insert(target):
    """An INSERT for the session's database that takes ON CONFLICT clauses (SQLite and PostgreSQL
    spell them alike, but each dialect has its own construct)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert)(target)


migrate = Migrate()
login = LoginManager()
csrf = CSRFProtect()
htmx = HTMX()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


class RedisConnection:
    """The app's Redis: `REDIS_URL` when set, else (outside production) an embedded server."""

    def init_app(self, app: Flask) -> None:
        app.extensions["crm_redis"] = None

    @property
    def connection(self) -> Redis:
        app = current_app._get_current_object()
        conn = app.extensions.get("crm_redis")
        if conn is None:
            url = app.config["REDIS_URL"]
            if url is None:
                from crm.embedded_redis import ensure_started

                url = ensure_started(app.config["INSTANCE_DIR"])
            conn = app.extensions["crm_redis"] = Redis.from_url(url)
        return conn

    def queue(self, name: str = "default") -> Queue:
        """Return the RQ queue `name` on the app's Redis."""
        return Queue(name, connection=self.connection)


redis = RedisConnection()

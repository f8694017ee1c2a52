"""Fixtures: a real Redis for the session, a fresh SQLite database per test, a signed-in client per role."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# Before the app is imported: the test profile, and nothing from the developer's shell.
os.environ["APP_ENV"] = "testing"
for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "TEAM_TIMEZONE", "TEAM_CURRENCY"):
    os.environ.pop(name, None)

from crm import create_app  # noqa: E402
from crm.extensions import db  # noqa: E402
from crm.models import Role, User  # noqa: E402
from tests import servers  # noqa: E402

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def redis_url():
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_admin_url():
    with servers.postgres_server() as url:
        yield url


@pytest.fixture
def make_app(tmp_path, redis_url):
    """Build apps on this test's own SQLite file and the session's Redis (flushed per test)."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()

    def factory(**overrides):
        config = {
            "SECRET_KEY": "test-secret-key",
            "INSTANCE_DIR": str(tmp_path / "instance"),
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'crm.sqlite3'}",
            "REDIS_URL": redis_url,
            # The first teams are Russian: numbers typed as 8 (916) ... are read as +7 916 ...
            "TEAM_COUNTRY": "RU",
        }
        config.update(overrides)
        return create_app(config)

    return factory


def with_schema(app):
    """For app fixtures: create the schema, yield the app, let go of its connections afterwards."""
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(make_app):
    """A fresh app and schema. No app context stays pushed: each request must get its own `g`,
    as in production (a shared one would carry one request's CSRF token into the next)."""
    yield from with_schema(make_app())


@pytest.fixture
def pg_app(make_app, postgres_admin_url):
    """Like `app`, on a fresh PostgreSQL database instead of SQLite."""
    import uuid

    url = servers.create_database(postgres_admin_url, f"crm_{uuid.uuid4().hex[:10]}")
    yield from with_schema(make_app(SQLALCHEMY_DATABASE_URI=url.replace("postgresql://", "postgresql+psycopg://")))


@pytest.fixture
def pg_ctx(pg_app):
    with pg_app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def ctx(app):
    """An app context for a test's own database reads and writes between requests."""
    with app.app_context():
        yield
        db.session.remove()


def reload(app, model, ident):
    """Read a row afresh, as the next request would see it."""
    with app.app_context():
        obj = db.session.get(model, ident)
        db.session.expunge_all()
        return obj


@pytest.fixture
def client(app):
    return app.test_client()


def make_user(app, email: str, role: Role, name: str | None = None, locale: str = "en") -> User:
    """Create a user through the domain function; return it detached (attributes loaded)."""
    from crm import accounts

    with app.app_context():
        user = accounts.create_user(email, name or email.split("@")[0].title(), PASSWORD, role, locale)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


@pytest.fixture
def owner(app) -> User:
    return make_user(app, "owner@example.com", Role.OWNER, "Olga Owner")


@pytest.fixture
def manager(app) -> User:
    return make_user(app, "manager@example.com", Role.MANAGER, "Maxim Manager")


HTMX_TOKEN = re.compile(r'"X-CSRFToken": "([^"]+)"')


def csrf_from(html: str) -> str:
    """Return the CSRF token a rendered page carries on <body> for htmx (forms carry the same)."""
    match = HTMX_TOKEN.search(html)
    assert match, "page carries no CSRF token"
    return match.group(1)


def sign_in(client, email: str, password: str = PASSWORD, **kwargs):
    """Sign in through the real login form, CSRF token included."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


@pytest.fixture
def owner_client(app, owner):
    client = app.test_client()
    assert sign_in(client, owner.email).status_code == 302
    return client


@pytest.fixture
def manager_client(app, manager):
    client = app.test_client()
    assert sign_in(client, manager.email).status_code == 302
    return client


def db_digest() -> dict[str, int]:
    """Every table's rows, hashed (inside an app context): what a refused or read-only request must
    leave exactly as it found it."""
    from sqlalchemy import select

    return {table.name: hash(repr(db.session.execute(select(table).order_by(*table.primary_key.columns)).all()))
            for table in db.metadata.sorted_tables}


def page_token(client, path: str = "/account/") -> str:
    """Return the CSRF token of a signed-in page, as htmx would send it."""
    return csrf_from(client.get(path).get_data(as_text=True))


# --- the browser (Playwright driving the machine's Chromium) ---------------------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(app):
    with servers.live_server(app) as url:
        yield url


@pytest.fixture
def page(browser):
    """A fresh browser tab that collects console errors in `page.problems`."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    yield page
    context.close()


def browser_sign_in(page, site: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{site}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}/dashboard")

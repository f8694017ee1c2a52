"""Every route is behind login, and every owner-only route refuses managers."""

from __future__ import annotations

import pytest

from tests.conftest import db_digest, sign_in

PUBLIC_ENDPOINTS = {"auth.login", "health.healthz", "static", "api.post_orders", "api.openapi_json",
                    "public.click", "public.unsubscribe", "public.inbound"}
# Settings, users, channels: everything under /settings is the owner's; so are exports.
OWNER_ONLY_PREFIXES = ("/settings",)
OWNER_ONLY_ENDPOINTS = {"customers.export", "callbacks.reassign", "inactive.export", "inactive.erase_confirm",
                        "inactive.erase"}
# Sequences: anyone sees them and enrols; only owners create, edit (and preview in the editor) and pause.
OWNER_ONLY_ENDPOINTS |= {"sequences.create", "sequences.edit", "sequences.save", "sequences.pause",
                         "sequences.preview", "sequences.preview_customers", "sequences.review"}
# Reports: anyone reads them; the CSV exports are the owner's.
OWNER_ONLY_ENDPOINTS |= {"reports.campaigns_csv"}


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<int:{arg}>", "1").replace(f"<{arg}>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, url


@pytest.fixture
def app_without_csrf(make_app):
    # Access is checked here; CSRF has its own tests. Without this, a POST would stop at the CSRF check.
    from crm.extensions import db

    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        db.create_all()
    return app


def test_every_private_route_sends_anonymous_users_to_login(app_without_csrf):
    routes = list(_routes(app_without_csrf))
    assert len(routes) > 10
    client = app_without_csrf.test_client()
    for endpoint, method, url in routes:
        response = client.open(url, method=method)
        if endpoint in PUBLIC_ENDPOINTS:
            assert response.status_code != 302 or "/login" not in response.location, (method, url)
            continue
        assert response.status_code == 302, (method, url, response.status_code)
        assert response.location.startswith("/login"), (method, url, response.location)


def test_owner_only_routes_refuse_managers_and_others_admit_them(app_without_csrf):
    from crm.models import Role
    from tests.conftest import make_user

    manager = make_user(app_without_csrf, "m@example.com", Role.MANAGER)
    client = app_without_csrf.test_client()
    assert sign_in(client, manager.email).status_code == 302
    owner_only = 0
    for endpoint, method, url in _routes(app_without_csrf):
        if endpoint in PUBLIC_ENDPOINTS or endpoint == "auth.logout":
            continue
        response = client.open(url, method=method)
        if url.startswith(OWNER_ONLY_PREFIXES) or endpoint in OWNER_ONLY_ENDPOINTS:
            owner_only += 1
            assert response.status_code == 403, (method, url, response.status_code)
        else:
            assert response.status_code != 403, (method, url)
    assert owner_only >= 4


def test_owner_reaches_every_page_of_the_navigation(owner_client):
    for path in ("/dashboard", "/customers", "/funnel", "/lapsed", "/callbacks", "/sequences",
                 "/inactive", "/settings", "/settings/users/", "/account/"):
        response = owner_client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        for label in ("Customers", "Funnel", "Lapsed", "Call-backs", "Sequences", "Inactive", "Dashboard", "Settings"):
            assert f">{label}</a>" in html, (path, label)


def test_manager_navigation_has_no_settings_link(manager_client):
    html = manager_client.get("/dashboard").get_data(as_text=True)
    assert ">Customers</a>" in html
    assert 'href="/settings"' not in html


def test_htmx_request_without_session_is_redirected_to_login(client):
    response = client.get("/customers", headers={"HX-Request": "true"})
    assert response.status_code == 302
    assert response.location.startswith("/login")


def test_no_get_changes_data_for_either_role(app):
    """Every GET route, as an owner and as a manager, whole page and htmx fragment, on a seeded base:
    the database is the same afterwards (GET is safe; writes go through POST with CSRF)."""
    from crm import demo
    from crm.extensions import db
    from crm.models import Role
    from tests.conftest import make_user

    with app.app_context():
        demo.seed(40, "en", seed=4)
        db.session.commit()
    people = [make_user(app, f"{role.value}-sweep@example.com", role) for role in (Role.OWNER, Role.MANAGER)]
    gets = [(endpoint, url) for endpoint, method, url in _routes(app)
            if method == "GET" and endpoint not in {"auth.logout", "public.click", "public.unsubscribe"}]
    for person in people:
        client = app.test_client()
        assert sign_in(client, person.email).status_code == 302
        with app.app_context():
            before = db_digest()
            db.session.remove()
        for endpoint, url in gets:
            for headers in ({}, {"HX-Request": "true"}):
                response = client.get(url, headers=headers)
                response.get_data()  # a streamed export runs to its end
                response.close()
                assert response.status_code < 500, (endpoint, url, headers, response.status_code)
        with app.app_context():
            after = db_digest()
            db.session.remove()
        changed = sorted(name for name in before if before[name] != after[name])
        assert changed == [], (person.role, changed)

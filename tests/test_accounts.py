"""Accounts: signing in and out, roles, deactivation, passwords, rate limits."""

from __future__ import annotations

import pytest

from crm import accounts
from crm.models import Role, User
from tests.conftest import PASSWORD, make_user, page_token, reload, sign_in


def test_owner_signs_in_and_sees_the_navigation(client, owner):
    response = sign_in(client, owner.email, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.request.path == "/dashboard"
    assert "Olga Owner" in html and ">Settings</a>" in html


def test_login_returns_to_the_page_first_asked_for_but_never_off_site(client, owner):
    token = page_token(client, "/login")
    response = client.post("/login?next=/funnel",
                           data={"email": owner.email, "password": PASSWORD, "csrf_token": token})
    assert response.location == "/funnel"
    client.post("/logout", data={"csrf_token": page_token(client, "/dashboard")})
    token = page_token(client, "/login")
    response = client.post("/login?next=//evil.example/x", data={"email": owner.email, "password": PASSWORD,
                                                                 "csrf_token": token})
    assert response.location == "/dashboard"


def test_wrong_password_and_unknown_account_get_the_same_message(client, owner):
    wrong = sign_in(client, owner.email, "not-the-password").get_data(as_text=True)
    unknown = sign_in(client, "nobody@example.com", "not-the-password").get_data(as_text=True)
    assert "Email or password is incorrect." in wrong
    assert "Email or password is incorrect." in unknown
    assert "nobody@example.com" in unknown  # the address is kept in the field, nothing else is said


def test_deactivated_user_cannot_sign_in(app, client, manager, owner):
    with app.app_context():
        accounts.set_active(accounts.db.session.get(User, manager.id), False, accounts.db.session.get(User, owner.id))
        accounts.db.session.commit()
    assert "Email or password is incorrect." in sign_in(client, manager.email).get_data(as_text=True)


def test_deactivation_ends_the_users_open_session_at_once(app, owner_client, manager_client, manager):
    assert manager_client.get("/customers").status_code == 200
    token = page_token(owner_client, "/settings/users/")
    owner_client.post(f"/settings/users/{manager.id}/active", data={"active": "0", "csrf_token": token})
    response = manager_client.get("/customers")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_logout_ends_the_session_on_the_server_even_for_a_copied_cookie(app, owner_client):
    stolen = owner_client.get_cookie("session").value
    owner_client.post("/logout", data={"csrf_token": page_token(owner_client, "/dashboard")})
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/customers")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_login_renews_the_session(app, client, owner):
    client.get("/login")
    before = client.get_cookie("session").value
    sign_in(client, owner.email)
    assert client.get_cookie("session").value != before


@pytest.mark.parametrize("password, message", [
    ("short1", "at least 8 characters"),
    ("password123", "too common"),
    ("QWERTYUIOP", "too common"),
])
def test_weak_passwords_are_refused_with_a_reason(app, password, message):
    with app.app_context(), pytest.raises(accounts.AccountError, match=message) as refused:
        accounts.create_user("new@example.com", "New", password, Role.MANAGER)
    assert refused.value.field == "password"


def test_passwords_are_stored_hashed(app, owner):
    stored = reload(app, User, owner.id).password_hash
    assert PASSWORD not in stored and stored.startswith("scrypt:")


def test_owner_adds_a_manager_who_can_then_sign_in(app, owner_client):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post("/settings/users/", data={
        "csrf_token": token, "name": "Anna", "email": "Anna@Example.com", "password": "a-long-passphrase",
        "role": "manager", "locale": "ru"})
    assert response.status_code == 200
    assert "anna@example.com can now sign in." in response.get_data(as_text=True)
    assert sign_in(app.test_client(), "anna@example.com", "a-long-passphrase").status_code == 302


def test_adding_a_user_with_bad_input_shows_messages_on_the_fields(owner_client, owner):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post("/settings/users/", data={
        "csrf_token": token, "name": "<b>Dup</b>", "email": owner.email, "password": "x", "role": "manager",
        "locale": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "A user with this email already exists." in html
    assert "&lt;b&gt;Dup&lt;/b&gt;" in html  # the typed name is kept, as text


def test_role_change_by_htmx_swaps_the_row(app, owner_client, manager):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post(f"/settings/users/{manager.id}/role", data={"role": "owner"},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith(f'<tr id="user-{manager.id}"')
    assert reload(app, User, manager.id).role is Role.OWNER


def test_the_last_active_owner_cannot_be_demoted_or_deactivated(app, owner_client, owner):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post(f"/settings/users/{owner.id}/role", data={"role": "manager"},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 422
    assert "at least one active owner" in response.get_data(as_text=True)
    response = owner_client.post(f"/settings/users/{owner.id}/active", data={"active": "0"},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    assert "You cannot deactivate yourself." in response.get_data(as_text=True)
    assert reload(app, User, owner.id).role is Role.OWNER
    assert reload(app, User, owner.id).active


def test_unknown_user_id_is_404(owner_client):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post("/settings/users/999/active", data={"active": "0", "csrf_token": token})
    assert response.status_code == 404


def test_login_is_rate_limited_per_address(make_app, owner):
    app = make_app(LOGIN_RATE_LIMIT="3 per minute")
    client = app.test_client()
    for _ in range(3):
        assert sign_in(client, owner.email, "wrong-password-here").status_code == 200
    response = sign_in(client, owner.email, PASSWORD)
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)


def test_login_is_rate_limited_per_account_across_addresses(make_app, app, owner):
    limited = make_app(LOGIN_RATE_LIMIT="3 per minute")
    for i in range(3):
        client = limited.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{i}"
        assert sign_in(client, owner.email, "wrong-password-here").status_code == 200
    client = limited.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.200"
    assert sign_in(client, owner.email, PASSWORD).status_code == 429
    # Another account from a fresh address is not held back by this one's attempts.
    other = make_user(limited, "other@example.com", Role.MANAGER)
    client = limited.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.201"
    assert sign_in(client, other.email).status_code == 302


def test_a_user_changes_their_password_and_other_sessions_end(app, owner, owner_client):
    other_browser = app.test_client()
    sign_in(other_browser, owner.email)
    token = page_token(owner_client)
    response = owner_client.post("/account/password", data={
        "pw-csrf_token": token, "pw-current": PASSWORD, "pw-password": "brand-new-passphrase"})
    assert response.status_code == 302
    assert owner_client.get("/customers").status_code == 200
    assert other_browser.get("/customers").status_code == 302

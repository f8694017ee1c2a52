"""CSRF: every write needs the token, as a form field or as htmx's X-CSRFToken header."""

from __future__ import annotations

from crm.models import User
from tests.conftest import page_token, reload


def test_form_post_without_token_is_refused(app, owner_client, owner):
    response = owner_client.post("/account/language", data={"lang-locale": "ru"})
    assert response.status_code == 400
    assert "expired or did not come from this site" in response.get_data(as_text=True)
    assert reload(app, User, owner.id).locale == "en"


def test_htmx_post_without_token_is_refused(app, owner_client, manager):
    response = owner_client.post(f"/settings/users/{manager.id}/active", data={"active": "0"},
                                 headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert reload(app, User, manager.id).active is True


def test_htmx_post_with_header_token_is_accepted(app, owner_client, manager):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post(f"/settings/users/{manager.id}/active", data={"active": "0"},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    assert f'id="user-{manager.id}"' in response.get_data(as_text=True)
    assert reload(app, User, manager.id).active is False


def test_form_post_with_token_is_accepted(app, owner_client, owner):
    token = page_token(owner_client)
    response = owner_client.post("/account/language", data={"lang-locale": "ru", "lang-csrf_token": token})
    assert response.status_code == 302
    assert reload(app, User, owner.id).locale == "ru"


def test_login_post_without_token_is_refused(client, owner):
    response = client.post("/login", data={"email": owner.email, "password": "correct-horse-battery"})
    assert response.status_code == 400


def test_token_has_no_time_limit_so_a_page_left_open_all_day_still_submits(app):
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None


def test_body_carries_one_token_for_htmx(owner_client):
    html = owner_client.get("/dashboard").get_data(as_text=True)
    assert "<body hx-headers='{\"X-CSRFToken\": \"" in html

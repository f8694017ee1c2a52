"""English and Russian, chosen per user; dates and money formatted by locale."""

from __future__ import annotations

from datetime import date

from crm.models import Role
from tests.conftest import make_user, sign_in


def test_a_russian_speaking_manager_sees_the_app_in_russian(app):
    user = make_user(app, "ivan@example.com", Role.MANAGER, "Иван", locale="ru")
    client = app.test_client()
    html = sign_in(client, user.email, follow_redirects=True).get_data(as_text=True)
    assert '<html lang="ru">' in html
    for label in ("Клиенты", "Воронка", "Ушедшие", "Перезвоны", "Цепочки", "Неактивные", "Сводка", "Выйти"):
        assert label in html, label


def test_the_login_page_follows_the_browser_language(client):
    html = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"}).get_data(as_text=True)
    assert "Войти" in html
    html = client.get("/login", headers={"Accept-Language": "en-GB"}).get_data(as_text=True)
    assert "Sign in" in html and "Войти" not in html


def test_a_user_switches_language_on_their_account_page(owner_client):
    from tests.conftest import page_token

    token = page_token(owner_client)
    owner_client.post("/account/language", data={"lang-csrf_token": token, "lang-locale": "ru"})
    assert "Клиенты" in owner_client.get("/dashboard").get_data(as_text=True)


def test_money_and_dates_are_formatted_by_locale(app):
    with app.test_request_context("/", headers={"Accept-Language": "ru"}):
        env = app.jinja_env
        assert env.from_string("{{ 123456|money('RUB') }}").render().replace("\xa0", " ") == "1 234,56 ₽"
        long_date = env.from_string("{{ d|date('long') }}").render(d=date(2026, 3, 8))
        assert long_date.replace("\u202f", " ") == "8 марта 2026 г."
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert app.jinja_env.from_string("{{ 123456|money('USD') }}").render() == "$1,234.56"
        assert app.jinja_env.from_string("{{ d|date('long') }}").render(d=date(2026, 3, 8)) == "March 8, 2026"


def test_every_message_has_a_russian_translation():
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent / "crm" / "translations"
    with open(root / "ru" / "LC_MESSAGES" / "messages.po", "rb") as po:
        catalog = read_po(po)
    with open(root / "messages.pot", "rb") as pot:
        template = read_po(pot)
    missing = [m.id for m in template if m.id and (m.id not in catalog or not catalog[m.id].string)]
    assert missing == []
    assert (root / "ru" / "LC_MESSAGES" / "messages.mo").exists()

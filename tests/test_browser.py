"""In a real browser (Playwright driving the machine's Chromium): sign in, navigate, work the
users page through htmx, all under the strict CSP with no console errors."""

from __future__ import annotations

import pytest

from crm.models import Role
from tests.conftest import ARTIFACTS, PASSWORD, browser_sign_in, make_user

pytestmark = pytest.mark.browser

def test_owner_signs_in_sees_navigation_and_deactivates_a_manager_without_a_reload(app, site, page, owner, manager):
    browser_sign_in(page, site, owner.email)
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Customers", "Funnel", "Lapsed", "Call-backs", "Sequences", "Inactive", "Dashboard", "Settings"):
        assert nav.get_by_role("link", name=label, exact=True).is_visible(), label

    nav.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Users and roles").click()
    page.wait_for_url(f"{site}/settings/users/")
    page.evaluate("window.__same_document = true")  # lost if the page reloads

    row = page.locator(f"#user-{manager.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Deactivate").click()
    page.locator(f"#user-{manager.id}").get_by_role("button", name="Reactivate").wait_for()
    assert "Deactivated" in page.locator(f"#user-{manager.id}").inner_text()

    page.locator(f"#user-{manager.id} select").select_option("owner")
    page.wait_for_function(f"document.querySelector('#user-{manager.id} select').value === 'owner'"
                           " && !document.querySelector('.htmx-request')")
    assert page.evaluate("window.__same_document") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "users-page.png"), full_page=True)
    assert page.problems == []


def test_russian_manager_sees_russian_navigation_and_no_settings(app, site, browser):
    user = make_user(app, "ivan@example.com", Role.MANAGER, "Иван", locale="ru")
    context = browser.new_context(locale="ru-RU")
    page = context.new_page()
    page.goto(f"{site}/login")
    assert page.get_by_role("button", name="Войти").is_visible()
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Пароль").fill(PASSWORD)
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(f"{site}/dashboard")
    nav = page.get_by_role("navigation")
    assert nav.get_by_role("link", name="Перезвоны").is_visible()
    assert nav.get_by_role("link", name="Настройки").count() == 0
    page.screenshot(path=str(ARTIFACTS / "dashboard-ru.png"))
    context.close()

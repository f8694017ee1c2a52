"""In a real browser (Playwright driving the machine's Chromium): sign in, navigate, work the
users page through htmx, all under the strict CSP with no console errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm.models import Role
from tests import servers
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


@pytest.fixture(scope="module")
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
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.problems = problems
    yield page
    context.close()


def _sign_in(page, site, email):
    page.goto(f"{site}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}/dashboard")


def test_owner_signs_in_sees_navigation_and_deactivates_a_manager_without_a_reload(app, site, page, owner, manager):
    _sign_in(page, site, owner.email)
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

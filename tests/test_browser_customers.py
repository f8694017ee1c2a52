"""The customer pages in a real browser: search as you type, inline edits with Enter and Escape,
a validation message in place, notes on the timeline, all without a page load."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.extensions import db
from tests.conftest import ARTIFACTS, browser_sign_in
from tests.factories import customer, order, utc

pytestmark = pytest.mark.browser


@pytest.fixture
def anna(app):
    with app.app_context():
        c = customer("Anna Ivanova", emails=["anna@example.com"], phones=["+7 916 123-45-67"], city="Moscow")
        order(c, utc(2026, 3, 1), "120.00", items=[{"name": "Wine", "category": "Drinks"}])
        for i in range(30):
            customer(f"Other Person {i:02d}")
        db.session.commit()
        return c.id


def test_manager_searches_opens_a_card_and_edits_it_in_place(app, site, page, manager, anna):
    browser_sign_in(page, site, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    page.wait_for_url(f"{site}/customers")
    page.evaluate("window.__same_document = true")

    page.get_by_role("searchbox").fill("ivan")
    page.wait_for_url(f"{site}/customers?q=ivan*")  # the URL follows the search (shareable, back button)
    rows = page.locator("table.customers tbody tr")
    rows.first.wait_for()
    page.wait_for_function("document.querySelectorAll('table.customers tbody tr').length === 1")
    assert "Anna Ivanova" in rows.first.inner_text()
    assert page.evaluate("window.__same_document") is True

    page.get_by_role("link", name="Anna Ivanova").click()
    page.wait_for_url(f"{site}/customers/{anna}")
    page.evaluate("window.__same_document = true")

    # Click-to-edit, Enter saves; the timeline records the change without a reload.
    page.locator("#field-city a.editable").click()
    city = page.locator("#input-city")
    expect(city).to_be_focused()  # htmx has settled the swapped form: Enter goes through htmx
    city.fill("Samara")
    city.press("Enter")
    page.locator("#field-city a.editable", has_text="Samara").wait_for()
    page.locator("#timeline", has_text="Samara").wait_for()

    # A bad email stays in the field with the message beside it.
    page.locator("#field-email a.editable").click()
    expect(page.locator("#input-email")).to_be_focused()
    page.locator("#input-email").fill("not an email")
    page.locator("#input-email").press("Enter")
    page.locator("#field-email .field-error").wait_for()
    assert "valid email" in page.locator("#field-email .field-error").inner_text()
    assert page.locator("#input-email").input_value() == "not an email"
    # Escape gives up the edit and shows the stored value again.
    page.locator("#input-email").press("Escape")
    page.locator("#field-email a.editable", has_text="anna@example.com").wait_for()

    page.get_by_label("Note", exact=True).fill("Called about <b>wine</b>")
    page.get_by_role("button", name="Add note").click()
    page.locator("#timeline", has_text="Called about <b>wine</b>").wait_for()
    assert page.evaluate("window.__same_document") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "customer-card.png"), full_page=True)
    # The refused email answered 422 (Chromium logs every 4xx); nothing else went wrong.
    assert [p for p in page.problems if "422" not in p] == []

"""The funnel board in a real browser: a card dragged with the mouse, another moved from the keyboard
through its Stage menu, the column totals following without a page load, the moves on the timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from crm.demo import ensure_stages
from crm.extensions import db
from tests.conftest import ARTIFACTS, browser_sign_in
from tests.factories import customer, order, utc

pytestmark = pytest.mark.browser


@pytest.fixture
def board(app):
    with app.app_context():
        keys = ensure_stages()
        anna = customer("Anna Ivanova")
        order(anna, utc(2026, 3, 1), "120.00")
        boris = customer("Boris Petrov")
        order(boris, utc(2026, 2, 1), "80.00")
        anna.stage_id = boris.stage_id = keys["new"]
        db.session.commit()
        return {"stage": keys, "anna": anna.id, "boris": boris.id}


def _head(page, stage_id: int):
    return page.locator(f"#head-{stage_id}")


def test_cards_move_by_drag_and_by_keyboard_and_the_totals_follow(app, site, page, manager, board):
    new, regular, lapsed = (board["stage"][k] for k in ("new", "regular", "lapsed"))
    browser_sign_in(page, site, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Funnel").click()
    page.wait_for_url(f"{site}/funnel")
    page.evaluate("window.__same_document = true")
    assert "2 customers" in _head(page, new).inner_text()
    assert page.locator(f"#cards-{regular} + .empty-column").is_visible()

    # The mouse: drag Anna's card onto the Regular column.
    anna = page.locator(f"#card-{board['anna']}")
    anna.locator(".card-figures").hover()
    page.mouse.down()
    target = page.locator(f"#cards-{regular}").bounding_box()
    page.mouse.move(target["x"] + target["width"] / 2, target["y"] + 10, steps=12)
    page.mouse.move(target["x"] + target["width"] / 2, target["y"] + 20, steps=4)
    page.mouse.up()
    page.locator(f"#cards-{regular} #card-{board['anna']}.pinned").wait_for()
    page.locator(f"#head-{regular}", has_text="1 customer").wait_for()
    page.locator(f"#head-{new}", has_text="1 customer").wait_for()
    assert "$120.00" in _head(page, regular).inner_text()
    assert not page.locator(f"#cards-{regular} + .empty-column").is_visible()

    # The keyboard: Tab to Boris's Stage menu, open it, Tab to "Lapsed", Enter.
    page.locator(f"#card-{board['boris']} .card-name").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    menu = page.locator(f"#card-{board['boris']} details.stage-menu")
    assert menu.get_attribute("open") is not None
    # Escape closes the menu and leaves the focus on it; Enter opens it again.
    page.keyboard.press("Escape")
    assert menu.get_attribute("open") is None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Enter")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Lapsed":
            break
    page.keyboard.press("Enter")
    page.locator(f"#cards-{lapsed} #card-{board['boris']}").wait_for()
    page.locator(f"#head-{lapsed}", has_text="1 customer").wait_for()
    page.locator(f"#head-{new}", has_text="0 customers").wait_for()
    assert page.locator(f"#cards-{new} .card").count() == 0
    assert page.locator(f"#cards-{new} + .empty-column").is_visible()
    # The focus went with the card to its new column.
    expect(page.locator(f"#cards-{lapsed} #card-{board['boris']} summary")).to_be_focused()
    assert page.evaluate("window.__same_document") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "funnel-board.png"), full_page=True)

    # Both moves are on the customers' timelines.
    page.goto(f"{site}/customers/{board['anna']}")
    page.locator("#timeline", has_text="Stage: New → Regular").wait_for()
    page.goto(f"{site}/customers/{board['boris']}")
    page.locator("#timeline", has_text="Stage: New → Lapsed").wait_for()
    assert page.problems == []


def test_owner_removes_a_stage_after_choosing_where_its_customers_go(app, site, page, owner, board):
    browser_sign_in(page, site, owner.email)
    page.goto(f"{site}/funnel")
    page.get_by_role("button", name="Edit stages").click()
    page.wait_for_url(f"{site}/settings/stages")

    # An empty name is refused on the field; a good one adds the stage at the end.
    page.get_by_role("button", name="Add", exact=True).click()
    page.locator("#new-name-error", has_text="Enter the stage's name.").wait_for()
    page.locator("#new-name").fill("VIP")
    page.get_by_role("button", name="Add", exact=True).click()
    page.locator("tr", has=page.locator("input[value='VIP']")).wait_for()

    # Anna goes onto it from her card's menu.
    page.goto(f"{site}/funnel")
    page.locator(f"#card-{board['anna']} summary").click()
    page.locator(f"#card-{board['anna']} button", has_text="VIP").click()
    page.locator(f"#card-{board['anna']}.pinned").wait_for()

    # Removing it asks for confirmation, and where she goes.
    page.goto(f"{site}/settings/stages")
    confirmations = []
    page.on("dialog", lambda dialog: (confirmations.append(dialog.message), dialog.accept()))
    row = page.locator("tr", has=page.locator("input[value='VIP']"))
    row.get_by_role("button", name="Remove").click()
    page.locator(".field-error", has_text="Choose the stage its customers move to.").wait_for()
    row = page.locator("tr", has=page.locator("input[value='VIP']"))
    row.locator("select[name=move_to]").select_option(label="Returned")
    row.get_by_role("button", name="Remove").click()
    page.locator("input[value='VIP']").wait_for(state="detached")
    assert confirmations[-1] == "Remove the stage “VIP”? Its customers move to the stage you chose."

    page.goto(f"{site}/funnel")
    page.locator(f"#cards-{board['stage']['returned']} #card-{board['anna']}").wait_for()
    # The refused removal answered 422 (Chromium logs every 4xx); nothing else went wrong.
    assert [p for p in page.problems if "422" not in p] == []

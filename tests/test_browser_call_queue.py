"""The call-back queue in a real browser, keyboard only: a manager works three calls (no answer,
reached and responded, not interested with a reason), undoes a mistaken one, and sees the rows and
the progress line follow without a page load."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm.extensions import db
from crm.models import CallBack, Customer, Interaction, Kind, LeaveReason
from tests.conftest import ARTIFACTS, browser_sign_in
from tests.factories import lapsed_call

pytestmark = pytest.mark.browser


@pytest.fixture
def queue(app, manager):
    """Four calls due now, ranked by value at risk: Anna, Boris, Vera, Gleb."""
    with app.app_context():
        ids = {name: lapsed_call(name, manager.id, at_risk, f"+7 912 345-67-8{i}") for i, (name, at_risk) in enumerate(
            (("Anna Ivanova", 900), ("Boris Petrov", 700), ("Vera Sokolova", 500), ("Gleb Orlov", 300)))}
        db.session.commit()
        return ids


def test_a_manager_works_three_calls_with_the_keyboard(app, site, page, manager, queue):
    browser_sign_in(page, site, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Call-backs").click()
    page.wait_for_url(f"{site}/callbacks")
    page.evaluate("window.__same_document = true")
    progress = page.locator("#call-progress")
    expect(progress).to_contain_text("0 of 4 done today")
    rows = {name: page.locator(f"#call-{ident}") for name, ident in queue.items()}

    def ready(name):  # focused and wired by htmx: a key pressed now goes through htmx
        expect(rows[name]).to_be_focused()
        expect(rows[name]).to_have_attribute("data-ready", "")

    ready("Anna Ivanova")  # the first call to make has the focus on arrival

    # 3: no answer. The row shows it, the progress moves, the focus goes on to Boris.
    page.keyboard.press("3")
    expect(rows["Anna Ivanova"]).to_contain_text("No answer")
    expect(progress).to_contain_text("1 of 4 done today")
    ready("Boris Petrov")

    # A mistaken 4 (wrong number) on Boris, taken back with u from his row.
    page.keyboard.press("4")
    expect(rows["Boris Petrov"]).to_contain_text("Wrong number")
    expect(progress).to_contain_text("2 of 4 done today")
    expect(rows["Vera Sokolova"]).to_be_focused()
    page.keyboard.press("k")  # back up to Boris
    ready("Boris Petrov")
    page.keyboard.press("u")
    expect(rows["Boris Petrov"]).not_to_have_attribute("data-done", "")
    expect(progress).to_contain_text("1 of 4 done today")
    ready("Boris Petrov")

    # 1: reached and responded.
    page.keyboard.press("1")
    expect(rows["Boris Petrov"]).to_contain_text("Reached, responded")
    ready("Vera Sokolova")

    # 2: not interested asks the reason; the keyboard picks it and Enter saves.
    page.keyboard.press("2")
    reason = rows["Vera Sokolova"].get_by_label("Reason for leaving")
    expect(reason).to_be_focused()
    page.keyboard.type("Pri")  # typing picks the option, as in any select
    expect(reason).to_have_value("price")
    page.keyboard.press("Tab")  # to the note; Enter there submits the form
    page.keyboard.press("Enter")
    expect(rows["Vera Sokolova"]).to_contain_text("Not interested")
    expect(progress).to_contain_text("3 of 4 done today")
    expect(rows["Gleb Orlov"]).to_be_focused()
    assert page.evaluate("window.__same_document") is True

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "call-queue.png"), full_page=True)
    assert page.problems == []
    with app.app_context():
        outcomes = {call.customer.name: call.outcome for call in db.session.scalars(
            select(CallBack).where(CallBack.done_at.is_not(None)))}
        assert outcomes == {"Anna Ivanova": "no_answer", "Boris Petrov": "responded", "Vera Sokolova": "not_interested"}
        calls = db.session.scalars(select(Interaction.outcome).where(Interaction.kind == Kind.CALL)).all()
        assert sorted(calls) == ["no_answer", "not_interested", "responded"]  # the undone one left no trace
        vera = db.session.scalar(select(Customer).where(Customer.name == "Vera Sokolova"))
        assert vera.leave_reason is LeaveReason.PRICE

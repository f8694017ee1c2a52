"""The call-back queue in a real browser: a manager works the calls with the keyboard only (j / k to
move, 3 no answer, u undo, 1 reached, 2 not interested with its reason), the rows and the progress line
following without a page load, the outcomes in the database and on the customers' timelines."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm import clock
from crm.extensions import db
from crm.models import CallBack, CallReason, Customer, Interaction, Kind, LeaveReason, Status
from tests.conftest import ARTIFACTS, browser_sign_in
from tests.factories import customer

pytestmark = pytest.mark.browser

PEOPLE = (("Anna Ivanova", 900), ("Boris Petrov", 700), ("Vera Sokolova", 500), ("Gleb Orlov", 300))


@pytest.fixture
def queue(app, manager):
    """Four calls due in the manager's queue, most value at risk first (Anna, Boris, Vera, Gleb)."""
    with app.app_context():
        due = clock.now() - timedelta(hours=1)  # one moment for all: the ranking falls to at_risk
        made = {}
        for i, (name, at_risk) in enumerate(PEOPLE):
            person = customer(name, phones=[f"+7 912 345 67 8{i}"])
            person.status, person.at_risk = Status.LAPSED, at_risk
            db.session.flush()
            call = CallBack(customer_id=person.id, manager_id=manager.id, due_at=due, reason=CallReason.LAPSED)
            db.session.add(call)
            db.session.flush()
            made[name] = (call.id, person.id)
        db.session.commit()
        return made


def test_manager_works_three_calls_with_the_keyboard_without_a_page_load(app, site, page, manager, queue):
    row = {name: page.locator(f"#call-{call_id}") for name, (call_id, _) in queue.items()}
    progress = page.locator("#call-progress")

    browser_sign_in(page, site, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Call-backs").click()
    page.wait_for_url(f"{site}/callbacks")
    page.evaluate("window.__same_document = true")  # lost if the page reloads
    expect(progress).to_contain_text("0 of 4 done today")
    expect(progress.locator("progress")).to_have_attribute("value", "0")
    order = page.locator("li.call-row[data-call-row] .call-who strong")
    expect(order).to_have_text(["Anna Ivanova", "Boris Petrov", "Vera Sokolova", "Gleb Orlov"])

    # The first call to make has the focus on arrival; j and k move between the rows.
    expect(row["Anna Ivanova"]).to_be_focused()
    page.keyboard.press("j")
    expect(row["Boris Petrov"]).to_be_focused()
    page.keyboard.press("j")
    expect(row["Vera Sokolova"]).to_be_focused()
    page.keyboard.press("k")
    page.keyboard.press("k")
    expect(row["Anna Ivanova"]).to_be_focused()

    # 3: no answer. The row shows what was logged, the progress follows, the focus goes on to Boris.
    page.keyboard.press("3")
    expect(row["Anna Ivanova"]).to_have_attribute("data-done", "")
    expect(row["Anna Ivanova"]).to_have_class(re.compile(r"\blogged\b"))
    expect(row["Anna Ivanova"].locator(".call-logged")).to_contain_text("No answer")
    expect(progress).to_contain_text("1 of 4 done today")
    expect(progress.locator("progress")).to_have_attribute("value", "1")
    expect(row["Boris Petrov"]).to_be_focused()

    # u, straight away, takes it back: Anna's row open again and focused, the progress back to 0.
    page.keyboard.press("u")
    expect(row["Anna Ivanova"]).not_to_have_attribute("data-done", "")
    expect(row["Anna Ivanova"]).not_to_have_class(re.compile(r"\blogged\b"))
    expect(row["Anna Ivanova"].get_by_role("button", name="No answer")).to_be_visible()
    expect(progress).to_contain_text("0 of 4 done today")
    expect(row["Anna Ivanova"]).to_be_focused()

    # Again, for good this time.
    page.keyboard.press("3")
    expect(row["Anna Ivanova"].locator(".call-logged")).to_contain_text("No answer")
    expect(progress).to_contain_text("1 of 4 done today")
    expect(row["Boris Petrov"]).to_be_focused()

    # 1: reached, responded; on to Vera.
    page.keyboard.press("1")
    expect(row["Boris Petrov"]).to_have_attribute("data-done", "")
    expect(row["Boris Petrov"].locator(".call-logged")).to_contain_text("Reached, responded")
    expect(progress).to_contain_text("2 of 4 done today")
    expect(row["Vera Sokolova"]).to_be_focused()

    # 2: not interested asks the reason first; Escape gives up, 2 again, the reason by arrow keys, Enter.
    page.keyboard.press("2")
    reason = row["Vera Sokolova"].get_by_label("Reason for leaving")
    expect(reason).to_be_focused()
    page.keyboard.press("Escape")
    expect(reason).to_have_count(0)
    expect(row["Vera Sokolova"]).to_be_focused()
    expect(progress).to_contain_text("2 of 4 done today")
    page.keyboard.press("2")
    expect(reason).to_be_focused()
    page.keyboard.press("ArrowDown")  # "Price", the first reason
    expect(reason).to_have_value("price")
    page.keyboard.press("Enter")
    expect(row["Vera Sokolova"]).to_have_attribute("data-done", "")
    expect(row["Vera Sokolova"].locator(".call-logged")).to_contain_text("Not interested")
    expect(progress).to_contain_text("3 of 4 done today")
    expect(progress.locator("progress")).to_have_attribute("value", "3")
    expect(row["Gleb Orlov"]).to_be_focused()
    expect(row["Gleb Orlov"]).not_to_have_attribute("data-done", "")

    assert page.evaluate("window.__same_document") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "callbacks-queue.png"), full_page=True)
    assert page.problems == []

    # The database: three calls closed with their outcomes, each on the customer's timeline.
    with app.app_context():
        for name, outcome in (("Anna Ivanova", "no_answer"), ("Boris Petrov", "responded"),
                              ("Vera Sokolova", "not_interested"), ("Gleb Orlov", None)):
            call_id, customer_id = queue[name]
            call = db.session.get(CallBack, call_id)
            assert call.outcome == outcome, name
            assert (call.done_at is not None) is (outcome is not None), name
            calls = db.session.scalars(select(Interaction.outcome).where(
                Interaction.customer_id == customer_id, Interaction.kind == Kind.CALL)).all()
            assert calls == ([outcome] if outcome else []), name
        assert db.session.get(Customer, queue["Boris Petrov"][1]).status is Status.RESPONDED
        assert db.session.get(Customer, queue["Vera Sokolova"][1]).leave_reason is LeaveReason.PRICE
        # No answer puts Anna's next try on a later working day, outside today's queue.
        retry = db.session.scalars(select(CallBack).where(CallBack.customer_id == queue["Anna Ivanova"][1],
                                                          CallBack.done_at.is_(None))).one()
        assert retry.attempts == 1 and retry.due_at.date() > clock.now().date()

"""The lapsed-client queues: ranking by value at risk, who is left out and why, and the actions a
manager takes from there (call-back, reason for leaving, dismiss), through the domain and the pages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from crm import lapsed, tasks, workdays
from crm.errors import FieldError
from crm.extensions import db
from crm.models import CallBack, Customer, Interaction, Kind, Lapse, LeaveReason, Status
from tests.conftest import csrf_from
from tests.factories import customer, order

TODAY = date(2026, 11, 23)


def _lapsed(name: str, at_risk: int, lapse: Lapse = Lapse.LAPSED, consent: bool = True, **columns) -> int:
    c = customer(name, emails=[f"{abs(hash(name))}@example.org"], phones=["+7 916 000-00-00"],
                 consents={"email": consent})
    c.lapse, c.at_risk, c.status = lapse, at_risk, Status(lapse.value)
    for key, value in columns.items():
        setattr(c, key, value)
    db.session.flush()
    return c.id


@pytest.fixture
def queue(ctx, manager):
    made = {
        "top": _lapsed("Top", 900),
        "middle": _lapsed("Middle", 500),
        "low": _lapsed("Low", 100),
        "lapsing": _lapsed("Lapsing one", 950, Lapse.LAPSING),
        "dnc": _lapsed("Do not call", 800, do_not_contact=True),
        "complainer": _lapsed("Complainer", 700, complainer=True),
        "no-consent": _lapsed("No consent", 600, consent=False),
        "in-sequence": _lapsed("In a sequence", 650, status=Status.IN_SEQUENCE),
        "inactive": _lapsed("Inactive", 640, status=Status.INACTIVE),
        "dismissed": _lapsed("Dismissed", 630, dismissed_until=TODAY + timedelta(days=3)),
        "dismissal-over": _lapsed("Dismissal over", 300, dismissed_until=TODAY),
    }
    db.session.commit()
    return made


def _names(rows) -> list[str]:
    return [c.name for c in rows]


def test_queue_ranks_by_value_at_risk_and_leaves_out_who_must_not_be_disturbed(queue):
    rows, cursor = lapsed.page(lapsed.QueueFilters(), today=TODAY)
    assert _names(rows) == ["Top", "Middle", "Dismissal over", "Low"]
    assert cursor is None
    counts = lapsed.exclusion_counts(lapsed.QueueFilters(), today=TODAY)
    assert counts == {"included": 4, "inactive": 1, "in_sequence": 1, "do_not_contact": 1, "complainer": 1,
                      "no_consent": 1, "dismissed": 1, "queued": 0}
    assert _names(lapsed.page(lapsed.QueueFilters(lapse="lapsing"), today=TODAY)[0]) == ["Lapsing one"]


def test_queue_pages_by_keyset(queue):
    first, cursor = lapsed.page(lapsed.QueueFilters(), today=TODAY, size=2)
    second, last = lapsed.page(lapsed.QueueFilters(), cursor, today=TODAY, size=2)
    assert (_names(first), _names(second), last) == (["Top", "Middle"], ["Dismissal over", "Low"], None)
    assert lapsed.decode_cursor("not-a-cursor") is None


def test_channel_filter_needs_consent_and_a_usable_contact(queue):
    top = db.session.get(Customer, queue["top"])
    for contact in top.contacts:
        if contact.kind.value == "email":
            contact.invalid = True  # a hard bounce
    db.session.commit()
    rows, _ = lapsed.page(lapsed.QueueFilters(channel="email"), today=TODAY)
    assert _names(rows) == ["Middle", "Dismissal over", "Low"]
    assert lapsed.page(lapsed.QueueFilters(channel="sms"), today=TODAY)[0] == []  # nobody agreed to SMS


def test_call_back_assignment_takes_the_customer_out_once(queue, manager):
    added = lapsed.assign_callbacks([queue["top"], queue["middle"]], manager.id, TODAY + timedelta(days=1),
                                    manager, today=TODAY)
    db.session.commit()
    assert added == 2
    # Asked again (a double click, another manager): nobody gets two calls.
    assert lapsed.assign_callbacks([queue["top"]], manager.id, TODAY, manager, today=TODAY) == 0
    callbacks = db.session.scalars(select(CallBack).order_by(CallBack.customer_id)).all()
    assert [(c.customer_id, c.manager_id, c.reason.value) for c in callbacks] == [
        (queue["top"], manager.id, "lapsed"), (queue["middle"], manager.id, "lapsed")]
    assert _names(lapsed.page(lapsed.QueueFilters(), today=TODAY)[0]) == ["Dismissal over", "Low"]
    assert lapsed.exclusion_counts(lapsed.QueueFilters(), today=TODAY)["queued"] == 2
    entry = db.session.scalars(select(Interaction).where(Interaction.customer_id == queue["top"],
                                                         Interaction.kind == Kind.CALLBACK)).one()
    assert entry.data["manager_id"] == manager.id


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"day": TODAY - timedelta(days=1)}, "day"),
    ({"day": None}, "day"),
    ({"manager_id": 99999}, "manager"),
    ({"manager_id": "x"}, "manager"),
    ({"ids": []}, "ids"),
])
def test_call_back_assignment_refuses_bad_input(queue, manager, kwargs, field):
    args = {"ids": [queue["top"]], "manager_id": manager.id, "day": TODAY} | kwargs
    with pytest.raises(FieldError) as refused:
        lapsed.assign_callbacks(args["ids"], args["manager_id"], args["day"], manager, today=TODAY)
    assert refused.value.field == field


def test_a_manager_cannot_fill_another_managers_queue(queue, manager, owner):
    with pytest.raises(FieldError):
        lapsed.assign_callbacks([queue["top"]], owner.id, TODAY, manager, today=TODAY)
    # An owner hands work to anyone.
    assert lapsed.assign_callbacks([queue["top"]], manager.id, TODAY, owner, today=TODAY) == 1


def test_reason_and_dismissal(queue, manager):
    assert lapsed.set_leave_reason([queue["low"]], "price", manager) == 1
    assert lapsed.set_leave_reason([queue["low"]], "price", manager) == 0  # unchanged
    with pytest.raises(FieldError):
        lapsed.set_leave_reason([queue["low"]], "weather", manager)
    assert db.session.get(Customer, queue["low"]).leave_reason is LeaveReason.PRICE
    assert lapsed.dismiss([queue["low"]], 30, manager, today=TODAY) == 1
    assert db.session.get(Customer, queue["low"]).dismissed_until == TODAY + timedelta(days=30)
    with pytest.raises(FieldError):
        lapsed.dismiss([queue["low"]], 5, manager, today=TODAY)


# --- pages ------------------------------------------------------------------------------------------

def test_queue_page_shows_names_as_text_and_counts_exclusions(app, manager_client):
    with app.app_context():
        _lapsed("<svg onload=alert(1)>", 999)
        _lapsed("Quiet", 10, do_not_contact=True)
        db.session.commit()
    page = manager_client.get("/lapsed")
    assert page.status_code == 200
    assert "&lt;svg onload=alert(1)&gt;" in page.text and "<svg onload" not in page.text
    excluded = manager_client.get("/lapsed/excluded", headers={"HX-Request": "true"})
    assert "1 to contact" in excluded.text and "Do not contact 1" in excluded.text
    partial = manager_client.get("/lapsed?lapse=lapsing", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "Nobody to bring back" in partial.text


def test_left_out_counts_are_kept_a_while_and_counted_afresh_after_a_rebuild(app, manager_client):
    def lapsed_buyer(name: str, **columns) -> None:
        made = customer(name, emails=[f"{name.lower()}@example.org"], consents={"email": True}, **columns)
        order(made, datetime.now(UTC) - timedelta(days=400))

    def excluded() -> str:
        return manager_client.get("/lapsed/excluded", headers={"HX-Request": "true"}).text

    with app.app_context():
        lapsed_buyer("Anna")
        tasks.rebuild_segments()
    assert "1 to contact" in excluded() and "Nobody left out" in excluded()
    with app.app_context():
        lapsed_buyer("Boris")
        db.session.execute(update(Customer).where(Customer.name == "Boris").values(do_not_contact=True))
        db.session.commit()
    assert "Nobody left out" in excluded()  # kept: not recounted after every change
    with app.app_context():
        tasks.rebuild_segments()  # as the nightly run, "Rebuild now" and an import's job end
    assert "1 to contact" in excluded() and "Do not contact 1" in excluded()


def test_bulk_call_back_from_the_page(app, manager_client, manager):
    with app.app_context():
        ident = _lapsed("Anna", 500)
        db.session.commit()
    page = manager_client.get("/lapsed")
    token = csrf_from(page.text)
    refused = manager_client.post("/lapsed/callbacks", data={"ids": [ident], "manager_id": manager.id,
                                                             "day": date.today().isoformat()})
    assert refused.status_code == 400  # no CSRF token
    with app.app_context():
        tomorrow = workdays.next_working_day(date.today()).isoformat()
    done = manager_client.post("/lapsed/callbacks", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "ids": [ident], "manager_id": manager.id, "day": tomorrow})
    assert done.status_code == 200 and "1 customers added" in done.text
    past = manager_client.post("/lapsed/callbacks", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "ids": [ident], "manager_id": manager.id, "day": "2001-01-01"})
    assert "Pick today or a later day." in past.text
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(CallBack)) == 1


def test_queue_filtered_by_a_saved_segment(queue, manager):
    from crm import customer_list, saved_segments

    db.session.get(Customer, queue["middle"]).city = "Tver"
    db.session.get(Customer, queue["low"]).city = "Tver"
    segment = saved_segments.create("Tver", customer_list.Filters(city="Tver"), manager)
    db.session.commit()
    rows, _ = lapsed.page(lapsed.QueueFilters(segment=str(segment.id)), today=TODAY)
    assert _names(rows) == ["Middle", "Low"]
    assert lapsed.page(lapsed.QueueFilters(segment="99999"), today=TODAY)[0] == []


@pytest.mark.parametrize("query", ["segment=%C2%B2", "manager=99999999999999999999", "segment=99999999999999999999",
                                   "after=WzEwMDAwMDAwMDAwMDAwMDAwMDAwMDAsIDFd"])
def test_odd_query_values_are_ignored_not_a_500(manager_client, query):
    assert manager_client.get(f"/lapsed?{query}").status_code == 200
    assert manager_client.get(f"/lapsed/excluded?{query}").status_code == 200


def test_odd_ids_in_a_bulk_action_are_refused_on_the_field(app, manager_client):
    token = csrf_from(manager_client.get("/lapsed").text)
    response = manager_client.post("/lapsed/dismiss", headers={"HX-Request": "true"},
                                   data={"csrf_token": token, "ids": ["\u00b2", "99999999999999999999"], "days": "7"})
    assert response.status_code == 200 and "Tick at least one customer." in response.text


def test_a_merge_keeps_the_call_backs(queue, manager):
    from crm import customers

    lapsed.assign_callbacks([queue["low"]], manager.id, TODAY, manager, today=TODAY)
    db.session.commit()
    keep = db.session.get(Customer, queue["top"])
    customers.merge(keep, db.session.get(Customer, queue["low"]), manager)
    db.session.commit()
    assert db.session.scalars(select(CallBack.customer_id)).all() == [keep.id]


def test_a_call_back_on_a_day_off_is_refused(queue, manager):
    with pytest.raises(FieldError) as refused:
        lapsed.assign_callbacks([queue["top"]], manager.id, date(2026, 11, 28), manager, today=TODAY)  # Saturday
    assert refused.value.message == "Pick a working day."

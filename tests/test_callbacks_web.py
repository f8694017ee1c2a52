"""The call-back queue's pages: whose queue a user sees, outcomes by htmx (row and progress swapped),
refusals shown on the row, undo, reassigning, scheduling from a card, history, and the settings."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from crm import clock, workdays
from crm.extensions import db
from crm.models import CallBack, CallReason, Customer, Interaction, Kind, Role, Status
from tests.conftest import make_user, page_token, reload, sign_in
from tests.factories import customer, lapsed_call, utc


@pytest.fixture
def calls(app, manager, owner):
    """Two calls due now in the manager's queue, one in the owner's."""
    with app.app_context():
        made = {name: lapsed_call(name, holder.id, at_risk) for name, holder, at_risk in (
            ("Anna Ivanova", manager, 900), ("Boris Petrov", manager, 500), ("Olga's client", owner, 100))}
        db.session.commit()
        return made


def _htmx(client, path="/callbacks"):
    return {"HX-Request": "true", "X-CSRFToken": page_token(client, path)}


def test_a_manager_sees_their_own_queue_ranked_with_phone_reason_and_progress(manager_client, calls):
    html = manager_client.get("/callbacks").get_data(as_text=True)
    assert html.index("Anna Ivanova") < html.index("Boris Petrov")
    assert "Olga&#39;s client" not in html and "Olga's client" not in html
    assert 'href="tel:+79123456789"' in html and "0 of 2 done today" in html
    # Asking for someone else's queue shows one's own.
    assert "Olga" not in manager_client.get("/callbacks?view=team").get_data(as_text=True).split("<main")[1]


def test_an_owner_switches_to_a_managers_queue_or_the_teams(owner_client, calls, manager):
    assert "Olga&#39;s client" in owner_client.get("/callbacks").get_data(as_text=True)
    theirs = owner_client.get(f"/callbacks?view={manager.id}").get_data(as_text=True)
    assert "Anna Ivanova" in theirs and "Olga&#39;s client" not in theirs
    team = owner_client.get("/callbacks?view=team").get_data(as_text=True)
    assert all(name in team for name in ("Anna Ivanova", "Boris Petrov", "Olga&#39;s client", "Maxim Manager"))
    assert "0 of 3 done today" in team
    assert owner_client.get("/callbacks?view=999999").status_code == 404


def test_an_outcome_swaps_the_row_and_the_progress_line_and_lands_on_the_timeline(app, manager_client, calls):
    call = calls["Anna Ivanova"]
    response = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "responded"},
                                   headers=_htmx(manager_client))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="call-{call}"' in html and "data-done" in html and "Reached, responded" in html
    assert 'hx-swap-oob="true"' in html and "1 of 2 done today" in html
    assert "data-undo-until" in html  # the undo button, for a few seconds
    with app.app_context():
        customer_id = db.session.get(CallBack, call).customer_id
        assert db.session.get(Customer, customer_id).status is Status.RESPONDED
        assert db.session.scalar(select(Interaction.outcome).where(Interaction.customer_id == customer_id,
                                                                   Interaction.kind == Kind.CALL)) == "responded"


def test_logging_or_taking_back_a_call_reloads_the_calls_per_day_history(manager_client, calls):
    page = manager_client.get("/callbacks").get_data(as_text=True)
    assert 'hx-trigger="load, calls-counted from:body"' in page  # the history section listens
    call = calls["Anna Ivanova"]
    headers = _htmx(manager_client)
    logged = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "no_answer"}, headers=headers)
    assert logged.status_code == 200 and logged.headers["HX-Trigger"] == "calls-counted"
    undone = manager_client.post(f"/callbacks/{call}/undo", headers=headers)
    assert undone.status_code == 200 and undone.headers["HX-Trigger"] == "calls-counted"
    refused = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "bogus"}, headers=headers)
    assert refused.status_code == 422 and "HX-Trigger" not in refused.headers  # nothing was counted


def test_a_double_click_records_once_and_a_colleague_sees_it_was_just_handled(app, manager_client, owner_client,
                                                                              calls):
    call = calls["Anna Ivanova"]
    headers = _htmx(manager_client)
    first = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "no_answer"}, headers=headers)
    again = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "no_answer"}, headers=headers)
    assert first.status_code == again.status_code == 200
    late = owner_client.post(f"/callbacks/{call}/outcome", data={"outcome": "responded"},
                             headers=_htmx(owner_client))
    assert late.status_code == 409
    assert "Maxim Manager has just handled this call (No answer)" in late.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Interaction.kind == Kind.CALL)) == 1


def test_another_managers_call_is_forbidden_and_an_unknown_one_not_found(manager_client, calls):
    headers = _htmx(manager_client)
    assert manager_client.post(f"/callbacks/{calls[chr(79) + 'lga' + chr(39) + 's client']}/outcome",
                               data={"outcome": "responded"}, headers=headers).status_code == 403
    assert manager_client.post("/callbacks/999999/outcome", data={"outcome": "responded"},
                               headers=headers).status_code == 404
    assert manager_client.get("/callbacks/999999/form/note", headers=headers).status_code == 404


def test_a_bad_call_back_time_is_refused_on_the_field_and_what_was_typed_stays(app, manager_client, calls):
    call = calls["Anna Ivanova"]
    form = manager_client.get(f"/callbacks/{call}/form/call_back", headers={"HX-Request": "true"})
    assert 'type="datetime-local"' in form.get_data(as_text=True)
    response = manager_client.post(f"/callbacks/{call}/outcome",
                                   data={"outcome": "call_back", "when": "2020-01-06T10:00", "note": "after payday"},
                                   headers=_htmx(manager_client))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Pick a time in the future." in html and 'value="2020-01-06T10:00"' in html and "after payday" in html
    assert reload(app, CallBack, call).done_at is None


def test_an_outcome_on_a_customer_moved_to_inactive_meanwhile_is_refused_and_explained(app, manager_client, calls):
    call = calls["Boris Petrov"]
    with app.app_context():
        db.session.get(CallBack, call).customer.status = Status.INACTIVE
        db.session.commit()
    response = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "no_answer"},
                                   headers=_htmx(manager_client))
    assert response.status_code == 409
    assert "Boris Petrov was moved to the inactive list meanwhile" in response.get_data(as_text=True)
    assert reload(app, CallBack, call).done_at is None


def test_a_note_is_shown_as_text_and_the_call_stays_to_do(app, manager_client, calls):
    call = calls["Anna Ivanova"]
    response = manager_client.post(f"/callbacks/{call}/note", data={"note": "<svg onload=alert(1)>"},
                                   headers=_htmx(manager_client))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "&lt;svg onload=alert(1)&gt;" in html and "<svg onload" not in html
    assert "data-done" not in html and reload(app, CallBack, call).done_at is None
    empty = manager_client.post(f"/callbacks/{call}/note", data={"note": " "}, headers=_htmx(manager_client))
    assert empty.status_code == 422 and "Write something first." in empty.get_data(as_text=True)


def test_undo_reopens_the_row(app, manager_client, calls):
    call = calls["Anna Ivanova"]
    headers = _htmx(manager_client)
    manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "wrong_number"}, headers=headers)
    response = manager_client.post(f"/callbacks/{call}/undo", headers=headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "data-done" not in html and "0 of 2 done today" in html
    assert reload(app, CallBack, call).done_at is None


def test_without_javascript_an_outcome_posts_and_comes_back_to_the_queue(app, manager_client, calls):
    call = calls["Anna Ivanova"]
    token = page_token(manager_client, "/callbacks")
    response = manager_client.post(f"/callbacks/{call}/outcome", data={"outcome": "no_answer", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/callbacks")
    assert "Anna Ivanova: No answer." in manager_client.get("/callbacks").get_data(as_text=True)
    opened = manager_client.get(f"/callbacks?open={calls['Boris Petrov']}&form=not_interested")
    assert 'name="reason"' in opened.get_data(as_text=True)


def test_an_owner_reassigns_ticked_calls_and_a_manager_may_not(app, owner_client, manager_client, calls, owner):
    other = make_user(app, "second@example.com", Role.MANAGER, "Second Manager")
    ids = [calls["Anna Ivanova"], calls["Boris Petrov"]]
    token = page_token(owner_client, "/callbacks")
    response = owner_client.post("/callbacks/reassign", data={"ids": ids, "manager_id": other.id,
                                                              "csrf_token": token})
    assert response.status_code == 302
    assert {reload(app, CallBack, i).manager_id for i in ids} == {other.id}
    assert "2 calls reassigned." in owner_client.get("/callbacks").get_data(as_text=True)
    token = page_token(manager_client, "/callbacks")
    assert manager_client.post("/callbacks/reassign", data={"ids": ids, "manager_id": owner.id,
                                                            "csrf_token": token}).status_code == 403


def test_a_call_back_is_scheduled_from_the_card(app, manager_client, manager):
    with app.app_context():
        person_id = customer("Vera").id
        db.session.commit()
        day = workdays.next_working_day(clock.team_today())
    token = page_token(manager_client, f"/customers/{person_id}")
    refused = manager_client.post("/callbacks/schedule", data={"customer_id": person_id, "manager_id": manager.id,
                                                               "day": "2020-01-06", "csrf_token": token},
                                  follow_redirects=True)
    assert "Pick today or a later day." in refused.get_data(as_text=True)
    done = manager_client.post("/callbacks/schedule", data={"customer_id": person_id, "manager_id": manager.id,
                                                            "day": day.isoformat(), "at": "15:30",
                                                            "note": "New range", "csrf_token": token},
                               follow_redirects=True)
    html = done.get_data(as_text=True)
    assert "Call-back scheduled." in html and "Waiting for a call from Maxim Manager" in html
    with app.app_context():
        call = db.session.scalar(select(CallBack).where(CallBack.customer_id == person_id))
        assert call.reason is CallReason.PROMISED and call.note == "New range"
        assert call.due_at.replace(tzinfo=UTC) == workdays.local_moment(day, datetime.strptime("15:30", "%H:%M").time())


def test_history_shows_calls_per_day_as_a_chart_with_a_table(manager_client, calls):
    manager_client.post(f"/callbacks/{calls['Anna Ivanova']}/outcome", data={"outcome": "responded"},
                        headers=_htmx(manager_client))
    partial = manager_client.get("/callbacks/history", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<svg" in partial and "<table" in partial and "<html" not in partial
    page = manager_client.get("/callbacks/history?days=30").get_data(as_text=True)
    assert "Call history" in page and "last 30 days" in page


@pytest.fixture
def far_east_calls(make_app):
    """A team in Vladivostok (UTC+10: 14:00 UTC is its midnight) with calls logged either side of its
    midnights at the ends of January and February; signed-in clients for its owner and manager."""
    app = make_app(TEAM_TIMEZONE="Asia/Vladivostok")
    with app.app_context():
        db.create_all()
    owner = make_user(app, "owner@example.com", Role.OWNER, "Olga Owner")
    manager = make_user(app, "manager@example.com", Role.MANAGER, "Maxim Manager")
    with app.app_context():
        for name, outcome, done_at, holder in (
                ("Jan Last", "responded", utc(2026, 1, 31, 13, 59), manager),  # 31 January 23:59 there
                ("Feb First", "responded", utc(2026, 1, 31, 14), manager),  # 1 February 00:00
                ("Feb Tenth", "responded", utc(2026, 2, 10, 3), owner),
                ("Feb Last", "no_answer", utc(2026, 2, 28, 13, 30), manager),  # 28 February 23:30
                ("Mar First", "not_interested", utc(2026, 2, 28, 14, 30), manager),  # 1 March 00:30
                ("Moved Away", "inactive", utc(2026, 2, 12, 3), manager)):  # closed by the move, not a call
            db.session.add(CallBack(customer_id=customer(name).id, manager_id=holder.id, reason=CallReason.LAPSED,
                                    due_at=done_at, done_at=done_at, outcome=outcome, handled_by_id=holder.id))
        db.session.commit()
    clients = {}
    for user in (owner, manager):
        clients[user.role] = app.test_client()
        assert sign_in(clients[user.role], user.email).status_code == 302
    yield clients
    with app.app_context():
        db.engine.dispose()


def _totals(html: str) -> list[int]:
    """The history table's totals: calls, reached, responded, ordered after."""
    footer = html[html.index("<tfoot>"):html.index("</tfoot>")]
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', footer)]


def test_history_shows_the_calls_logged_on_chosen_team_days_and_of_one_outcome(far_east_calls):
    owner = far_east_calls[Role.OWNER]
    february = "called_from=2026-02-01&called_to=2026-02-28"
    html = owner.get(f"/callbacks/history?view=team&{february}").text
    assert _totals(html) == [3, 2, 2, 0]
    assert "Feb 1, 2026 – Feb 28, 2026" in html
    assert ">Feb 1, 2026</th>" in html and ">Feb 28, 2026</th>" in html
    assert ">Jan 31, 2026</th>" not in html and ">Mar 1, 2026</th>" not in html
    assert 'name="called_from" value="2026-02-01"' in html and 'name="called_to" value="2026-02-28"' in html
    html = owner.get(f"/callbacks/history?view=team&outcome=responded&{february}").text
    assert _totals(html) == [2, 2, 2, 0] and "Reached, responded" in html
    assert '<option value="responded" selected>' in html
    # The quick periods keep the outcome and whose calls.
    assert 'href="/callbacks/history?days=30&amp;outcome=responded&amp;view=team"' in html
    assert _totals(owner.get(f"/callbacks/history?view=team&outcome=no_answer&{february}").text) == [1, 0, 0, 0]
    assert _totals(owner.get("/callbacks/history?view=team&called_from=2026-03-01&called_to=2026-03-01").text) \
        == [1, 1, 0, 0]
    # htmx gets the chart alone, with the same figures.
    partial = owner.get(f"/callbacks/history?view=team&{february}", headers={"HX-Request": "true"}).text
    assert "<html" not in partial and _totals(partial) == [3, 2, 2, 0]
    # A manager sees their own calls only.
    assert _totals(far_east_calls[Role.MANAGER].get(f"/callbacks/history?{february}").text) == [2, 1, 1, 0]


@pytest.mark.parametrize("query, shown", [
    ("outcome=bogus", ("2026-02-20", "2026-03-05")),  # the last 14 days
    ("outcome=inactive", ("2026-02-20", "2026-03-05")),
    ("called_from=2026-02-30", ("2026-02-20", "2026-03-05")),
    ("called_to=x", ("2026-02-20", "2026-03-05")),
    ("called_to=9999-12-31", ("2026-02-20", "2026-03-05")),
    ("called_from=0001-01-01&called_to=0001-01-05", ("2026-02-20", "2026-03-05")),
    ("days=-1", ("2026-02-20", "2026-03-05")),
    ("called_from=2026-03-01", ("2026-03-01", "2026-03-05")),  # up to today
    ("called_to=2026-02-28", ("2026-02-15", "2026-02-28")),  # two weeks up to that day
    ("days=90&called_from=2026-02-01&called_to=2026-02-02", ("2026-02-01", "2026-02-02")),  # dates win
    ("called_from=2000-01-01&called_to=2026-02-28", ("2025-02-28", "2026-02-28")),  # at most 366 days
    ("called_from=2026-03-01&called_to=2026-02-01", ("2026-03-01", "2026-02-01")),  # nothing between
])
def test_nonsense_history_arguments_are_ignored_not_500(far_east_calls, monkeypatch, query, shown):
    monkeypatch.setattr(clock, "team_today", lambda: date(2026, 3, 5))
    response = far_east_calls[Role.OWNER].get(f"/callbacks/history?view=team&{query}")
    assert response.status_code == 200
    html = response.text
    assert f'name="called_from" value="{shown[0]}"' in html and f'name="called_to" value="{shown[1]}"' in html
    if shown[0] > shown[1]:
        assert "No calls logged in this period yet." in html
    if query.startswith("called_from=2000"):
        assert html.count('<th scope="row">', html.index("<tbody>")) == 366 + 1  # a row a day, and the total


def test_the_owner_sets_the_call_rules_and_bad_values_are_refused_on_the_field(app, owner_client):
    token = page_token(owner_client, "/settings")
    refused = owner_client.post("/settings/calls", data={"daily_cap": "0", "attempt_limit": "3",
                                                         "after_attempts": "queue", "returned_within_days": "14",
                                                         "csrf_token": token})
    assert refused.status_code == 422 and "Enter a number of calls from 1 to 1000." in refused.get_data(as_text=True)
    saved = owner_client.post("/settings/calls", data={"daily_cap": "25", "attempt_limit": "2",
                                                       "after_attempts": "inactive", "returned_within_days": "7",
                                                       "csrf_token": token})
    assert saved.status_code == 200 and 'value="25"' in saved.get_data(as_text=True)
    with app.app_context():
        from crm import settings
        from crm.settings import CallRules

        assert settings.load(CallRules) == CallRules(daily_cap=25, attempt_limit=2, after_attempts="inactive",
                                                     returned_within_days=7)


def test_customers_ticked_in_the_list_go_to_the_call_back_queue(app, manager_client, manager):
    with app.app_context():
        ids = [customer(name).id for name in ("Vera", "Gleb")]
        db.session.commit()
        day = workdays.next_working_day(clock.team_today())
    token = page_token(manager_client, "/customers")
    assert "Add to call-backs" in manager_client.get("/customers").get_data(as_text=True)
    response = manager_client.post("/customers/bulk/callbacks", data={"ids": ids, "manager_id": manager.id,
                                                                      "day": day.isoformat()},
                                   headers={"HX-Request": "true", "X-CSRFToken": token})
    assert "2 customers added to the call-back queue." in response.get_data(as_text=True)
    refused = manager_client.post("/customers/bulk/callbacks", data={"ids": ids, "manager_id": "round_robin",
                                                                     "day": day.isoformat()},
                                  headers={"HX-Request": "true", "X-CSRFToken": token})
    assert "Only an owner shares calls among the team." in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CallBack)) == 2

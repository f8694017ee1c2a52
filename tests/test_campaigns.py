"""The campaign report on a small base whose answers are worked out by hand: per sequence and per
step (sent, delivered, clicked, answers and returns credited to the last step delivered before the
answer, moves to inactive), the lift over the holdout, costs per channel and per returned customer,
nothing divided by zero; the dashboard's period totals and call-back outcomes with their window
edges; the costs in Settings → Channels; the page and the owner's CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta, timezone

import pytest
from sqlalchemy import event

from crm import callbacks, campaigns, sequences, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    CallBack,
    CallReason,
    Customer,
    Enrolment,
    EnrolmentState,
    Message,
    MessageState,
    Status,
    StepChannel,
    User,
)
from crm.settings import Messaging
from tests.conftest import csrf_from
from tests.factories import customer, order, utc

T0 = utc(2026, 3, 2, 10)  # when everyone of the base was enrolled
DAY = timedelta(days=1)
COSTS = {"email": 5, "sms": 150}  # 0.05 and 1.50 a message


@dataclass
class Base:
    win_back: int  # the sequence with everything in it
    quiet: int  # one running enrolment, nothing sent, no holdout
    empty: int  # nobody enrolled


def _sequence(owner, length: int, name: str, channels: list[StepChannel] | None = None, **changes) -> int:
    made = sequences.create(length, name, db.session.get(User, owner.id))
    for step, channel in zip(made.steps, channels or [], strict=False):
        step.channel = channel
    for key, value in changes.items():
        setattr(made, key, value)
    db.session.flush()
    return made.id


def _enrol(sequence_id: int, person: Customer, state: EnrolmentState, ended: timedelta | None = None,
           at=T0) -> Enrolment:
    made = Enrolment(sequence_id=sequence_id, customer_id=person.id, state=state, source="test", enrolled_at=at,
                     ended_at=at + ended if ended is not None else None, next_step=2)
    db.session.add(made)
    db.session.flush()
    return made


def _message(enrolment: Enrolment, step: int, state: MessageState, channel: str = "email",
             sent: timedelta | None = None, clicked: timedelta | None = None, reason: str | None = None) -> None:
    db.session.add(Message(enrolment_id=enrolment.id, sequence_id=enrolment.sequence_id,
                           customer_id=enrolment.customer_id, step=step, state=state, channel=channel, reason=reason,
                           queued_at=T0, sent_at=T0 + sent if sent is not None else None,
                           clicked_at=T0 + clicked if clicked is not None else None))


def build_base(owner) -> Base:
    """Win back (3 steps: email, SMS, preferred; a 30-day return window):
    anna   responded (clicked step 1 on day 3; step 2 was on the wire then and arrived after), ordered 100.00 on day 3
    boris  responded (replied on day 5, after step 2 arrived; step 3 skipped)
    vera   inactive on day 10 (step 1 failed, steps 2 and 3 delivered), ordered 50.00 on day 20
    gleb   running (step 1 uncertain, step 2 queued), ordered before enrolment and on day 40 (too late)
    daria  ordered 200.00 an hour after enrolment, before any message
    egor   stopped (step 1 skipped: no consent), a cancelled order on day 1
    fedor, galina, hugo held out; fedor ordered 30.00 on day 10."""
    win_back = _sequence(owner, 3, "Win back", [StepChannel.EMAIL, StepChannel.SMS, StepChannel.PREFERRED],
                         return_days=30, holdout_percent=30)
    quiet = _sequence(owner, 5, "Quiet")
    empty = _sequence(owner, 3, "Nobody yet")
    people = {name: customer(name.title()) for name in
              ("anna", "boris", "vera", "gleb", "daria", "egor", "fedor", "galina", "hugo", "ivan")}
    # Orders first: a paid order placed while a sequence runs would end it (that is the app's own rule).
    order(people["anna"], T0 + 3 * DAY, "100.00")
    order(people["vera"], T0 + 20 * DAY, "50.00")
    order(people["gleb"], T0 - DAY, "70.00")
    order(people["gleb"], T0 + 40 * DAY, "80.00")
    order(people["daria"], T0 + timedelta(hours=1), "200.00")
    order(people["egor"], T0 + DAY, "90.00", status="cancelled")
    order(people["fedor"], T0 + 10 * DAY, "30.00")
    anna = _enrol(win_back, people["anna"], EnrolmentState.RESPONDED, 3 * DAY)
    boris = _enrol(win_back, people["boris"], EnrolmentState.RESPONDED, 5 * DAY)
    vera = _enrol(win_back, people["vera"], EnrolmentState.INACTIVE, 10 * DAY)
    gleb = _enrol(win_back, people["gleb"], EnrolmentState.ACTIVE)
    _enrol(win_back, people["daria"], EnrolmentState.RESPONDED, timedelta(hours=2))
    egor = _enrol(win_back, people["egor"], EnrolmentState.STOPPED, 2 * DAY)
    for name in ("fedor", "galina", "hugo"):
        _enrol(win_back, people[name], EnrolmentState.HOLDOUT, timedelta(0))
    _enrol(quiet, people["ivan"], EnrolmentState.ACTIVE)
    _message(anna, 1, MessageState.SENT, "email", sent=timedelta(hours=1), clicked=3 * DAY)
    _message(anna, 2, MessageState.SENT, "sms", sent=3 * DAY + timedelta(minutes=1))
    _message(boris, 1, MessageState.SENT, "email", sent=timedelta(hours=1))
    _message(boris, 2, MessageState.SENT, "sms", sent=4 * DAY)
    _message(boris, 3, MessageState.SKIPPED, "email", reason="reply")
    _message(vera, 1, MessageState.FAILED, "email", reason="refused")
    _message(vera, 2, MessageState.SENT, "sms", sent=4 * DAY)
    _message(vera, 3, MessageState.SENT, "email", sent=6 * DAY)
    _message(gleb, 1, MessageState.UNCERTAIN, "email")
    _message(gleb, 2, MessageState.QUEUED, "sms")
    _message(egor, 1, MessageState.SKIPPED, "email", reason="no_consent")
    db.session.commit()
    return Base(win_back, quiet, empty)


def _by_id(report: campaigns.Report) -> dict[int, campaigns.SequenceRow]:
    return {row.id: row for row in report.sequences}


def _step_figures(step: campaigns.StepRow) -> tuple:
    return (step.sent, step.delivered, step.failed, step.uncertain, step.clicked, step.skipped, step.responded,
            step.returned, step.revenue, step.moved_to_inactive)


# --- the report ----------------------------------------------------------------------------------------

def test_per_sequence_figures_and_the_lift_over_the_holdout(app, ctx, owner):
    base = build_base(owner)
    row = _by_id(campaigns.report(Messaging(costs=COSTS)))[base.win_back]
    assert (row.name, row.enrolled, row.held_out) == ("Win back", 6, 3)
    # Attempted: step 1 four (two delivered, one failed, one uncertain), step 2 three, step 3 one.
    assert (row.sent, row.delivered, row.failed, row.uncertain, row.clicked, row.skipped) == (8, 6, 1, 1, 1, 2)
    assert (row.responded, row.moved_to_inactive) == (3, 1)  # anna, boris, daria; vera
    # Returned within 30 days: anna 100, vera 50 (after her sequence ended), daria 200; gleb's day-40
    # order is too late and his earlier one before enrolment; egor's was cancelled.
    assert (row.returned, row.revenue) == (3, 35_000)
    assert row.held_returned == 1  # fedor, of the three held out
    assert row.lift_pp == pytest.approx(3 / 6 * 100 - 1 / 3 * 100)  # 16.7 pp
    assert row.return_rate == pytest.approx(0.5)


def test_per_step_figures_and_answers_credited_to_the_last_step_delivered_before_them(app, ctx, owner):
    base = build_base(owner)
    row = _by_id(campaigns.report(Messaging(costs=COSTS)))[base.win_back]
    assert [(step.position, step.channel) for step in row.steps] == [(1, "email"), (2, "sms"), (3, "preferred")]
    step1, step2, step3 = row.steps
    # sent, delivered, failed, uncertain, clicked, skipped, responded, returned, revenue, inactive
    # Anna clicked step 1; her step 2 arrived after she answered, so it is not what brought her back.
    assert _step_figures(step1) == (4, 2, 1, 1, 1, 1, 1, 1, 10_000, 0)
    # Boris answered after step 2 reached him.
    assert _step_figures(step2) == (3, 3, 0, 0, 0, 0, 1, 0, 0, 0)
    # Vera went through every step, then came back: step 3 was the last she got; her move to
    # inactive is credited to the last step too.
    assert _step_figures(step3) == (1, 1, 0, 0, 0, 1, 0, 1, 5_000, 1)
    # Daria ordered before any message reached her.
    first = row.before_first
    assert first is not None and (first.responded, first.returned, first.revenue, first.sent) == (1, 1, 20_000, 0)
    assert sum(s.responded for s in row.steps) + first.responded == row.responded
    assert sum(s.revenue for s in row.steps) + first.revenue == row.revenue


def test_costs_by_the_channel_actually_used_and_per_returned_customer(app, ctx, owner):
    base = build_base(owner)
    report = campaigns.report(Messaging(costs=COSTS))
    row = _by_id(report)[base.win_back]
    # Step 1: four emails tried (failed and uncertain ones cost too); step 2: three SMS; step 3: one email.
    assert [step.cost for step in row.steps] == [4 * 5, 3 * 150, 1 * 5]
    assert row.cost == 475
    assert row.cost_per_returned == 158  # 475 / 3 = 158.33, in minor units
    assert row.steps[0].cost_per_returned == 20 and row.steps[1].cost_per_returned is None  # step 2 returned nobody
    assert report.costs_entered and report.uncosted == []
    # Only email's cost entered: SMS counts as free and the report says so.
    email_only = campaigns.report(Messaging(costs={"email": 5}))
    assert _by_id(email_only)[base.win_back].cost == 25 and email_only.uncosted == ["sms"]


def test_no_holdout_no_returns_no_costs_and_no_sequences_divide_nothing_by_zero(app, ctx, owner):
    base = build_base(owner)
    rows = _by_id(campaigns.report(Messaging()))
    quiet, empty, win_back = rows[base.quiet], rows[base.empty], rows[base.win_back]
    assert (quiet.enrolled, quiet.held_out, quiet.returned, quiet.sent) == (1, 0, 0, 0)
    assert quiet.lift_pp is None and quiet.cost is None and quiet.cost_per_returned is None
    assert quiet.return_rate == 0 and len(quiet.steps) == 5 and quiet.before_first is None
    assert (empty.enrolled, empty.held_out, empty.lift_pp, empty.return_rate, empty.cost_per_returned) == (
        0, 0, None, None, None)
    # No costs entered: no cost anywhere, and no cost per returned customer although some returned.
    assert win_back.cost is None and win_back.cost_per_returned is None
    assert all(step.cost is None for step in win_back.steps)
    # Costs entered, nothing sent: a cost of zero, and still no cost per returned customer.
    assert _by_id(campaigns.report(Messaging(costs=COSTS)))[base.quiet].cost == 0
    for sequence_id in (base.win_back, base.quiet, base.empty):
        db.session.delete(db.session.get(sequences.Sequence, sequence_id))
    db.session.commit()
    nothing = campaigns.report(Messaging(costs=COSTS))
    assert nothing.sequences == [] and list(campaigns.csv_rows(nothing, "USD")) == []


def test_the_report_takes_the_same_few_queries_however_big_the_base(app, ctx, owner):
    build_base(owner)

    def queries() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            db.session.expire_all()
            campaigns.report(Messaging(costs=COSTS))
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    before = queries()
    for n in range(3):
        more = _sequence(owner, 7, f"More {n}")
        for i in range(5):
            made = _enrol(more, customer(f"Extra {n}-{i}"), EnrolmentState.RESPONDED, 3 * DAY)
            for position in range(1, 8):
                _message(made, position, MessageState.SENT, "sms", sent=timedelta(hours=position))
    db.session.commit()
    assert queries() == before <= 6
    assert len(campaigns.report().sequences) == 6


def test_the_sequence_page_figures_are_the_same_implementation(app, ctx, owner):
    base = build_base(owner)
    figures = sequences.figures(db.session.get(sequences.Sequence, base.win_back))
    assert (figures.enrolled, figures.held_out, figures.running, figures.responded, figures.inactive,
            figures.stopped) == (6, 3, 1, 3, 1, 1)
    assert (figures.returned, figures.returned_revenue, figures.held_returned) == (3, 35_000, 1)
    assert [(s.sent, s.failed, s.queued, s.uncertain, s.clicked) for s in figures.steps] == [
        (2, 1, 0, 1, 1), (3, 0, 1, 0, 0), (1, 0, 0, 0, 0)]
    assert figures.steps[0].skipped == {"no_consent": 1} and figures.steps[2].skipped == {"reply": 1}


@pytest.mark.postgres
def test_the_report_and_period_totals_agree_on_postgresql(pg_app, pg_ctx):
    from crm.models import Role
    from tests.conftest import make_user

    base = build_base(make_user(pg_app, "owner@example.com", Role.OWNER))
    row = _by_id(campaigns.report(Messaging(costs=COSTS)))[base.win_back]
    assert (row.enrolled, row.held_out, row.returned, row.revenue, row.held_returned) == (6, 3, 3, 35_000, 1)
    assert [_step_figures(step) for step in row.steps] == [
        (4, 2, 1, 1, 1, 1, 1, 1, 10_000, 0), (3, 3, 0, 0, 0, 0, 1, 0, 0, 0), (1, 1, 0, 0, 0, 1, 0, 1, 5_000, 1)]
    assert (row.cost, row.before_first.revenue) == (475, 20_000)
    totals = campaigns.period_totals(T0, T0 + DAY)
    assert (totals.enrolled, totals.held_out, totals.returned, totals.returned_revenue) == (7, 3, 3, 35_000)
    assert campaigns.period_totals(T0 - DAY, T0) == campaigns.PeriodTotals()
    assert _summarised(T0.date()) == totals


def _summarised(day):
    """The dashboard's reading of one team day, from the summary the nightly rebuild keeps."""
    from crm import summaries

    summaries.build(day)
    return campaigns.summarised_totals(day, day)


# --- period totals and call-back outcomes ------------------------------------------------------------------

def test_period_totals_count_the_enrolments_of_the_window(app, ctx, owner):
    build_base(owner)
    totals = campaigns.period_totals(T0, T0 + DAY)
    assert (totals.enrolled, totals.held_out, totals.responded) == (7, 3, 3)  # win back's six and quiet's one
    assert (totals.returned, totals.returned_revenue, totals.held_returned) == (3, 35_000, 1)
    assert totals.lift_pp == pytest.approx(3 / 7 * 100 - 1 / 3 * 100)
    assert campaigns.period_totals(T0 + DAY, T0 + 2 * DAY) == campaigns.PeriodTotals()
    assert campaigns.PeriodTotals().lift_pp is None
    # The nightly summary the dashboard reads says the same for that day, and nothing for the next.
    assert _summarised(T0.date()) == totals
    assert _summarised((T0 + DAY).date()) == campaigns.PeriodTotals()


def test_period_totals_window_edges_are_half_open(app, ctx, owner):
    sequence_id = _sequence(owner, 3, "Edges")
    start, end = utc(2026, 5, 1), utc(2026, 6, 1)
    for name, at in (("Before", start - timedelta(microseconds=1)), ("At start", start),
                     ("Last moment", end - timedelta(microseconds=1)), ("At end", end)):
        _enrol(sequence_id, customer(name), EnrolmentState.ACTIVE, at=at)
    _enrol(sequence_id, customer("Held"), EnrolmentState.HOLDOUT, timedelta(0), at=start)
    for name, since, status in (("Moved at start", start, Status.INACTIVE), ("Moved at end", end, Status.INACTIVE),
                                ("Moved before", start - timedelta(seconds=1), Status.INACTIVE),
                                ("Moved mid", start + 3 * DAY, Status.INACTIVE),
                                ("Restored", None, Status.ACTIVE)):
        person = customer(name)
        person.status, person.inactive_since = status, since
    db.session.commit()
    totals = campaigns.period_totals(start, end)
    assert (totals.enrolled, totals.held_out, totals.moved_to_inactive) == (2, 1, 2)
    assert totals.lift_pp == 0  # nobody came back on either side
    # The same instants in another zone give the same answer; a naive one is refused.
    moscow = timezone(timedelta(hours=3))
    assert campaigns.period_totals(start.astimezone(moscow), end.astimezone(moscow)) == totals
    with pytest.raises(ValueError):
        campaigns.period_totals(start.replace(tzinfo=None), end)


def test_period_totals_without_a_holdout_have_no_lift(app, ctx, owner):
    sequence_id = _sequence(owner, 3, "No holdout")
    _enrol(sequence_id, customer("Anna"), EnrolmentState.ACTIVE, at=T0)
    db.session.commit()
    totals = campaigns.period_totals(T0, T0 + DAY)
    assert (totals.enrolled, totals.held_out, totals.lift_pp) == (1, 0, None)


def test_the_dashboard_figures_read_through_indexes(app, ctx, owner):
    build_base(owner)
    seen = []
    listener = lambda conn, cursor, sql, params, *rest: seen.append((sql, params))  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        campaigns.period_totals(T0, T0 + DAY)
        callbacks.callback_outcomes(T0, T0 + DAY)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    plans = [[row[3] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
             for sql, params in seen]
    lines = [line for plan in plans for line in plan]
    assert "SEARCH enrolments USING INDEX ix_enrolments_enrolled_at (enrolled_at>? AND enrolled_at<?)" in lines
    assert any(line.startswith("SEARCH customers USING COVERING INDEX ix_customers_status_inactive_since")
               for line in lines)
    assert any(line.startswith("SEARCH callbacks USING INDEX ix_callbacks_done_at") for line in lines)
    assert not [line for line in lines if line.startswith(("SCAN enrolments", "SCAN orders", "SCAN customers",
                                                           "SCAN callbacks", "SCAN messages"))]


def test_callback_outcomes_count_the_outcomes_logged_in_the_window(app, ctx, manager):
    start, end = utc(2026, 5, 1), utc(2026, 5, 2)
    logged = [("responded", start), ("no_answer", start + timedelta(hours=3)), ("no_answer", end - timedelta(0, 1)),
              ("call_back", end), ("wrong_number", start - timedelta(seconds=1)),
              ("inactive", start + timedelta(hours=1)),  # closed by a move to the inactive list, not a call
              (None, None)]  # still open
    for i, (outcome, done_at) in enumerate(logged):
        person = customer(f"Caller {i}")
        db.session.add(CallBack(customer_id=person.id, manager_id=manager.id, reason=CallReason.LAPSED,
                                due_at=start, done_at=done_at, outcome=outcome))
    db.session.commit()
    assert callbacks.callback_outcomes(start, end) == {
        "responded": 1, "not_interested": 0, "no_answer": 2, "wrong_number": 0, "call_back": 0}
    assert list(callbacks.callback_outcomes(end, end)) == list(callbacks.OUTCOMES)
    with pytest.raises(ValueError):
        callbacks.callback_outcomes(start.replace(tzinfo=None), end)


# --- costs in Settings → Channels -------------------------------------------------------------------------

CHANNELS_FORM = {"fallback": ["email", "sms", "telegram", "whatsapp"], "weekly_cap": "3"}


def _save_channels(client, **fields):
    token = csrf_from(client.get("/settings").text)
    return client.post("/settings/channels", data={**CHANNELS_FORM, **fields, "csrf_token": token})


def _stored_costs(app) -> dict:
    with app.app_context():
        return settings.load(Messaging).costs


def test_the_owner_enters_costs_per_message_in_major_units(app, owner_client):
    response = _save_channels(owner_client, cost_email="0.05", cost_sms="1,50", cost_telegram="")
    assert response.status_code == 200 and "Saved." in response.text
    assert _stored_costs(app) == {"email": 5, "sms": 150}
    html = owner_client.get("/settings").text
    assert 'name="cost_email"' in html and 'value="0.05"' in html and 'value="1.50"' in html
    # A form without the cost fields keeps them; an emptied field clears that one.
    assert _save_channels(owner_client).status_code == 200 and _stored_costs(app) == {"email": 5, "sms": 150}
    assert _save_channels(owner_client, cost_email="", cost_sms="1.50").status_code == 200
    assert _stored_costs(app) == {"sms": 150}


@pytest.mark.parametrize(("typed", "message"), [
    ("-1", "The amount cannot be negative."),
    ("a lot", "Enter an amount, e.g. 1234.50."),
    ("0.001", "Too many decimal places or too large."),
    ("5000", "Enter a smaller amount."),
])
def test_an_unworkable_cost_is_refused_on_its_field_and_nothing_is_saved(app, owner_client, typed, message):
    response = _save_channels(owner_client, cost_sms=typed, weekly_cap="5")
    assert response.status_code == 422
    assert 'id="cost_sms-error"' in response.text and message in response.text
    assert 'aria-describedby="cost_sms-error"' in response.text and f'value="{typed}"' in response.text
    with app.app_context():
        assert settings.load(Messaging) == Messaging()


def test_costs_are_validated_with_the_rest_of_the_messaging_settings():
    assert Messaging(costs={"email": 0, "sms": settings.MAX_MESSAGE_COST}).validate()
    for costs, where in (({"fax": 1}, "costs"), ({"sms": -1}, "cost_sms"), ({"sms": 1.5}, "cost_sms"),
                         ({"sms": True}, "cost_sms"), ({"sms": settings.MAX_MESSAGE_COST + 1}, "cost_sms")):
        with pytest.raises(FieldError) as refused:
            Messaging(costs=costs).validate()
        assert refused.value.field == where


# --- the page and the CSV ----------------------------------------------------------------------------------

def _base_with_costs(app, owner, costs=COSTS) -> Base:
    with app.app_context():
        base = build_base(owner)
        settings.save(Messaging(costs=costs))
        db.session.commit()
        return base


def test_the_page_shows_a_table_per_sequence_with_its_steps(app, owner_client, owner):
    base = _base_with_costs(app, owner)
    html = owner_client.get("/reports/campaigns").text
    assert f'<a href="/sequences/{base.win_back}">Win back</a>' in html
    assert f'<a href="/sequences/{base.quiet}">Quiet</a>' in html
    section = html.split(f'id="sequence-{base.win_back}-h"')[1].split("</section>")[0]
    assert "$350.00" in section and "+16.7 pp" in section and "$4.75" in section and "$1.58" in section
    rows = section.split("<tbody>")[1].split("<tr")[1:]
    cells = lambda row: [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]  # noqa: E731
    # sent, delivered, failed, clicked, skipped, responded, returned, revenue, inactive, cost
    assert cells(rows[0]) == ["8", "6", "1", "1", "2", "3", "3", "$350.00", "1", "$4.75"]
    assert cells(rows[1]) == ["4", "2", "1", "1", "1", "1", "1", "$100.00", "0", "$0.20"]
    assert "Step 3" in rows[3] and "Preferred" in rows[3]
    assert "Before any message" in rows[4] and cells(rows[4])[5:8] == ["1", "1", "$200.00"]
    quiet = html.split(f'id="sequence-{base.quiet}-h"')[1].split("</section>")[0]
    assert "needs a holdout" in quiet
    empty = html.split(f'id="sequence-{base.empty}-h"')[1].split("</section>")[0]
    assert "Nobody has been enrolled in this sequence yet." in empty and "<table" not in empty
    assert 'href="/reports/campaigns.csv"' in html and 'id="costs-note"' not in html
    assert 'style="' not in html.split("<main")[1]
    assert 'href="/reports/campaigns"' in owner_client.get("/sequences").text


def test_a_manager_sees_the_page_but_no_csv_and_is_told_who_enters_costs(app, manager_client, owner):
    base = _base_with_costs(app, owner, costs={})
    html = manager_client.get("/reports/campaigns").text
    assert f'<a href="/sequences/{base.win_back}">Win back</a>' in html
    assert "reports/campaigns.csv" not in html
    assert "No message costs are entered" in html and "An owner can enter them" in html
    assert 'href="/settings#channels"' not in html
    assert manager_client.get("/reports/campaigns.csv").status_code == 403


def test_the_owner_is_pointed_to_settings_when_costs_are_missing(app, owner_client, owner):
    _base_with_costs(app, owner, costs={"email": 5})
    html = owner_client.get("/reports/campaigns").text
    assert "No cost is entered for SMS" in html and 'href="/settings#channels"' in html
    _base_with_costs(app, owner, costs={})
    html = owner_client.get("/reports/campaigns").text
    assert "No message costs are entered" in html and 'href="/settings#channels"' in html


def test_without_sequences_the_page_says_so(owner_client):
    html = owner_client.get("/reports/campaigns").text
    assert "No sequences yet, so there is nothing to report." in html
    assert "reports/campaigns.csv" not in html and "<table" not in html


def test_html_in_a_sequence_name_is_shown_as_text(app, manager_client, owner):
    with app.app_context():
        _sequence(owner, 3, "<b>Bold</b> & co")
        db.session.commit()
    html = manager_client.get("/reports/campaigns").text
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in html and "<b>Bold</b>" not in html


def _csv(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_csv_has_a_row_per_sequence_and_per_step(app, owner_client, owner):
    base = _base_with_costs(app, owner)
    with app.app_context():
        db.session.get(sequences.Sequence, base.empty).name = '=HYPERLINK("x")'
        db.session.commit()
    response = owner_client.get("/reports/campaigns.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="campaigns.csv"' in response.headers["Content-Disposition"]
    header, *rows = _csv(response)
    assert tuple(header) == campaigns.CSV_COLUMNS
    # Three sequences of 3 + 5 + 3 steps, and win back's "before any message" row.
    assert len(rows) == 3 + 11 + 1
    by_level = {}
    for row in rows:
        by_level.setdefault((row[0], row[1]), []).append(dict(zip(header, row, strict=True)))
    win_back = by_level[("sequence", str(base.win_back))][0]
    assert (win_back["enrolled"], win_back["held_out"], win_back["sent"], win_back["delivered"]) == ("6", "3", "8", "6")
    assert (win_back["returned"], win_back["returned_revenue"], win_back["lift_pp"]) == ("3", "350.00", "16.7")
    assert (win_back["cost"], win_back["cost_per_returned"]) == ("4.75", "1.58")
    steps = by_level[("step", str(base.win_back))]
    assert [(s["step"], s["channel"], s["sent"], s["cost"]) for s in steps] == [
        ("1", "email", "4", "0.20"), ("2", "sms", "3", "4.50"), ("3", "preferred", "1", "0.05")]
    assert steps[2]["moved_to_inactive"] == "1" and steps[2]["returned_revenue"] == "50.00"
    assert by_level[("before_first_message", str(base.win_back))][0]["returned_revenue"] == "200.00"
    quiet = by_level[("sequence", str(base.quiet))][0]
    assert (quiet["lift_pp"], quiet["cost_per_returned"], quiet["cost"]) == ("", "", "0.00")
    names = {row[2] for row in rows if row[1] == str(base.empty)}
    assert names == {"'=HYPERLINK(\"x\")"}


def test_csv_cells_keep_negative_numbers_and_neutralise_formulas():
    """A negative lift is a number, not a formula; text starting with -, =, + or @ still is."""
    from decimal import Decimal

    from crm.exports import safe_cell

    assert safe_cell(-16.7) == "-16.7" and safe_cell(-3) == "-3" and safe_cell(Decimal("-0.50")) == "-0.50"
    assert safe_cell("-1+2") == "'-1+2" and safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell(None) == ""

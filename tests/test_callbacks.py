"""The call-back queue's rules, through the domain: ranking, the no-answer ladder and attempt limit,
daily caps and roll-over, sharing calls out, time zones, undo, hand-over, history, and the
integrity rules (one open call per customer, an outcome logged once, even from two managers at once)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm import accounts, callbacks, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    CallBack,
    CallReason,
    Contact,
    Customer,
    Interaction,
    Kind,
    LeaveReason,
    Role,
    Stage,
    Status,
    User,
)
from crm.settings import CallRules
from tests.conftest import make_user
from tests.factories import customer, order

MONDAY = date(2026, 11, 23)
# 10:00 on Monday in the default team zone (UTC); the day opens at 09:00.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
OPENING = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)  # SQLite hands datetimes back without their zone


def _person(name: str, at_risk: int = 0, phone: str = "+7 916 000-00-00", **columns) -> Customer:
    made = customer(name, phones=[phone] if phone else [])
    made.at_risk, made.status = at_risk, columns.pop("status", Status.LAPSED)
    for key, value in columns.items():
        setattr(made, key, value)
    db.session.flush()
    return made


def _call(person: Customer, manager, due_at: datetime, reason=CallReason.LAPSED, attempts: int = 0) -> CallBack:
    made = CallBack(customer_id=person.id, manager_id=manager.id, due_at=due_at, reason=reason, attempts=attempts)
    db.session.add(made)
    db.session.flush()
    return made


def _user(ident: int) -> User:
    return db.session.get(User, ident)


@pytest.fixture
def maxim(ctx, manager):
    return _user(manager.id)


@pytest.fixture
def olga(ctx, owner):
    return _user(owner.id)


def _names(queue: callbacks.Queue) -> list[str]:
    return [row.customer.name for row in queue.rows]


def test_promised_and_overdue_calls_come_first_then_new_ones_by_value_at_risk(maxim, app):
    other = _user(make_user(app, "b@example.com", Role.MANAGER).id)  # before this session writes
    opening = OPENING
    _call(_person("New, small", 100), maxim, opening)
    _call(_person("New, big", 900), maxim, opening)
    _call(_person("Overdue from Friday", 50), maxim, opening - timedelta(days=3))
    _call(_person("Promised for 11:00", 10), maxim, opening + timedelta(hours=2), CallReason.PROMISED)
    _call(_person("Second try", 20), maxim, opening, attempts=1)
    _call(_person("Tomorrow", 999), maxim, opening + timedelta(days=1))
    _call(_person("Someone else's", 999), other, opening)
    queue = callbacks.queue(maxim, NOW)
    assert _names(queue) == ["Overdue from Friday", "Second try", "Promised for 11:00", "New, big", "New, small"]
    row = queue.rows[0]
    assert row.phone == "+79160000000" and queue.progress.done == 0 and queue.progress.total == 5


def test_inactive_and_do_not_contact_customers_leave_the_queue(maxim):
    _call(_person("Callable"), maxim, NOW)
    _call(_person("Gone", status=Status.INACTIVE), maxim, NOW)
    _call(_person("Do not call", do_not_contact=True), maxim, NOW)
    assert _names(callbacks.queue(maxim, NOW + timedelta(minutes=1))) == ["Callable"]


def test_no_answer_climbs_the_ladder_then_hands_back_to_the_lapsed_queue(maxim):
    settings.save(CallRules(attempt_limit=3, after_attempts="queue"))
    anna = _person("Anna")
    first = _call(anna, maxim, NOW)
    callbacks.log_outcome(first.id, "no_answer", maxim, now=NOW)
    second = db.session.scalar(select(CallBack).where(CallBack.customer_id == anna.id, CallBack.done_at.is_(None)))
    assert (second.attempts, second.due_at.date()) == (1, date(2026, 11, 24))  # next working day
    tuesday = NOW + timedelta(days=1)
    callbacks.log_outcome(second.id, "no_answer", maxim, now=tuesday)
    third = db.session.scalar(select(CallBack).where(CallBack.customer_id == anna.id, CallBack.done_at.is_(None)))
    assert (third.attempts, third.due_at.date()) == (2, date(2026, 11, 26))  # +2 working days: Thursday
    callbacks.log_outcome(third.id, "no_answer", maxim, now=tuesday + timedelta(days=2))
    assert db.session.scalar(select(func.count()).where(CallBack.customer_id == anna.id,
                                                        CallBack.done_at.is_(None))) == 0
    assert anna.status is Status.LAPSED  # back in the lapsed queue, not thrown away
    calls = db.session.scalars(select(Interaction.outcome).where(Interaction.customer_id == anna.id,
                                                                 Interaction.kind == Kind.CALL)).all()
    assert calls == ["no_answer"] * 3


def test_the_ladder_skips_the_weekend_and_can_end_on_the_inactive_list(maxim):
    db.session.add(Stage(key="inactive", name="Inactive", position=8))
    settings.save(CallRules(attempt_limit=2, after_attempts="inactive"))
    boris = _person("Boris")
    friday = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    first = _call(boris, maxim, friday)
    callbacks.log_outcome(first.id, "no_answer", maxim, now=friday)
    retry = db.session.scalar(select(CallBack).where(CallBack.customer_id == boris.id, CallBack.done_at.is_(None)))
    assert _utc(retry.due_at) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday's opening
    callbacks.log_outcome(retry.id, "no_answer", maxim, now=datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    assert boris.status is Status.INACTIVE
    assert boris.stage.key == "inactive"
    kinds = db.session.scalars(select(Interaction.kind).where(Interaction.customer_id == boris.id)).all()
    assert Kind.STATUS in kinds and Kind.STAGE in kinds


def test_the_daily_cap_shows_the_first_calls_and_rolls_the_rest_to_the_next_day_in_rank_order(maxim):
    settings.save(CallRules(daily_cap=2))
    for name, at_risk in (("A", 500), ("B", 400), ("C", 300), ("D", 200), ("E", 100)):
        _call(_person(name, at_risk), maxim, OPENING)
    queue = callbacks.queue(maxim, NOW)
    assert _names(queue) == ["A", "B"] and queue.progress.rolled == 3
    callbacks.log_outcome(queue.rows[0].callback.id, "responded", maxim, now=NOW)
    after = callbacks.queue(maxim, NOW + timedelta(minutes=5))  # the cap counts calls made
    assert _names(after) == ["B"] and after.progress.done == 1 and after.progress.total == 2
    progress = callbacks.progress(maxim, NOW + timedelta(minutes=5))
    assert (progress.done, progress.total, progress.rolled) == (1, 2, 3)
    tomorrow = callbacks.queue(maxim, NOW + timedelta(days=1))
    assert _names(tomorrow) == ["B", "C"] and tomorrow.progress.rolled == 2 and tomorrow.progress.done == 0


def test_round_robin_shares_evenly_and_carries_on_where_the_last_batch_stopped(olga, app):
    team = [_user(make_user(app, f"m{i}@example.com", Role.MANAGER, f"M{i}").id) for i in range(3)]
    people = [_person(f"P{i}", 1000 - i) for i in range(8)]
    assert callbacks.assign(people[:5], "round_robin", MONDAY, olga, today=MONDAY) == 5
    assert callbacks.assign(people[5:], "round_robin", MONDAY, olga, today=MONDAY) == 3
    held = dict(db.session.execute(select(CallBack.customer_id, CallBack.manager_id)).all())
    order = [held[p.id] for p in people]
    assert order == [team[i % 3].id for i in range(8)]  # M0 M1 M2 M0 M1 | M2 M0 M1


def test_least_loaded_fills_the_emptiest_queues_first(olga, app):
    busy, idle = (_user(make_user(app, f"{n}@example.com", Role.MANAGER).id) for n in ("busy", "idle"))
    for i in range(3):
        _call(_person(f"Busy {i}"), busy, NOW)
    people = [_person(f"New {i}", 100 - i) for i in range(5)]
    callbacks.assign(people, "least_loaded", MONDAY, olga, today=MONDAY)
    assert callbacks.open_load([busy.id, idle.id]) == {busy.id: 4, idle.id: 4}


def test_managers_fill_only_their_own_queue_and_days_off_and_the_past_are_refused(maxim, olga):
    person = _person("Anna")
    with pytest.raises(FieldError) as shared:
        callbacks.assign([person], "round_robin", MONDAY, maxim, today=MONDAY)
    assert shared.value.field == "manager"
    with pytest.raises(FieldError) as others:
        callbacks.assign([person], olga.id, MONDAY, maxim, today=MONDAY)
    assert others.value.field == "manager"
    for day in (MONDAY - timedelta(days=1), date(2026, 11, 28)):
        with pytest.raises(FieldError) as refused:
            callbacks.assign([person], maxim.id, day, maxim, today=MONDAY)
        assert refused.value.field == "day"
    assert callbacks.assign([person], maxim.id, MONDAY, maxim, today=MONDAY) == 1
    assert callbacks.assign([person], maxim.id, MONDAY, maxim, today=MONDAY) == 0  # already waiting


def test_a_team_in_utc_plus_10_at_23_30_utc_is_already_working_its_next_day(make_app, app, manager):
    app = make_app(TEAM_TIMEZONE="Asia/Vladivostok")
    with app.app_context():
        maxim = _user(manager.id)  # the same database file as the `app` fixture's
        late = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 09:30 on Tuesday 24th in Vladivostok
        tuesday_opening = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
        _call(_person("Due Tuesday 09:00 local"), maxim, tuesday_opening)
        _call(_person("Due Wednesday"), maxim, tuesday_opening + timedelta(days=1))
        done_monday = _call(_person("Called Monday local"), maxim, tuesday_opening - timedelta(days=1))
        callbacks.log_outcome(done_monday.id, "responded", maxim, now=datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
        queue = callbacks.queue(maxim, late)
        assert _names(queue) == ["Due Tuesday 09:00 local"]
        assert queue.progress.done == 0  # Monday's call was yesterday, local time
        assert callbacks.assign([_person("Assigned now")], maxim.id, date(2026, 11, 24), maxim,
                                today=date(2026, 11, 24)) == 1
        with pytest.raises(FieldError):  # Monday is over in Vladivostok
            callbacks.assign([_person("Too late")], maxim.id, date(2026, 11, 23), maxim, today=date(2026, 11, 24))
        # "Call me back at 18:30" is after hours there; 17:30 local is fine.
        call = db.session.scalar(select(CallBack).where(CallBack.due_at == tuesday_opening))
        with pytest.raises(FieldError) as after_hours:
            callbacks.log_outcome(call.id, "call_back", maxim, when="2026-11-24T18:30", now=late)
        assert after_hours.value.field == "when"
        callbacks.log_outcome(call.id, "call_back", maxim, when="2026-11-24T17:30", now=late)
        promised = db.session.scalar(select(CallBack).where(CallBack.reason == CallReason.PROMISED))
        assert _utc(promised.due_at) == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("when, message", [
    ("2026-11-23T08:00", "future"),  # earlier today
    ("2026-11-28T12:00", "working day"),  # Saturday
    ("2026-11-24T20:00", "working day"),  # after hours
    ("tomorrow", "date and time"),
])
def test_a_call_back_time_in_the_past_or_outside_hours_is_refused_and_nothing_changes(maxim, when, message):
    call = _call(_person("Anna"), maxim, NOW)
    with pytest.raises(FieldError) as refused:
        callbacks.log_outcome(call.id, "call_back", maxim, when=when, now=NOW)
    assert refused.value.field == "when" and message in refused.value.message
    assert call.done_at is None


def test_an_outcome_on_a_customer_who_became_inactive_or_do_not_contact_is_refused(maxim):
    for name, change in (("Gone", {"status": Status.INACTIVE}), ("Blocked", {"do_not_contact": True})):
        person = _person(name)
        call = _call(person, maxim, NOW)
        for key, value in change.items():
            setattr(person, key, value)
        with pytest.raises(callbacks.Refused) as refused:
            callbacks.log_outcome(call.id, "responded", maxim, now=NOW)
        assert name in refused.value.message and call.done_at is None


def test_each_outcome_does_what_it_says(maxim):
    db.session.add(Stage(key="inactive", name="Inactive", position=8))
    outcomes = {}
    for outcome in callbacks.OUTCOMES:
        person = _person(outcome)
        outcomes[outcome] = (person, _call(person, maxim, NOW))
    callbacks.log_outcome(outcomes["responded"][1].id, "responded", maxim, now=NOW)
    callbacks.log_outcome(outcomes["not_interested"][1].id, "not_interested", maxim, reason="price", inactive=True,
                          note="Found a cheaper shop", now=NOW)
    callbacks.log_outcome(outcomes["wrong_number"][1].id, "wrong_number", maxim, now=NOW)
    callbacks.log_outcome(outcomes["call_back"][1].id, "call_back", maxim, when="2026-11-25T15:00", now=NOW)
    assert outcomes["responded"][0].status is Status.RESPONDED
    gone = outcomes["not_interested"][0]
    assert gone.leave_reason is LeaveReason.PRICE and gone.status is Status.INACTIVE
    phone = db.session.scalar(select(Contact).where(Contact.customer_id == outcomes["wrong_number"][0].id))
    assert phone.invalid is True
    promised = db.session.scalar(select(CallBack).where(CallBack.customer_id == outcomes["call_back"][0].id,
                                                        CallBack.done_at.is_(None)))
    assert promised.reason is CallReason.PROMISED
    assert _utc(promised.due_at) == datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    note = db.session.scalar(select(Interaction.body).where(Interaction.customer_id == gone.id,
                                                            Interaction.kind == Kind.CALL))
    assert note == "Found a cheaper shop"
    with pytest.raises(FieldError) as no_reason:
        callbacks.log_outcome(outcomes["no_answer"][1].id, "not_interested", maxim, now=NOW)
    assert no_reason.value.field == "reason"


def test_logging_twice_records_once_and_a_colleague_is_told_it_was_just_handled(maxim, olga):
    call = _call(_person("Anna"), maxim, NOW)
    callbacks.log_outcome(call.id, "no_answer", maxim, now=NOW)
    callbacks.log_outcome(call.id, "no_answer", maxim, now=NOW)  # a double click
    with pytest.raises(callbacks.AlreadyHandled) as handled:
        callbacks.log_outcome(call.id, "responded", olga, now=NOW)
    assert handled.value.callback.handled_by_id == maxim.id
    assert db.session.scalar(select(func.count()).where(Interaction.kind == Kind.CALL)) == 1
    assert db.session.scalar(select(func.count()).select_from(CallBack)) == 2  # the call and one retry


def test_a_manager_cannot_log_on_another_managers_call(maxim, app):
    other = _user(make_user(app, "other@example.com", Role.MANAGER).id)
    call = _call(_person("Anna"), other, NOW)
    with pytest.raises(callbacks.NotYours):
        callbacks.log_outcome(call.id, "responded", maxim, now=NOW)


def test_undo_puts_everything_back_for_a_few_seconds(maxim):
    person = _person("Anna")
    call = _call(person, maxim, NOW)
    callbacks.log_outcome(call.id, "not_interested", maxim, reason="service", inactive=True, now=NOW)
    callbacks.take_back(call.id, maxim, now=NOW + timedelta(seconds=5))
    db.session.flush()
    assert (call.done_at, call.outcome, person.status, person.leave_reason) == (None, None, Status.LAPSED, None)
    assert db.session.scalar(select(func.count()).select_from(Interaction).where(
        Interaction.customer_id == person.id, Interaction.kind != Kind.CREATED)) == 0
    # A retry's follow-up call goes away with the undo; a wrong number is no longer flagged.
    callbacks.log_outcome(call.id, "no_answer", maxim, now=NOW)
    callbacks.take_back(call.id, maxim, now=NOW)
    callbacks.log_outcome(call.id, "wrong_number", maxim, now=NOW)
    callbacks.take_back(call.id, maxim, now=NOW)
    db.session.flush()
    assert db.session.scalar(select(func.count()).select_from(CallBack)) == 1
    assert db.session.scalar(select(Contact.invalid).where(Contact.customer_id == person.id)) is False
    callbacks.log_outcome(call.id, "responded", maxim, now=NOW)
    with pytest.raises(FieldError):
        callbacks.take_back(call.id, maxim, now=NOW + timedelta(seconds=callbacks.UNDO_SECONDS + 1))


def test_a_deactivated_managers_queue_is_shared_among_the_others_not_lost(olga, app):
    leaving, staying = (_user(make_user(app, f"{n}@example.com", Role.MANAGER).id) for n in ("leaving", "staying"))
    for i in range(3):
        _call(_person(f"P{i}"), leaving, NOW)
    db.session.commit()
    accounts.set_active(leaving, False, olga)
    db.session.commit()
    assert callbacks.open_load([leaving.id, staying.id]) == {leaving.id: 0, staying.id: 3}
    moved = db.session.scalars(select(Interaction).where(Interaction.kind == Kind.CALLBACK)).all()
    assert [(e.outcome, e.data["manager"]) for e in moved] == [("reassigned", "Staying")] * 3


def test_the_last_manager_leaving_hands_the_queue_to_the_owner(olga, maxim):
    _call(_person("Anna"), maxim, NOW)
    accounts.set_active(maxim, False, olga)
    assert callbacks.open_load([olga.id]) == {olga.id: 1}


def test_history_counts_calls_reached_responded_and_orders_that_followed(maxim):
    settings.save(CallRules(returned_within_days=14))
    came_back, silent, refused = _person("Came back"), _person("Silent"), _person("Refused")
    monday, tuesday = NOW, NOW + timedelta(days=1)
    callbacks.log_outcome(_call(came_back, maxim, monday).id, "responded", maxim, now=monday)
    callbacks.log_outcome(_call(silent, maxim, monday).id, "no_answer", maxim, now=monday)
    callbacks.log_outcome(_call(refused, maxim, tuesday).id, "not_interested", maxim, reason="price", now=tuesday)
    order(came_back, monday + timedelta(days=3))
    order(refused, tuesday + timedelta(days=30))  # too late to count
    days = {d.day: d for d in callbacks.history(maxim.id, 14, today=date(2026, 11, 24))}
    assert len(days) == 14
    assert vars(days[date(2026, 11, 23)]) == {"day": date(2026, 11, 23), "calls": 2, "reached": 1, "responded": 1,
                                               "returned": 1}
    assert vars(days[date(2026, 11, 24)]) == {"day": date(2026, 11, 24), "calls": 1, "reached": 1, "responded": 0,
                                               "returned": 0}
    assert sum(d.calls for d in callbacks.history(None, 14, today=date(2026, 11, 24))) == 3


def test_call_rules_are_validated_on_their_field(ctx):
    for rules, field in ((CallRules(daily_cap=0), "daily_cap"), (CallRules(attempt_limit=11), "attempt_limit"),
                         (CallRules(after_attempts="bin"), "after_attempts"),
                         (CallRules(returned_within_days=0), "returned_within_days")):
        with pytest.raises(FieldError) as refused:
            settings.save(rules)
        assert refused.value.field == field


def _race(app, work, ident):
    """Run `work(ident)` in two threads at once, each with its own app context and session."""
    barrier, results = threading.Barrier(2), []

    def run(user_id):
        with app.app_context():
            try:
                barrier.wait()
                results.append(work(user_id))
                db.session.commit()
            except Exception as exc:  # noqa: BLE001 - the loser's refusal is the point
                db.session.rollback()
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(who,)) for who in ident]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_managers_logging_the_same_call_at_once_record_it_once(request, database, make_app):
    app = request.getfixturevalue("app" if database == "sqlite" else "pg_app")
    first, second = (make_user(app, f"{n}@example.com", Role.OWNER) for n in ("first", "second"))
    with app.app_context():
        call_id = _call(_person("Anna"), _user(first.id), NOW).id
        db.session.commit()
    results = _race(app, lambda user_id: callbacks.log_outcome(call_id, "responded", _user(user_id), now=NOW).id,
                    [first.id, second.id])
    assert sorted(type(r).__name__ for r in results) == ["AlreadyHandled", "int"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Interaction.kind == Kind.CALL)) == 1
        assert db.session.scalar(select(func.count()).where(Interaction.kind == Kind.STATUS)) == 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_people_adding_the_same_customer_at_once_make_one_open_call(request, database):
    app = request.getfixturevalue("app" if database == "sqlite" else "pg_app")
    first, second = (make_user(app, f"{n}@example.com", Role.OWNER) for n in ("first", "second"))
    with app.app_context():
        person_id = _person("Anna").id
        db.session.commit()
    results = _race(app, lambda user_id: callbacks.assign([db.session.get(Customer, person_id)], user_id, MONDAY,
                                                          _user(user_id), today=MONDAY), [first.id, second.id])
    assert sorted(results) == [0, 1]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CallBack)) == 1
        assert db.session.scalar(select(func.count()).where(Interaction.kind == Kind.CALLBACK)) == 1

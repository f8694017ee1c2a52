"""Reactivation sequences end to end with real parts: Apprise sending to an aiosmtpd SMTP server and
an HTTP sink on 127.0.0.1, time moved with `flask sequences run-due --now`, responses through the
public links, the inbound hook and the orders path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from crm import dispatch, enrolment, links, message_templates, sequences, settings
from crm.errors import FieldError
from crm.extensions import db
from crm.hook_secrets import secret_for
from crm.models import (
    CallBack,
    CallReason,
    Channel,
    Contact,
    Customer,
    Enrolment,
    EnrolmentRule,
    EnrolmentState,
    Interaction,
    Kind,
    Lapse,
    Message,
    MessageState,
    Status,
    StepChannel,
    Trigger,
)
from crm.settings import Messaging
from tests import factories
from tests.sinks import HttpSink, SmtpSink

START = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday, inside the default window (UTC team)


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def http():
    sink = HttpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def channels_on(ctx, smtp, http):
    settings.save(Messaging(urls={"email": smtp.url(), "sms": http.url("sms/{phone}")}, weekly_cap=10))
    db.session.commit()


def person(name: str, email: str | None = None, phone: str | None = None, sms: bool = False, **fields) -> Customer:
    from crm import customers

    direct = {key: fields.pop(key) for key in ("timezone", "do_not_contact") if key in fields}
    made = factories.customer(name, emails=[email] if email else [], phones=[phone] if phone else [], **fields)
    for key, value in direct.items():
        setattr(made, key, value)
    if email:
        customers.set_consent(made, Channel.EMAIL, True, "test", None)
    if sms:
        customers.set_consent(made, Channel.SMS, True, "test", None)
    db.session.flush()
    return made


def make_sequence(owner, length: int, name: str = "Win back", channel: StepChannel = StepChannel.PREFERRED,
                  **changes):
    sequence = sequences.create(length, name, db.session.merge(owner))
    for step in sequence.steps:
        step.channel = channel
        step.delay_days = 0 if step.position == 1 else 2
    for key, value in changes.items():
        setattr(sequence, key, value)
    db.session.commit()
    return sequence


def run_due(app, at: datetime) -> str:
    result = app.test_cli_runner().invoke(args=["sequences", "run-due", "--now", at.isoformat(), "--deliver"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def enrol(sequence, *people, source="test"):
    report = enrolment.enrol(sequence, [p.id for p in people], source, None, now=START)
    db.session.commit()
    return report


@pytest.mark.parametrize("length", [3, 5, 7])
def test_a_non_responder_gets_exactly_n_messages_then_lands_on_the_inactive_list(app, ctx, owner, channels_on,
                                                                                 smtp, length):
    sequence = make_sequence(owner, length, grace_days=5)
    anna = person("Anna Ivanova", "anna@example.com")
    assert enrol(sequence, anna).enrolled == 1
    assert db.session.get(Customer, anna.id).status is Status.IN_SEQUENCE

    moment = START
    for _ in range(length * 3 + 6):  # well past the last step and the grace period, a day at a time
        run_due(app, moment)
        moment += timedelta(days=1)

    mails = smtp.to("anna@example.com")
    assert len(mails) == length
    assert len({m.message_id for m in mails}) == length
    assert [m.message_id.split("@")[0] for m in mails] == [
        f"<crm-{db.session.scalar(select(Enrolment.id))}-{step}" for step in range(1, length + 1)]
    assert all("/u/" in m.text and "/l/" in m.text for m in mails)
    customer = db.session.get(Customer, anna.id)
    assert customer.status is Status.INACTIVE
    assert customer.inactive_how == "no_response"
    assert customer.inactive_reason.startswith(f"no response to Win back: {length} messages, last on ")
    assert db.session.scalar(select(Enrolment.state)) is EnrolmentState.INACTIVE
    # The grace period is honoured: the last step went on day 2 * (length - 1), the move came 5 days later.
    assert customer.inactive_since.replace(tzinfo=UTC) == START + timedelta(days=2 * (length - 1) + 5)


def test_a_click_stops_the_sequence_and_hands_the_customer_to_their_manager(app, ctx, owner, manager, channels_on,
                                                                            smtp):
    sequence = make_sequence(owner, 3, link_url="https://shop.example.com/offer")
    boris = person("Boris Petrov", "boris@example.com", manager_id=manager.id)
    enrol(sequence, boris)
    run_due(app, START)
    message = db.session.scalar(select(Message))
    token = links.token(links.CLICK, message.id)

    response = app.test_client().get(f"/l/{token}")
    assert response.status_code == 302 and response.location == "https://shop.example.com/offer"
    db.session.expire_all()

    for day in range(1, 15):
        run_due(app, START + timedelta(days=day))
    assert len(smtp.to("boris@example.com")) == 1
    customer = db.session.get(Customer, boris.id)
    assert customer.status is Status.RESPONDED
    assert db.session.scalar(select(Enrolment.end_reason)) == "click"
    assert db.session.get(Message, message.id).clicked_at is not None
    call = db.session.scalar(select(CallBack).where(CallBack.customer_id == boris.id))
    assert call.reason is CallReason.SEQUENCE and call.manager_id == manager.id and call.done_at is None
    assert db.session.scalar(select(func.count()).select_from(Interaction).where(
        Interaction.customer_id == boris.id, Interaction.kind == Kind.SEQUENCE, Interaction.outcome == "responded"))


def test_a_paid_order_stops_the_sequence_and_queued_steps_are_not_sent(app, ctx, owner, channels_on, smtp):
    sequence = make_sequence(owner, 5)
    vera = person("Vera Smirnova", "vera@example.com")
    enrol(sequence, vera)
    run_due(app, START)
    # Step 2 is dispatched (queued) but not yet delivered when the order arrives.
    dispatch.run_due(START + timedelta(days=2), send=False)
    db.session.commit()
    queued = db.session.scalar(select(Message).where(Message.step == 2))
    assert queued.state is MessageState.QUEUED

    factories.order(db.session.get(Customer, vera.id), START + timedelta(days=2, hours=1), "50.00")
    db.session.commit()
    for day in range(3, 20):
        run_due(app, START + timedelta(days=day))

    assert len(smtp.to("vera@example.com")) == 1
    assert db.session.get(Message, queued.id).state is MessageState.SKIPPED
    assert db.session.scalar(select(Enrolment.end_reason)) == "order"
    assert db.session.get(Customer, vera.id).status is Status.RESPONDED


def test_an_unsubscriber_gets_nothing_more_on_that_channel_but_the_next_channel_goes_on(app, ctx, owner,
                                                                                        channels_on, smtp, http):
    sequence = make_sequence(owner, 3)
    gleb = person("Gleb Orlov", "gleb@example.com", "+7 912 345-67-01", sms=True, preferred_channel="email")
    enrol(sequence, gleb)
    run_due(app, START)
    message = db.session.scalar(select(Message))
    assert message.channel == "email"
    client = app.test_client()
    token = links.token(links.UNSUBSCRIBE, message.id)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and b"Unsubscribe" in page.data
    assert db.session.get(Customer, gleb.id).consent_for(Channel.EMAIL).granted  # a GET changes nothing
    # A click token cannot unsubscribe, and a tampered one is refused.
    assert client.post(f"/u/{links.token(links.CLICK, message.id)}").status_code == 404
    assert client.post(f"/u/{token[:-2]}xx").status_code == 404
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    db.session.expire_all()
    assert not db.session.get(Customer, gleb.id).consent_for(Channel.EMAIL).granted

    for day in range(1, 15):
        run_due(app, START + timedelta(days=day))
    assert len(smtp.to("gleb@example.com")) == 1
    assert http.paths() == ["/sms/+79123456701", "/sms/+79123456701"]
    # Unsubscribing is not answering: the sequence ran to its end.
    assert db.session.get(Customer, gleb.id).status is Status.INACTIVE


def test_quiet_hours_and_weekdays_follow_the_customers_clock_across_a_dst_change(app, ctx, owner):
    sequence = make_sequence(owner, 3, window_start=9, window_end=18, weekdays=[1, 2, 3, 4, 5])
    berlin = ZoneInfo("Europe/Berlin")
    # Saturday 28 March 2026, winter time: the window is closed until Monday 30 March 09:00 CEST.
    saturday = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert not dispatch.within_window(sequence, saturday, berlin)
    opening = dispatch.next_opening(sequence, saturday, berlin)
    assert opening == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 summer time is 07:00 UTC
    # Friday 27 March, 07:30 UTC is 08:30 winter time: opens at 09:00 CET = 08:00 UTC.
    assert dispatch.next_opening(sequence, datetime(2026, 3, 27, 7, 30, tzinfo=UTC), berlin) == \
        datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
    # The same wall-clock hour after the change: 16:30 UTC on Monday 30 March is 18:30 CEST, closed.
    assert not dispatch.within_window(sequence, datetime(2026, 3, 30, 16, 30, tzinfo=UTC), berlin)
    assert dispatch.within_window(sequence, datetime(2026, 3, 30, 15, 30, tzinfo=UTC), berlin)


def test_a_step_due_in_quiet_hours_waits_for_the_window_in_the_customers_zone(app, ctx, owner, channels_on, smtp):
    sequence = make_sequence(owner, 3, window_start=9, window_end=18)
    dana = person("Dana Kim", "dana@example.com", timezone="Asia/Vladivostok")  # UTC+10
    enrolment.enrol(sequence, [dana.id], "test", None, now=datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    db.session.commit()
    run_due(app, datetime(2026, 12, 7, 9, 0, tzinfo=UTC))  # 19:00 in Vladivostok: too late
    assert smtp.to("dana@example.com") == []
    assert db.session.scalar(select(Enrolment.next_at)).replace(tzinfo=UTC) == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    run_due(app, datetime(2026, 12, 7, 23, 0, tzinfo=UTC))  # 09:00 there the next morning
    assert len(smtp.to("dana@example.com")) == 1


def test_the_weekly_cap_skips_a_step_and_says_why(app, ctx, owner, smtp, http):
    settings.save(Messaging(urls={"email": smtp.url()}, weekly_cap=2))
    db.session.commit()
    sequence = make_sequence(owner, 3)
    for step in sequence.steps:
        step.delay_days = 1 if step.position > 1 else 0
    db.session.commit()
    eva = person("Eva Lind", "eva@example.com")
    enrol(sequence, eva)
    for day in range(3):
        run_due(app, START + timedelta(days=day))
    assert len(smtp.to("eva@example.com")) == 2
    third = db.session.scalar(select(Message).where(Message.step == 3))
    assert third.state is MessageState.SKIPPED and third.reason == "frequency_cap"


def test_a_hard_bounce_stops_that_channel_and_the_fallback_takes_over(app, ctx, owner, channels_on, smtp, http):
    smtp.refuse_rcpt = "550 5.1.1 No such user here"
    sequence = make_sequence(owner, 3)
    fedor = person("Fedor Lee", "fedor@example.com", "+7 912 345-67-02", sms=True, preferred_channel="email")
    enrol(sequence, fedor)
    run_due(app, START)
    message = db.session.scalar(select(Message))
    assert message.state is MessageState.SENT and message.channel == "sms"
    assert [r["ok"] for r in message.result] == [False, True]
    assert message.result[0]["permanent"] and "550" in message.result[0]["error"]
    email = db.session.scalar(select(Contact).where(Contact.customer_id == fedor.id,
                                                    Contact.value == "fedor@example.com"))
    assert email.invalid
    smtp.refuse_rcpt = None
    run_due(app, START + timedelta(days=2))
    assert smtp.mails == [] and len(http.received) == 2


def test_a_hard_bounce_on_the_only_channel_moves_the_customer_to_the_inactive_list(app, ctx, owner, channels_on,
                                                                                   smtp):
    smtp.refuse_rcpt = "550 5.1.1 No such user here"
    sequence = make_sequence(owner, 3, channel=StepChannel.EMAIL)
    gala = person("Gala Roy", "gala@example.com")
    enrol(sequence, gala)
    run_due(app, START)
    assert db.session.scalar(select(Message.state)) is MessageState.FAILED
    customer = db.session.get(Customer, gala.id)
    assert customer.status is Status.INACTIVE and customer.inactive_how == "bounces"


def test_a_passing_smtp_failure_is_retried_later_and_delivered_once(app, ctx, owner, channels_on, smtp):
    smtp.refuse_data = "451 4.3.0 Try again later"
    sequence = make_sequence(owner, 3, channel=StepChannel.EMAIL)
    hana = person("Hana Ito", "hana@example.com")
    enrol(sequence, hana)
    run_due(app, START)
    message = db.session.scalar(select(Message))
    assert message.state is MessageState.QUEUED and message.reason == "retrying" and message.not_before
    smtp.refuse_data = None
    run_due(app, START)  # too early: the backoff holds it
    assert smtp.mails == []
    message.not_before = datetime.now(UTC) - timedelta(seconds=1)
    db.session.commit()
    run_due(app, START)
    assert len(smtp.to("hana@example.com")) == 1
    assert db.session.get(Message, message.id).attempts == 2


def test_the_inbound_hook_needs_its_secret_and_a_reply_stops_the_sequence(app, ctx, owner, channels_on, smtp):
    sequence = make_sequence(owner, 3)
    ivan = person("Ivan Gray", "ivan@example.com")
    enrol(sequence, ivan)
    run_due(app, START)
    client = app.test_client()
    assert client.post("/hooks/inbound/email", json={"from": "ivan@example.com"}).status_code == 401
    assert client.post("/hooks/inbound/email?secret=wrong", json={"from": "ivan@example.com"}).status_code == 401
    url = f"/hooks/inbound/email?secret={secret_for('email')}"
    missing = client.post(url, json={"text": "hi"})
    assert missing.status_code == 422 and missing.json["errors"][0]["field"] == "from"
    assert client.post(url, json={"from": "nobody@example.com", "text": "hi"}).json == {"result": "unknown"}
    reply = client.post(url, json={"from": "IVAN@example.com", "text": "<b>yes</b> call me"})
    assert reply.json == {"result": "reply"}
    db.session.expire_all()
    assert db.session.get(Customer, ivan.id).status is Status.RESPONDED
    entry = db.session.scalar(select(Interaction).where(Interaction.kind == Kind.MESSAGE_IN))
    assert entry.body == "<b>yes</b> call me" and entry.outcome == "reply"
    assert client.post(f"/hooks/inbound/email?secret={secret_for('email')}", data="x" * 70000,
                       content_type="application/json").status_code == 413


def test_holdout_keeps_an_exact_share_out_and_sends_them_nothing(app, ctx, owner, channels_on, smtp):
    sequence = make_sequence(owner, 3, holdout_percent=30)
    people = [person(f"Person {n}", f"p{n}@example.com") for n in range(10)]
    report = enrol(sequence, *people)
    assert (report.enrolled, report.held_out) == (7, 3)
    run_due(app, START)
    held = set(db.session.scalars(select(Enrolment.customer_id).where(Enrolment.state == EnrolmentState.HOLDOUT)))
    got = {r for m in smtp.mails for r in m.recipients}
    assert len(got) == 7 and not got & {f"p{p.id}" for p in people if p.id in held}
    assert all(db.session.get(Customer, cid).status is not Status.IN_SEQUENCE for cid in held)


def test_enrolment_checks_eligibility_and_one_running_sequence_per_customer(app, ctx, owner, channels_on):
    first, second = make_sequence(owner, 3, "First"), make_sequence(owner, 5, "Second")
    ok = person("Ok Person", "ok@example.com")
    dnc = person("No Contact", "dnc@example.com", do_not_contact=True)
    silent = person("No Consent")
    report = enrol(first, ok, dnc, silent)
    assert report.enrolled == 1 and report.skipped == {"not_eligible": 1, "unreachable": 1}
    again = enrol(second, ok)
    assert again.enrolled == 0 and again.skipped == {"not_eligible": 1}
    assert "First" in enrolment.why_not(db.session.get(Customer, ok.id), second)


def test_templates_are_sandboxed_and_unknown_fields_are_refused():
    with pytest.raises(FieldError) as unknown:
        message_templates.check("Hi", "Hello {{ nickname }}")
    assert unknown.value.field == "body"
    with pytest.raises(FieldError):
        message_templates.check("Hi", "{{ first_name.__class__.__mro__[1].__subclasses__() }}")
    rendered = message_templates.render("Hi {{ first_name }}", "{{ name }} {{ link }}",
                                        dict.fromkeys(message_templates.FIELDS, "") | {
                                            "first_name": "<b>", "name": "<script>", "link": "L", "unsubscribe": "U"})
    assert rendered.subject == "Hi <b>" and rendered.body.startswith("<script> L") and "U" in rendered.body


def test_a_lapsed_rule_enrols_once_a_day_and_not_again_until_the_next_lapse(app, ctx, owner, channels_on):
    sequence = make_sequence(owner, 3)
    lapsed = person("Lapsed One", "l1@example.com")
    on_track = person("On Track", "l2@example.com")
    lapsed.lapse, on_track.lapse = Lapse.LAPSED, Lapse.ON_TRACK
    db.session.add(EnrolmentRule(sequence_id=sequence.id, trigger=Trigger.LAPSED, days=0, groups=[]))
    db.session.commit()
    reports = enrolment.apply_rules(today=START.date(), now=START)
    db.session.commit()
    assert [r.enrolled for r in reports.values()] == [1]
    assert enrolment.apply_rules(today=START.date(), now=START) == {}  # once per day
    enrolment.stop(db.session.get(Customer, lapsed.id), "manager", None)
    db.session.commit()
    # The next day the rule does not enrol them again: nothing changed since their last enrolment.
    reports = enrolment.apply_rules(today=START.date() + timedelta(days=1), now=START + timedelta(days=1))
    assert [r.enrolled for r in reports.values()] == [0]


def test_the_dispatch_on_postgresql_claims_each_step_once(pg_app, pg_ctx, smtp):
    from crm import accounts
    from crm.models import Role

    user = accounts.create_user("pg@example.com", "Pg Owner", "a-long-password-1", Role.OWNER, "en")
    settings.save(Messaging(urls={"email": smtp.url()}, weekly_cap=10))
    db.session.commit()
    sequence = make_sequence(user, 3)
    people = [person(f"Pg {n}", f"pg{n}@example.com") for n in range(5)]
    enrol(sequence, *people)
    first = dispatch.run_due(START, send=False)
    again = dispatch.run_due(START, send=False)
    db.session.commit()
    assert (first.queued, again.queued) == (5, 0)
    from crm import delivery

    report = delivery.send_batch(first.message_ids)
    assert report.counts["sent"] == 5 and len(smtp.mails) == 5
    assert delivery.send_batch(first.message_ids).counts["sent"] == 0  # a repeated job sends nothing


def test_a_call_logged_on_the_card_stops_the_sequence_without_a_hand_off_call(app, ctx, owner, channels_on):
    from crm import customers

    sequence = make_sequence(owner, 3)
    yana = person("Yana Bell", "yana@example.com")
    enrol(sequence, yana)
    customers.log_call(db.session.get(Customer, yana.id), "reached", "wants a catalogue", db.session.merge(owner))
    db.session.commit()
    assert db.session.scalar(select(Enrolment.end_reason)) == "call"
    assert db.session.get(Customer, yana.id).status is Status.RESPONDED
    assert db.session.scalar(select(func.count()).select_from(CallBack)) == 0


def test_a_responded_customer_who_then_orders_is_active_again(app, ctx, owner, channels_on):
    sequence = make_sequence(owner, 3)
    zoya = person("Zoya Park", "zoya@example.com")
    enrol(sequence, zoya)
    factories.order(db.session.get(Customer, zoya.id), START + timedelta(hours=1), "20.00")
    assert db.session.get(Customer, zoya.id).status is Status.RESPONDED
    factories.order(db.session.get(Customer, zoya.id), START + timedelta(days=3), "30.00")
    assert db.session.get(Customer, zoya.id).status is Status.ACTIVE


def test_an_uncertain_message_is_settled_by_a_person_and_only_resent_when_asked(app, ctx, owner, channels_on, smtp):
    from flask import g

    from crm import delivery
    from tests.conftest import page_token, sign_in

    sequence = make_sequence(owner, 3)
    kira = person("Kira Moss", "kira@example.com")
    enrol(sequence, kira)
    dispatch.run_due(START, send=False)
    db.session.commit()
    message = db.session.scalar(select(Message))
    # A worker killed mid-send leaves the row "sending"; the dispatcher's repair marks it uncertain.
    message.state, message.sending_at = MessageState.SENDING, datetime.now(UTC) - timedelta(hours=1)
    db.session.commit()
    assert dispatch.run_due(START, send=False).uncertain == 1
    db.session.commit()
    assert delivery.send_batch([message.id]).counts["sent"] == 0  # never sent again by itself

    client = app.test_client()
    sign_in(client, owner.email)
    page = client.get(f"/sequences/{sequence.id}")
    assert b"Kira Moss" in page.data and b"Send again" in page.data
    # This test keeps an app context pushed, so requests share its `g`, where Flask-WTF caches the
    # token of the session before sign-in: drop it, as a real request would start without it.
    g.pop("csrf_token", None)
    token = page_token(client, f"/sequences/{sequence.id}")
    url = f"/sequences/{sequence.id}/uncertain/{message.id}"
    assert client.post(f"/sequences/{sequence.id + 1}/uncertain/{message.id}",
                       data={"decision": "resend", "csrf_token": token}).status_code == 404
    assert client.post(url, data={"decision": "resend", "csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Message, message.id).state is MessageState.QUEUED
    run_due(app, START)
    assert len(smtp.to("kira@example.com")) == 1
    again = client.post(url, data={"decision": "sent", "csrf_token": token}, follow_redirects=True)
    assert "settled already" in again.get_data(as_text=True)


def test_other_ways_onto_the_inactive_list_wrong_numbers_everywhere_and_unsubscribed_everywhere(app, ctx, owner,
                                                                                               manager,
                                                                                               channels_on):
    from crm import callbacks, responses

    maxim = db.session.merge(manager)
    only_phone = person("Only Phone", phone="+7 912 345-67-03")
    with_email = person("Has Email", "has@example.com", "+7 912 345-67-04")
    for who in (only_phone, with_email):
        call = CallBack(customer_id=who.id, manager_id=maxim.id, reason=CallReason.LAPSED, due_at=START)
        db.session.add(call)
        db.session.flush()
        callbacks.log_outcome(call.id, "wrong_number", maxim, now=START)
    assert only_phone.status is Status.INACTIVE and only_phone.inactive_how == "bounces"
    assert with_email.status is not Status.INACTIVE  # the email still reaches them

    sequence = make_sequence(owner, 3)
    leaving = person("Leaving Soon", "leaving@example.com")
    enrol(sequence, leaving)
    run_due(app, START)
    responses.unsubscribe(db.session.scalar(select(Message).where(Message.customer_id == leaving.id)))
    db.session.commit()
    gone = db.session.get(Customer, leaving.id)
    assert gone.status is Status.INACTIVE and gone.inactive_how == "unsubscribed"
    assert db.session.scalar(select(Enrolment.state).where(Enrolment.customer_id == leaving.id)) is \
        EnrolmentState.STOPPED

"""The send job: delivers a batch of queued messages through Apprise, each exactly once.

Per chunk of the batch:
1. lease: one UPDATE takes the chunk's rows that are still queued and past their backoff by moving
   their `not_before` to the lease's end (SEND_REQUEUE_AFTER from now), commit: they stay queued, so
   a duplicate job, a retry or a second worker finds nothing to take, and a worker killed now only
   delays them (the dispatcher enqueues them again once the lease is over);
2. prepare: re-check each customer right before sending (answered, do-not-contact, inactive,
   consent, the enrolment still running) and render the text; skipped rows say why; commit, so no
   database lock is held while the network is used;
3. send concurrently (threads, at most `concurrency` at once), each message through Apprise objects
   built for it alone, trying the fallback channel after a permanent refusal. Right before a message
   goes to its thread it is handed over: queued -> sending, only if still queued under this lease
   and the customer may still get it (a stop since, or another job after the lease ran out, wins),
   commit;
4. record each result as it comes: sent / failed, or back to queued with a backoff after a passing
   failure, or uncertain when the connection dropped after the whole email went out (before the
   server's reply: it may have taken it); commit.
So only a message on the wire is "sending": a worker killed then leaves it so, and the dispatcher
marks it uncertain later (crm.dispatch.repair) instead of risking a second copy. Messages of the
chunk not handed over yet are still queued and go out later.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from crm import channels, clock, customers, eligibility, inactive, links, message_templates, settings
from crm.extensions import db
from crm.models import (
    Customer,
    Enrolment,
    EnrolmentState,
    Kind,
    Message,
    MessageState,
)
from crm.settings import Messaging

MAX_ATTEMPTS = 8
# Minutes before the next try after a passing failure (attempt 1, 2, ...): together over six hours,
# so an SMTP server down for an hour costs a delay, not a message.
BACKOFF = [1, 5, 15, 30, 60, 120, 240]


@dataclass
class Plan:
    message_id: int
    routes: list[tuple[str, str]]  # (channel, recipient) in order
    subject: str
    body: str
    headers: dict
    templates: dict[str, list[str]]


@dataclass
class Result:
    message_id: int
    state: MessageState
    channel: str | None = None
    recipient: str | None = None
    outcomes: list[dict] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (channel, recipient) refused for good


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)

    @property
    def retry(self) -> int:
        return self.counts["retry"]


def _lease(ids: list[int], now: datetime, until: datetime) -> list[int]:
    """Take these messages (those still queued and due) for this job until `until`; they stay queued."""
    return list(db.session.scalars(
        update(Message).where(Message.id.in_(ids), Message.state == MessageState.QUEUED,
                              (Message.not_before.is_(None)) | (Message.not_before <= now))
        .values(not_before=until).returning(Message.id).execution_options(synchronize_session=False)))


def _hand_over(message_ids: list[int], lease: datetime) -> set[int]:
    """Mark leased messages "sending", right before they go on the wire; the ones still ours (not
    stopped meanwhile, nor taken by another job after the lease ran out)."""
    # The customer was re-checked when the chunk was prepared, which can be seconds before a thread
    # frees up; a manager's decision meanwhile (inactive after a call changes the status only, the
    # dispatcher ends the enrolment later) must still win, so the hand-over checks again, in the same
    # statement (crm.eligibility.stop_reason in SQL): only a message already "sending" then may go out.
    still_running = select(Enrolment.id).where(Enrolment.id == Message.enrolment_id,
                                               Enrolment.state == EnrolmentState.ACTIVE).exists()
    not_stopped = select(Customer.id).where(Customer.id == Message.customer_id, eligibility.not_stopped()).exists()
    return set(db.session.scalars(
        update(Message).where(Message.id.in_(message_ids), Message.state == MessageState.QUEUED,
                              Message.not_before == lease, still_running, not_stopped)
        .values(state=MessageState.SENDING, sending_at=clock.now(), attempts=Message.attempts + 1)
        .returning(Message.id).execution_options(synchronize_session=False)))


def _skip(message: Message, reason: str) -> None:
    message.state, message.reason = MessageState.SKIPPED, reason


def _message_id_header(message: Message) -> str:
    host = urlsplit(current_app.config["PUBLIC_URL"]).hostname or "localhost"
    return f"<crm-{message.enrolment_id}-{message.step}@{host}>"


def _prepare(message: Message, messaging: Messaging, configured: list[str], templates: dict) -> Plan | None:
    enrolment, customer = message.enrolment, message.customer
    if enrolment.state is not EnrolmentState.ACTIVE:
        _skip(message, enrolment.end_reason or enrolment.state.value)
        return None
    stop = eligibility.stop_reason(customer)
    if stop is not None:
        _skip(message, stop)
        return None
    step = enrolment.sequence.step(message.step)
    found, why = eligibility.routes(customer, step.channel, messaging, configured)
    if why:
        _skip(message, why)
        return None
    click = links.url(links.CLICK, message.id)
    unsubscribe = links.url(links.UNSUBSCRIBE, message.id)
    values = message_templates.context(customer, enrolment.sequence, clock.team_today(), click, unsubscribe)
    try:
        rendered = message_templates.render(step.subject, step.body, values)
    except Exception as error:  # a template that fails for this customer: recorded, not retried
        message.state, message.reason = MessageState.FAILED, "template"
        message.result = [{"url": "", "ok": False, "error": str(error)[:300], "permanent": True}]
        return None
    message.subject, message.body = rendered.subject, rendered.body
    message.channel, message.recipient = found[0]
    headers = {"Message-ID": _message_id_header(message), "List-Unsubscribe": f"<{unsubscribe}>",
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return Plan(message.id, found, rendered.subject, rendered.body, headers, templates)


def _deliver(plan: Plan) -> Result:
    """Network only (runs in a thread, no database): the first channel that takes it wins; a
    permanent refusal moves on to the next channel, a passing failure asks for a retry."""
    history, refused = [], []
    for channel, recipient in plan.routes:
        outcomes = channels.send(channel, recipient, plan.subject, plan.body, headers=plan.headers,
                                 templates=plan.templates[channel])
        history += [outcome.as_dict() | {"channel": channel} for outcome in outcomes]
        if any(outcome.ok for outcome in outcomes):
            return Result(plan.message_id, MessageState.SENT, channel, recipient, history, refused)
        if any(outcome.unanswered for outcome in outcomes):
            return Result(plan.message_id, MessageState.UNCERTAIN, channel, recipient, history, refused)
        if not all(outcome.permanent for outcome in outcomes):
            return Result(plan.message_id, MessageState.QUEUED, channel, recipient, history, refused)
        refused.append((channel, recipient))
    return Result(plan.message_id, MessageState.FAILED, None, None, history, refused)


def _invalidate(customer: Customer, refused: list[tuple[str, str]]) -> None:
    """A hard bounce or a refused number: that contact is never used again."""
    for channel, recipient in refused:
        for contact in customer.contacts:
            if contact.value == recipient and contact.kind in channels.CONTACT_KINDS[channel]:
                contact.invalid = True
    if refused and inactive.every_contact_failed(customer):
        inactive.move(customer, "bounces", str(inactive.HOW["bounces"]), None)


def _record(message: Message, result: Result, now: datetime, report: Report, sent: Counter) -> None:
    message.result = (message.result or []) + result.outcomes
    if result.channel:
        message.channel, message.recipient = result.channel, result.recipient
    if result.state is MessageState.SENT:
        message.state, message.sent_at, message.reason = MessageState.SENT, now, None
        sent[message.enrolment_id] += 1  # counted on the enrolments together (_count_sent)
        customers.record(message.customer, Kind.MESSAGE_OUT, None, body=message.subject or message.body[:200],
                         outcome="sent", channel=message.channel, sequence_id=message.sequence_id,
                         step=message.step, message_id=message.id)
        report.counts["sent"] += 1
    elif result.state is MessageState.UNCERTAIN:
        # The provider had the whole message when the connection dropped: it may have taken it, and
        # another try could double it. Like a worker killed mid-send: a person decides.
        message.state, message.reason = MessageState.UNCERTAIN, "unanswered"
        report.counts["uncertain"] += 1
    elif result.state is MessageState.QUEUED and message.attempts < MAX_ATTEMPTS:
        wait = BACKOFF[min(message.attempts, len(BACKOFF)) - 1]
        message.state, message.reason = MessageState.QUEUED, "retrying"
        message.not_before = now + timedelta(minutes=wait, seconds=-5)
        report.counts["retry"] += 1
    else:
        message.state = MessageState.FAILED
        message.reason = "refused" if result.state is MessageState.FAILED else "gave_up"
        customers.record(message.customer, Kind.MESSAGE_OUT, None, body=message.subject, outcome="failed",
                         channel=message.channel, sequence_id=message.sequence_id, step=message.step,
                         message_id=message.id, reason=message.reason)
        report.counts["failed"] += 1
    _invalidate(message.customer, result.refused)


def _load(ids: list[int]) -> list[Message]:
    return db.session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id).options(
        selectinload(Message.enrolment).selectinload(Enrolment.sequence),
        selectinload(Message.customer).selectinload(Customer.contacts),
        selectinload(Message.customer).selectinload(Customer.consents))).all()


def _load_for_record(ids: list[int]) -> list[Message]:
    """The messages and their customers only (2 queries, not 7): a refusal loads the contacts it needs."""
    return db.session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)
                              .options(selectinload(Message.customer))).all()


def send_batch(message_ids: list[int], concurrency: int | None = None) -> Report:
    """Send these messages (those still queued and due); see the module's docstring."""
    concurrency = concurrency or current_app.config["SEND_CONCURRENCY"]
    messaging = settings.load(Messaging)
    configured = channels.configured(messaging)
    templates = {channel: channels.urls(channel, messaging) for channel in configured}
    report = Report()
    lease = timedelta(seconds=current_app.config["SEND_REQUEUE_AFTER"])
    running: set[Future] = set()  # across chunks: the next chunk is prepared while this one is on the wire
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        for start in range(0, len(message_ids), concurrency * 2):
            now = clock.now()
            until = now + lease
            leased = _lease(message_ids[start:start + concurrency * 2], now, until)
            db.session.commit()
            if not leased:
                continue
            messages = {m.id: m for m in _load(leased)}
            plans = [plan for m in messages.values() if (plan := _prepare(m, messaging, configured, templates))]
            report.counts["skipped"] += sum(m.state is MessageState.SKIPPED for m in messages.values())
            db.session.commit()
            while plans:
                if len(running) >= concurrency:
                    running = _record_done(running, report)
                # As many as there are free threads, handed over in one statement and one commit.
                group, plans = plans[:concurrency - len(running)], plans[concurrency - len(running):]
                handed = _hand_over([plan.message_id for plan in group], until)
                db.session.commit()
                running |= {pool.submit(_deliver, plan) for plan in group if plan.message_id in handed}
        while running:
            running = _record_done(running, report)
    return report


def _record_done(running: set[Future], report: Report) -> set[Future]:
    """Wait for at least one send to finish, record every finished one, commit; the ones still running."""
    done, running = wait(running, return_when=FIRST_COMPLETED)
    results = [future.result() for future in done]
    now = clock.now()
    messages = {m.id: m for m in _load_for_record([result.message_id for result in results])}  # fresh after commit
    sent = Counter()
    for result in results:
        _record(messages[result.message_id], result, now, report, sent)
    _count_sent(sent)
    db.session.commit()
    return running


def _count_sent(sent: Counter) -> None:
    """Add the messages just sent to their enrolments' counts: one UPDATE per distinct number
    (nearly always one: a message each)."""
    by_number: dict[int, list[int]] = {}
    for enrolment_id, number in sent.items():
        by_number.setdefault(number, []).append(enrolment_id)
    for number, ids in by_number.items():
        db.session.execute(update(Enrolment).where(Enrolment.id.in_(ids)).values(sent=Enrolment.sent + number)
                           .execution_options(synchronize_session=False))

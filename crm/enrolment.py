"""Putting customers into a sequence: by hand (a card, a bulk selection, a lapsed queue, a saved
segment) or by the owner's automatic rules; the holdout; and stopping an enrolment.

Enrolment is set-based so a segment of a hundred thousand goes in within seconds: one query finds
who is eligible, the holdout is drawn exactly (a shuffled share, not a coin per customer), and the
rows go in with INSERT ... ON CONFLICT DO NOTHING on the "one running sequence per customer"
index, so two people enrolling the same customer at once cannot both succeed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, extract, false, func, insert, or_, select, text, update

from crm import channels, clock, eligibility, rfm, settings, workdays
from crm.extensions import db, upsert_insert
from crm.models import (
    Customer,
    Enrolment,
    EnrolmentRule,
    EnrolmentState,
    Interaction,
    Kind,
    Lapse,
    Message,
    MessageState,
    Sequence,
    Status,
    Trigger,
    User,
)
from crm.settings import Messaging

CHUNK = 5000
# Why a customer was not enrolled, for the confirmation the person sees.
NOT_ENROLLED = {
    "not_eligible": _l("do-not-contact, inactive, already answered, in a sequence or held out lately"),
    "unreachable": _l("no consent and contact on any channel this sequence uses"),
}


class SequencePaused(Exception):
    pass


@dataclass
class Report:
    enrolled: int = 0
    held_out: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.enrolled + self.held_out + sum(self.skipped.values())


def first_due(sequence: Sequence, now: datetime) -> datetime:
    step = sequence.steps[0]
    return now + timedelta(days=step.delay_days, hours=step.delay_hours)


def _insert(rows: list[dict]) -> set[int]:
    """Insert enrolments; return the customers whose row went in (others were enrolled meanwhile)."""
    if not rows:
        return set()
    stmt = upsert_insert(Enrolment.__table__)
    # The partial index's own predicate as SQL text: a bound value would be rendered into the
    # statement at each execution, which executemany refuses.
    stmt = stmt.on_conflict_do_nothing(index_elements=[Enrolment.customer_id], index_where=text("state = 'active'"))
    # executemany, not .values(rows): SQLAlchemy sends the rows as multi-row INSERTs from one compiled
    # statement ("insertmanyvalues"), where .values(rows) compiled a bind parameter per value
    # (40,000 per chunk of 5,000): ~25x the cost of the INSERT itself.
    return set(db.session.connection().scalars(stmt.returning(Enrolment.customer_id), rows))


def enrol(sequence: Sequence, customer_ids: Iterable[int] | Select, source: str, acting: User | None,
          now: datetime | None = None, messaging: Messaging | None = None, rng: random.Random | None = None) -> Report:
    """Enrol the eligible ones among these customers (ids, or a SELECT of ids); the caller commits."""
    if sequence.paused:
        raise SequencePaused(sequence.id)
    now = now or clock.now()
    messaging = messaging or settings.load(Messaging)
    report = Report()
    usable = eligibility.step_channels(sequence, messaging) & set(channels.configured(messaging))
    if isinstance(customer_ids, Select):
        wanted = list(db.session.scalars(customer_ids))
    else:
        wanted = list(dict.fromkeys(customer_ids))
    rng = rng or random.Random()
    due = first_due(sequence, now)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        found = dict(db.session.execute(select(Customer.id, Customer.status).where(
            Customer.id.in_(chunk), eligibility.enrolable(now), eligibility.reachable(usable))).all())
        if len(found) < len(chunk):
            reachable_or_not = set(db.session.scalars(select(Customer.id).where(
                Customer.id.in_([c for c in chunk if c not in found]), eligibility.enrolable(now))))
            report.skipped["unreachable"] += len(reachable_or_not)
            report.skipped["not_eligible"] += len(chunk) - len(found) - len(reachable_or_not)
            report.skipped += Counter()  # drops the zero counts
        ids = list(found)
        rng.shuffle(ids)
        held = set(ids[:round(len(ids) * sequence.holdout_percent / 100)])
        base = {"sequence_id": sequence.id, "source": source[:40], "enrolled_at": now,
                "enrolled_by_id": acting.id if acting else None, "sent": 0}
        if held:
            db.session.execute(insert(Enrolment), [
                {**base, "customer_id": cid, "state": EnrolmentState.HOLDOUT, "next_step": 1, "next_at": None,
                 "ended_at": now, "end_reason": "holdout"} for cid in held])
        added = _insert([{**base, "customer_id": cid, "state": EnrolmentState.ACTIVE, "next_step": 1,
                          "next_at": due} for cid in ids if cid not in held])
        if len(ids) - len(held) - len(added):
            report.skipped["not_eligible"] += len(ids) - len(held) - len(added)
        report.enrolled += len(added)
        report.held_out += len(held)
        if added:
            db.session.execute(update(Customer).where(Customer.id.in_(added))
                               .values(status=Status.IN_SEQUENCE).execution_options(synchronize_session=False))
        user_id = acting.id if acting else None
        entries = [{"customer_id": cid, "kind": Kind.SEQUENCE, "at": now, "user_id": user_id,
                    "outcome": "held_out" if cid in held else "enrolled", "body": sequence.name,
                    "data": {"sequence_id": sequence.id, "source": source,
                             **({} if cid in held else {"before": found[cid].value})}}
                   for cid in (*held, *added)]
        if entries:
            db.session.execute(insert(Interaction), entries)
    db.session.expire_all()  # customers' statuses changed underneath the session
    return report


def _customer_reason(customer: Customer) -> str | None:
    """Why the customer can join no sequence at all now, in words."""
    if customer.do_not_contact:
        return str(_l("The customer is marked do-not-contact."))
    if customer.status is Status.INACTIVE:
        return str(_l("The customer is on the inactive list."))
    if customer.status is Status.RESPONDED:
        return str(_l("The customer has answered already: a manager follows up."))
    running = active_enrolment(customer.id)
    if running is not None:
        return str(_l("The customer is in “%(name)s” already.", name=running.sequence.name))
    if db.session.scalar(select(func.count()).where(Customer.id == customer.id, ~eligibility.enrolable())):
        return str(_l("The customer was held out of a sequence as a control lately."))
    return None


def reasons(customer: Customer, candidates: list[Sequence],
            messaging: Messaging | None = None) -> list[tuple[Sequence, str | None]]:
    """Each sequence with why this customer cannot be enrolled in it now (None: they can). What
    holds for the customer is checked once, not once per sequence (the card lists them all)."""
    general = _customer_reason(customer)
    messaging = messaging or settings.load(Messaging)
    reachable = eligibility.reachable_channels(customer, channels.configured(messaging))
    result = []
    for sequence in candidates:
        if sequence.paused:
            why = str(_l("The sequence is paused."))
        elif general:
            why = general
        elif not eligibility.step_channels(sequence, messaging) & reachable:
            why = str(_l("No consent and contact on any channel this sequence uses (or the channel is not set up)."))
        else:
            why = None
        result.append((sequence, why))
    return result


def why_not(customer: Customer, sequence: Sequence, messaging: Messaging | None = None) -> str | None:
    """Why this customer cannot be enrolled in this sequence now, in words; None when they can."""
    return reasons(customer, [sequence], messaging)[0][1]


def active_enrolment(customer_id: int) -> Enrolment | None:
    return db.session.scalar(select(Enrolment).where(Enrolment.customer_id == customer_id,
                                                     Enrolment.state == EnrolmentState.ACTIVE))


def end(enrolment: Enrolment, state: EnrolmentState, reason: str, now: datetime | None = None) -> bool:
    """End a running enrolment once (a concurrent ending wins or loses as a whole): queued messages
    are not sent. Return whether this call ended it."""
    now = now or clock.now()
    ended = db.session.execute(
        update(Enrolment).where(Enrolment.id == enrolment.id, Enrolment.state == EnrolmentState.ACTIVE)
        .values(state=state, ended_at=now, end_reason=reason, next_at=None)
        .execution_options(synchronize_session=False)).rowcount == 1
    if ended:
        db.session.execute(
            update(Message).where(Message.enrolment_id == enrolment.id, Message.state == MessageState.QUEUED)
            .values(state=MessageState.SKIPPED, reason=reason).execution_options(synchronize_session=False))
        db.session.refresh(enrolment)
    return ended


def cadence_status(customer: Customer) -> Status:
    return Status(customer.lapse.value) if customer.lapse in (Lapse.LAPSING, Lapse.LAPSED) else Status.ACTIVE


def stop(customer: Customer, reason: str, acting: User | None, now: datetime | None = None) -> Enrolment | None:
    """Take a customer out of their running sequence (a manager's decision, do-not-contact...);
    their status goes back to what their cadence says."""
    from crm import customers

    enrolment = active_enrolment(customer.id)
    if enrolment is None or not end(enrolment, EnrolmentState.STOPPED, reason, now):
        return None
    if customer.status is Status.IN_SEQUENCE:
        status = cadence_status(customer)
        customers.record(customer, Kind.STATUS, acting, before=customer.status.value, after=status.value)
        customer.status = status
    customers.record(customer, Kind.SEQUENCE, acting, body=enrolment.sequence.name, outcome="stopped",
                     sequence_id=enrolment.sequence_id, reason=reason)
    return enrolment


# --- automatic rules -------------------------------------------------------------------------

RULE_SOURCE = "rule:{}"


def _rule_matches(rule: EnrolmentRule, today: date):
    """SQL conditions for who a rule enrols today."""
    not_since_last_order = ~select(Enrolment.id).where(
        Enrolment.customer_id == Customer.id, Enrolment.sequence_id == rule.sequence_id,
        or_(Customer.last_order_at.is_(None), Enrolment.enrolled_at >= Customer.last_order_at)).exists()
    if rule.trigger in (Trigger.LAPSING, Trigger.LAPSED):
        conditions = [Customer.lapse == Lapse(rule.trigger.value), not_since_last_order]
    elif rule.trigger is Trigger.AFTER_ORDER:
        start, end_ = workdays.day_bounds(today - timedelta(days=rule.days))
        conditions = [Customer.last_order_at >= start, Customer.last_order_at < end_, not_since_last_order]
    elif rule.trigger is Trigger.BEFORE_EXPECTED:
        conditions = [Customer.expected_next_order_on == today + timedelta(days=rule.days), not_since_last_order]
    elif rule.trigger is Trigger.BIRTHDAY:
        day = today + timedelta(days=rule.days)
        recently = ~select(Enrolment.id).where(
            Enrolment.customer_id == Customer.id, Enrolment.sequence_id == rule.sequence_id,
            Enrolment.enrolled_at >= clock.now() - timedelta(days=300)).exists()
        conditions = [extract("month", Customer.birthday) == day.month, extract("day", Customer.birthday) == day.day,
                      recently]
    else:
        conditions = [false()]
    if rule.groups:
        cells = [cell for group in rule.groups for cell in rfm.cells_of(group)]
        conditions.append(Customer.rfm.in_(cells))
    return and_(*conditions)


def apply_rules(today: date | None = None, now: datetime | None = None) -> dict[int, Report]:
    """Run each active rule once per team day (a second pass the same day does nothing)."""
    today = today or clock.team_today()
    reports = {}
    rules = db.session.scalars(select(EnrolmentRule).where(
        EnrolmentRule.active.is_(True), or_(EnrolmentRule.last_run_on.is_(None), EnrolmentRule.last_run_on < today))
        .order_by(EnrolmentRule.id)).all()
    for rule in rules:
        claimed = db.session.execute(
            update(EnrolmentRule).where(EnrolmentRule.id == rule.id, or_(EnrolmentRule.last_run_on.is_(None),
                                                                         EnrolmentRule.last_run_on < today))
            .values(last_run_on=today).execution_options(synchronize_session=False)).rowcount
        if claimed != 1 or rule.sequence.paused:
            continue
        query = select(Customer.id).where(_rule_matches(rule, today), eligibility.enrolable())
        reports[rule.id] = enrol(rule.sequence, query, RULE_SOURCE.format(rule.id), None, now=now)
    return reports

"""Who may get a sequence's message, on which channel, and why not: checked at enrolment and again
before every step (by the dispatcher) and right before sending (by the worker)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, or_, select

from crm import channels
from crm.extensions import db
from crm.models import (
    Channel,
    Consent,
    Contact,
    Customer,
    Enrolment,
    EnrolmentState,
    Message,
    MessageState,
    Sequence,
    Status,
    StepChannel,
)
from crm.settings import CHANNELS, Messaging

CAP_WINDOW = timedelta(days=7)
# A customer held out as a control stays out of every sequence this long, or the control group
# would be messaged by the next enrolment and the lift would mean nothing.
HOLDOUT_KEEP = timedelta(days=90)
# Reasons that end an enrolment rather than skip one step.
STOPS = ("do_not_contact", "inactive", "responded")


def stop_reason(customer: Customer) -> str | None:
    if customer.do_not_contact:
        return "do_not_contact"
    if customer.status is Status.INACTIVE:
        return "inactive"
    if customer.status is Status.RESPONDED:
        return "responded"
    return None


def _channel_order(customer: Customer, step_channel: StepChannel, messaging: Messaging) -> list[str]:
    if step_channel is not StepChannel.PREFERRED:
        return [step_channel.value]
    preferred = customer.preferred_channel.value if customer.preferred_channel else None
    first = [preferred] if preferred in CHANNELS else []
    return list(dict.fromkeys(first + list(messaging.fallback)))


def _recipient(customer: Customer, channel: str) -> str | None:
    for kind in channels.CONTACT_KINDS[channel]:
        for contact in customer.contacts:
            if contact.kind is kind and not contact.invalid:
                return contact.value
    return None


def reachable_channels(customer: Customer, configured: list[str]) -> set[str]:
    """The set-up channels this customer agreed to and has a usable contact on."""
    return {channel for channel in configured
            if (consent := customer.consent_for(Channel(channel))) is not None and consent.granted
            and _recipient(customer, channel) is not None}


def routes(customer: Customer, step_channel: StepChannel, messaging: Messaging,
           configured: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    """The (channel, recipient) pairs to try in order, and when there are none, why: the reason
    for the first channel the step would have used."""
    found, why = [], None
    for channel in _channel_order(customer, step_channel, messaging):
        consent = customer.consent_for(Channel(channel))
        recipient = _recipient(customer, channel)
        if channel not in configured:
            reason = "channel_not_set_up"
        elif consent is None or not consent.granted:
            reason = "no_consent"
        elif recipient is None:
            reason = "no_contact"
        else:
            found.append((channel, recipient))
            continue
        why = why or reason
    return found, None if found else why


def recent_counts(customer_ids: set[int], now: datetime) -> dict[int, int]:
    """Messages each of these customers had (or has queued) in the seven days before `now`: the
    weekly cap, counted for a whole dispatch batch in one query."""
    if not customer_ids:
        return {}
    return dict(db.session.execute(select(Message.customer_id, func.count()).where(
        Message.customer_id.in_(customer_ids), Message.queued_at > now - CAP_WINDOW,
        Message.state.in_([MessageState.QUEUED, MessageState.SENDING, MessageState.SENT, MessageState.UNCERTAIN]))
        .group_by(Message.customer_id)).all())


def step_channels(sequence: Sequence, messaging: Messaging) -> set[str]:
    used = set()
    for step in sequence.steps:
        used |= set(CHANNELS) if step.channel is StepChannel.PREFERRED else {step.channel.value}
    return used


def reachable(channel_names: set[str]):
    """SQL: the customer has consent and a usable contact on at least one of these channels."""
    clauses = []
    for channel in sorted(channel_names):
        clauses.append(exists(select(1).select_from(Consent).join(
            Contact, and_(Contact.customer_id == Consent.customer_id,
                          Contact.kind.in_(channels.CONTACT_KINDS[channel]), Contact.invalid.is_(False)))
            .where(Consent.customer_id == Customer.id, Consent.channel == channel, Consent.granted.is_(True))))
    return or_(*clauses) if clauses else False


def not_stopped():
    """SQL: the customer may still be written to at all (not do-not-contact, inactive or answered);
    the part of `stop_reason` that lives on the customer row."""
    return and_(Customer.do_not_contact.is_(False), Customer.status.not_in([Status.INACTIVE, Status.RESPONDED]))


def enrolable(now: datetime | None = None):
    """SQL: not do-not-contact, not inactive, not answered already, not in a running sequence,
    not held out lately."""
    from crm import clock

    since = (now or clock.now()) - HOLDOUT_KEEP
    return and_(not_stopped(),
                ~exists(select(1).where(Enrolment.customer_id == Customer.id,
                                        or_(Enrolment.state == EnrolmentState.ACTIVE,
                                            and_(Enrolment.state == EnrolmentState.HOLDOUT,
                                                 Enrolment.enrolled_at > since)))))

"""A customer answered: a click on the tracked link, a reply through an inbound hook, a paid order,
or a call a manager logged. The running sequence stops at once (queued steps are not sent), the
status becomes responded, the manager gets a call-back for today, and the timeline says why.

Unsubscribing is not answering: it only turns that channel's consent off (and, with no channel
left, moves the customer to the inactive list).
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import callbacks, clock, contacts, customers, enrolment, inactive
from crm.errors import FieldError
from crm.extensions import db
from crm.figures import aware
from crm.models import (
    Channel,
    Contact,
    ContactKind,
    Customer,
    Enrolment,
    EnrolmentState,
    Kind,
    Message,
    Order,
    OrderStatus,
    Status,
    User,
)

LABELS = {"click": _l("clicked the link"), "reply": _l("replied"), "order": _l("placed an order"),
          "call": _l("answered a call")}


def respond(customer: Customer, how: str, acting: User | None = None, now: datetime | None = None,
            hand_off: bool = True, **data) -> bool:
    """Stop the customer's running sequence because they answered; False when none was running."""
    now = now or clock.now()
    running = enrolment.active_enrolment(customer.id)
    if running is None or not enrolment.end(running, EnrolmentState.RESPONDED, how, now):
        return False
    customers.record(customer, Kind.SEQUENCE, acting, body=running.sequence.name, outcome="responded", how=how,
                     sequence_id=running.sequence_id, step=running.next_step - 1, **data)
    if customer.status is not Status.RESPONDED:
        customers.record(customer, Kind.STATUS, acting, before=customer.status.value, after=Status.RESPONDED.value,
                         how=how)
        customer.status = Status.RESPONDED
    if hand_off:
        callbacks.hand_off(customer, now)
    return True


def click(message: Message, now: datetime | None = None) -> None:
    """The tracked link in a message was opened."""
    now = now or clock.now()
    if message.clicked_at is None:
        message.clicked_at = now
    respond(message.customer, "click", now=now, message_id=message.id)


def after_order(order: Order) -> bool:
    """A paid order placed after enrolment is an answer."""
    if order.status is not OrderStatus.PAID:
        return False
    running = enrolment.active_enrolment(order.customer_id)
    customer = db.session.get(Customer, order.customer_id)
    if running is None:
        if customer.status is Status.RESPONDED:
            # They answered earlier and have now bought: back among the active, by their cadence.
            status = enrolment.cadence_status(customer)
            customers.record(customer, Kind.STATUS, None, before=customer.status.value, after=status.value,
                             how="order")
            customer.status = status
        return False
    if aware(order.placed_at) < aware(running.enrolled_at):
        return False
    return respond(customer, "order", order_id=order.id)


def after_orders(customer_ids: list[int]) -> int:
    """Set-based `after_order` for an import: customers with a running sequence and a paid order
    placed since they were enrolled."""
    answered = 0
    for start in range(0, len(customer_ids), 5000):
        chunk = customer_ids[start:start + 5000]
        found = db.session.scalars(select(Enrolment.customer_id).where(
            Enrolment.customer_id.in_(chunk), Enrolment.state == EnrolmentState.ACTIVE,
            select(Order.id).where(Order.customer_id == Enrolment.customer_id, Order.status == OrderStatus.PAID,
                                   Order.placed_at >= Enrolment.enrolled_at).exists())).all()
        for customer_id in found:
            answered += respond(db.session.get(Customer, customer_id), "order")
    return answered


# --- inbound hooks -------------------------------------------------------------------------------

# What a sender's address is matched against, per hook channel.
INBOUND_KINDS = {
    "email": (ContactKind.EMAIL,),
    "sms": (ContactKind.PHONE,),
    "whatsapp": (ContactKind.WHATSAPP, ContactKind.PHONE),
    "telegram": (ContactKind.TELEGRAM,),
}


def find_sender(channel: str, sender: str, region: str) -> Customer | None:
    kinds = INBOUND_KINDS[channel]
    try:
        value = contacts.normalise(kinds[0], sender, region)
    except FieldError:
        return None
    return db.session.scalar(select(Customer).join(Contact).where(Contact.kind.in_(kinds), Contact.value == value)
                             .order_by(Customer.id).limit(1))


def inbound(channel: str, sender: str, text: str | None, region: str, bounce: bool = False) -> str:
    """An inbound message (or a bounce report) from a gateway; return what came of it:
    "reply", "bounce" or "unknown" (no customer has that address)."""
    customer = find_sender(channel, sender, region)
    if customer is None:
        return "unknown"
    if bounce:
        kinds = INBOUND_KINDS[channel]
        for contact in customer.contacts:
            if contact.kind in kinds and not contact.invalid:
                contact.invalid = True
        customers.record(customer, Kind.MESSAGE_IN, None, outcome="bounce", channel=channel)
        if inactive.every_contact_failed(customer):
            inactive.move(customer, "bounces", str(inactive.HOW["bounces"]), None)
        return "bounce"
    customers.record(customer, Kind.MESSAGE_IN, None, body=(text or "")[:5000], outcome="reply", channel=channel)
    respond(customer, "reply", channel=channel)
    return "reply"


def unsubscribe(message: Message, how: str = "link") -> bool:
    """Turn off consent on the channel a message went out on; False when it was off already."""
    customer = message.customer
    channel = Channel(message.channel)
    consent = customer.consent_for(channel)
    if consent is None or not consent.granted:
        return False
    customers.set_consent(customer, channel, False, f"unsubscribe {how} (message {message.id})", None)
    if inactive.every_consent_withdrawn(customer):
        inactive.move(customer, "unsubscribed", str(inactive.HOW["unsubscribed"]), None)
    return True

"""The inactive list: customers taken out of every mailing and queue, kept on record, restorable.

Ways in: no response to a whole sequence (crm.dispatch), a manager's decision, hard bounces or
wrong numbers on every channel, unsubscribed from every channel. Ways out: restore (back to
active, with a note), or erase (personal data removed on request, anonymous order figures kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from flask_babel import format_date, ngettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import selectinload

from crm import clock, customers, enrolment, figures, segments, workdays
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    CallBack,
    Consent,
    Contact,
    Customer,
    EnrolmentState,
    Interaction,
    Kind,
    Message,
    SearchTerm,
    Status,
    User,
)

HOW = {
    "no_response": _l("No response to a sequence"),
    "manager": _l("A manager's decision"),
    "bounces": _l("Unreachable on every channel"),
    "unsubscribed": _l("Unsubscribed from every channel"),
}
PAGE_SIZE = 50
# The reason the worker writes when a sequence goes unanswered: one fixed form (the worker has no
# reader's language), put into the reader's language when shown (`describe`).
_NO_RESPONSE = re.compile(r"no response to (?P<name>.*): (?P<n>\d+) messages, last on (?P<day>\d{4}-\d{2}-\d{2})",
                          re.DOTALL)


def no_response_reason(sequence_name: str, messages: int, last_day: date) -> str:
    return f"no response to {sequence_name}: {messages} messages, last on {last_day.isoformat()}"


def describe(how: str | None, reason: str | None) -> str:
    """The reason a customer is on the list, in the reader's language where it came from the app
    (a person's own words stay as they were typed)."""
    found = _NO_RESPONSE.fullmatch(reason or "") if how == "no_response" else None
    if found:
        return ngettext("No response to “%(name)s”: %(num)s message, the last on %(day)s",
                        "No response to “%(name)s”: %(num)s messages, the last on %(day)s", int(found["n"]),
                        name=found["name"], day=format_date(date.fromisoformat(found["day"])))
    if how in ("bounces", "unsubscribed"):
        return str(HOW[how])
    return reason or ""


def move(customer: Customer, how: str, reason: str, acting: User | None, now: datetime | None = None,
         ending: EnrolmentState = EnrolmentState.STOPPED) -> bool:
    """Put a customer on the inactive list (the caller commits); False when they are there already."""
    if customer.status is Status.INACTIVE:
        return False
    now = now or clock.now()
    running = enrolment.active_enrolment(customer.id)
    if running is not None:
        enrolment.end(running, ending, how, now)
    # Out of every queue: an open call-back is closed, not left for a manager to stumble on.
    db.session.execute(update(CallBack).where(CallBack.customer_id == customer.id, CallBack.done_at.is_(None))
                       .values(done_at=now, outcome="inactive").execution_options(synchronize_session=False))
    customers.record(customer, Kind.STATUS, acting, body=reason, before=customer.status.value,
                     after=Status.INACTIVE.value, how=how)
    customer.status = Status.INACTIVE
    customer.inactive_reason, customer.inactive_since, customer.inactive_how = reason[:300], now, how
    stage_id = customers.stage_id_of("inactive")
    if stage_id:
        customer.stage_id, customer.stage_pinned = stage_id, True
    return True


def restore(customer: Customer, note: str | None, acting: User) -> None:
    """Back to active (what their cadence says), with a note on the timeline."""
    if customer.status is not Status.INACTIVE:
        raise FieldError("note", str(_l("This customer is not on the inactive list.")))
    note = (note or "").strip()[:2000]
    if not note:
        raise FieldError("note", str(_l("Say why the customer comes back (it goes on the timeline).")))
    status = enrolment.cadence_status(customer)
    customers.record(customer, Kind.STATUS, acting, body=note, before=Status.INACTIVE.value, after=status.value,
                     how="restored")
    customer.status, customer.inactive_reason, customer.inactive_since, customer.inactive_how = status, None, None, None
    customer.stage_pinned = False
    segments.refresh(customer)


def erase(customer: Customer, acting: User) -> None:
    """Remove a customer's personal data for good; orders stay, anonymous, so the figures add up."""
    if customer.status is not Status.INACTIVE:
        raise FieldError("erase", str(_l("Move the customer to the inactive list before erasing.")))
    if db.session.scalar(select(func.count()).select_from(Interaction).where(
            Interaction.customer_id == customer.id, Interaction.kind == Kind.ERASED)):
        raise FieldError("erase", str(_l("This customer's personal data was erased already.")))
    db.session.execute(update(CallBack).where(CallBack.customer_id == customer.id).values(note=None, undo=None)
                       .execution_options(synchronize_session=False))
    db.session.execute(delete(Contact).where(Contact.customer_id == customer.id))
    db.session.execute(delete(Consent).where(Consent.customer_id == customer.id))
    db.session.execute(delete(SearchTerm).where(SearchTerm.customer_id == customer.id))
    db.session.execute(update(Interaction).where(Interaction.customer_id == customer.id)
                       .values(body=None, data={}).execution_options(synchronize_session=False))
    db.session.execute(update(Message).where(Message.customer_id == customer.id)
                       .values(recipient=None, subject=None, body=None, result=[])
                       .execution_options(synchronize_session=False))
    db.session.expire(customer, ["contacts", "consents"])
    for name in ("birthday", "gender", "city", "notes", "leave_reason_note", "external_ref", "timezone",
                 "preferred_channel"):
        setattr(customer, name, None)
    customer.name = str(_l("Erased customer #%(id)s", id=customer.id))
    customer.sort_name = customer.name.lower()
    customer.tags, customer.favourite_products, customer.favourite_categories = [], [], []
    customer.inactive_reason = str(_l("Personal data erased on request"))
    customer.do_not_contact = True
    customers.record(customer, Kind.ERASED, acting)


def every_contact_failed(customer: Customer) -> bool:
    """Every contact bounced or was a wrong number: nobody can reach them any more, not even by phone."""
    return bool(customer.contacts) and all(contact.invalid for contact in customer.contacts)


def every_consent_withdrawn(customer: Customer) -> bool:
    """Consent was given on some channel once and is withdrawn on all of them now."""
    return bool(customer.consents) and not any(consent.granted for consent in customer.consents)


# --- the list --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    how: str = ""
    q: str = ""
    since_from: date | None = None  # moved to the list on these team days, both included
    since_to: date | None = None

    @classmethod
    def from_args(cls, args) -> Filters:
        """Read filters from query-string arguments, ignoring values that make no sense."""
        how = args.get("how", "")
        return cls(how=how if how in HOW else "", q=(args.get("q") or "").strip()[:100],
                   since_from=workdays.parse_day(args.get("since_from")),
                   since_to=workdays.parse_day(args.get("since_to")))

    def to_args(self) -> dict[str, str]:
        """Return the filters in use as URL arguments."""
        values = {"how": self.how, "q": self.q, "since_from": self.since_from and self.since_from.isoformat(),
                  "since_to": self.since_to and self.since_to.isoformat()}
        return {key: value for key, value in values.items() if value}


def _query(filters: Filters):
    query = select(Customer).where(Customer.status == Status.INACTIVE)
    if filters.q:
        query = query.where(Customer.sort_name.startswith(filters.q.lower(), autoescape=True))
    if filters.how:
        query = query.where(Customer.inactive_how == filters.how)
    # With the status, a range of the (status, inactive_since, id) index.
    if filters.since_from:
        query = query.where(Customer.inactive_since >= workdays.day_bounds(filters.since_from)[0])
    if filters.since_to:
        query = query.where(Customer.inactive_since < workdays.day_bounds(filters.since_to)[1])
    return query


def page(filters: Filters, before: tuple[datetime, int] | None = None) -> tuple[list[Customer], bool]:
    """A page of the list, most recently moved first; and whether more follow."""
    query = _query(filters)
    if before is not None:
        since, ident = before
        query = query.where((Customer.inactive_since < since) |
                            ((Customer.inactive_since == since) & (Customer.id < ident)))
    rows = db.session.scalars(query.order_by(Customer.inactive_since.desc(), Customer.id.desc())
                              .limit(PAGE_SIZE + 1)).all()
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def count(filters: Filters) -> int:
    return db.session.scalar(select(func.count()).select_from(_query(filters).with_only_columns(
        Customer.id).subquery()))


def export_rows(filters: Filters):
    """Rows for the owner's CSV export, streamed."""
    query = (_query(filters).order_by(Customer.inactive_since.desc(), Customer.id.desc())
             .options(selectinload(Customer.contacts)).execution_options(yield_per=1000))
    currency = current_app.config["TEAM_CURRENCY"]
    for customer in db.session.scalars(query):
        since = figures.aware(customer.inactive_since) if customer.inactive_since else None
        yield [customer.id, customer.name, " ".join(c.value for c in customer.contacts),
               since.isoformat() if since else "", HOW.get(customer.inactive_how or "", ""),
               describe(customer.inactive_how, customer.inactive_reason), customer.order_count,
               figures.major_units(customer.total_spent, currency)]

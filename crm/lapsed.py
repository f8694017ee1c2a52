"""The lapsed-client queues: lapsing and lapsed customers worth contacting, most value at risk
first, and what a manager does from there (call-back, reason for leaving, dismiss).

A queue is one range of the (lapse, at_risk, id) index, walked from the top and filtered row by
row; the customers who must not be disturbed are left out and counted by reason.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, exists, false, func, literal_column, not_, or_, select, tuple_

from crm import callbacks, clock, customers, rfm, saved_segments, segments
from crm.errors import FieldError
from crm.extensions import db, redis
from crm.ids import MAX_ID, as_id
from crm.models import (
    Behaviour,
    CallBack,
    Channel,
    Consent,
    Contact,
    ContactKind,
    Customer,
    Kind,
    Lapse,
    LeaveReason,
    Segment,
    Status,
    User,
)

PAGE_SIZE = 25
# Counting who is left out reads the whole queue (seconds at a million customers): the counts are
# kept a few minutes, not recounted after every action; an import or a rebuild, which can change
# the whole queue, starts a new generation of them.
EXCLUDED_SECONDS = 300
EXCLUDED_GENERATION = "lapsed:excluded:generation"
DISMISS_DAYS = (7, 30, 90)
MAX_BULK = 500
# Which contact a channel needs besides consent (a call or an SMS needs a phone number).
CHANNEL_CONTACT = {Channel.EMAIL: ContactKind.EMAIL, Channel.SMS: ContactKind.PHONE, Channel.PHONE: ContactKind.PHONE,
                   Channel.TELEGRAM: ContactKind.TELEGRAM, Channel.WHATSAPP: ContactKind.WHATSAPP}



EXCLUSIONS = {
    "inactive": _l("On the inactive list"),
    "in_sequence": _l("Already in a sequence"),
    "do_not_contact": _l("Do not contact"),
    "complainer": _l("Marked as a complainer"),
    "no_consent": _l("No consent on any channel"),
    "dismissed": _l("Dismissed for now"),
    "queued": _l("Already in a call-back queue"),
}


@dataclass
class QueueFilters:
    lapse: str = Lapse.LAPSED.value
    segment: str = ""  # a saved segment's id
    rfm_group: str = ""
    behaviour: str = ""
    manager: str = ""  # a user id, or "none"
    channel: str = ""

    @classmethod
    def from_args(cls, args) -> QueueFilters:
        lapse = args.get("lapse", Lapse.LAPSED.value)
        manager = args.get("manager", "")
        return cls(
            lapse=lapse if lapse in (Lapse.LAPSING.value, Lapse.LAPSED.value) else Lapse.LAPSED.value,
            segment=str(as_id(args.get("segment"))) if as_id(args.get("segment")) else "",
            rfm_group=args.get("rfm_group", "") if args.get("rfm_group") in rfm.GROUPS else "",
            behaviour=args.get("behaviour", "") if args.get("behaviour") in {b.value for b in Behaviour} else "",
            manager=manager if manager == "none" or as_id(manager) else "",
            channel=args.get("channel", "") if args.get("channel") in {c.value for c in Channel} else "",
        )

    def to_args(self, **changes) -> dict:
        values = {**self.__dict__, **changes}
        return {k: v for k, v in values.items() if v}


def _open_callback():
    return exists().where(CallBack.customer_id == Customer.id, CallBack.done_at.is_(None))


def _any_consent():
    return exists().where(Consent.customer_id == Customer.id, Consent.granted.is_(True))


def _reachable_on(channel: Channel):
    return and_(
        exists().where(Consent.customer_id == Customer.id, Consent.channel == channel, Consent.granted.is_(True)),
        exists().where(Contact.customer_id == Customer.id, Contact.kind == CHANNEL_CONTACT[channel],
                       Contact.invalid.is_(False)))


def _exclusion(today: date):
    """A CASE naming the first reason a customer must be left out, NULL when they may be contacted."""
    return case(
        (Customer.status == Status.INACTIVE, "inactive"),
        (Customer.status == Status.IN_SEQUENCE, "in_sequence"),
        (Customer.do_not_contact.is_(True), "do_not_contact"),
        (Customer.complainer.is_(True), "complainer"),
        (not_(_any_consent()), "no_consent"),
        (and_(Customer.dismissed_until.is_not(None), Customer.dismissed_until > today), "dismissed"),
        (_open_callback(), "queued"),
        else_=None)


def _matching(filters: QueueFilters):
    conditions = [Customer.lapse == filters.lapse]
    if filters.segment:
        segment = db.session.get(Segment, int(filters.segment))
        # A segment deleted meanwhile matches nobody rather than everybody.
        conditions.append(Customer.id.in_(saved_segments.customer_ids_query(segment)) if segment else false())
    if filters.rfm_group:
        conditions.append(Customer.rfm.in_(rfm.cells_of(filters.rfm_group)))
    if filters.behaviour:
        conditions.append(Customer.behaviour == filters.behaviour)
    if filters.manager == "none":
        conditions.append(Customer.manager_id.is_(None))
    elif filters.manager:
        conditions.append(Customer.manager_id == int(filters.manager))
    if filters.channel:
        conditions.append(_reachable_on(Channel(filters.channel)))
    return conditions


def _contactable(today: date):
    return [Customer.status.not_in([Status.INACTIVE, Status.IN_SEQUENCE]), Customer.do_not_contact.is_(False),
            Customer.complainer.is_(False), _any_consent(),
            or_(Customer.dismissed_until.is_(None), Customer.dismissed_until <= today), not_(_open_callback())]


def queue_ids(filters: QueueFilters, today: date | None = None):
    """Everyone in a queue as the page shows it (its filters and exclusions), as a SELECT of ids."""
    return select(Customer.id).where(*_matching(filters), *_contactable(today or clock.team_today()))


def encode_cursor(at_risk: int, ident: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at_risk, ident]).encode()).decode().rstrip("=")


def decode_cursor(token: str | None) -> tuple[int, int] | None:
    if not token:
        return None
    try:
        at_risk, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        fits = all(isinstance(v, int) and abs(v) <= MAX_ID for v in (at_risk, ident))
        return (at_risk, ident) if fits else None
    except (ValueError, TypeError):
        return None


def page(filters: QueueFilters, cursor: str | None = None, today: date | None = None,
         size: int = PAGE_SIZE) -> tuple[list[Customer], str | None]:
    """Return one page of the queue, most value at risk first, and the cursor of the next page."""
    today = today or clock.team_today()
    query = select(Customer).where(*_matching(filters), *_contactable(today))
    after = decode_cursor(cursor)
    if after:
        query = query.where(tuple_(Customer.at_risk, Customer.id) < tuple_(*after))
    # A literal LIMIT, as in crm.customer_list: SQLite then walks the index instead of sorting.
    rows = db.session.scalars(query.order_by(Customer.at_risk.desc(), Customer.id.desc())
                              .limit(literal_column(str(int(size) + 1)))).unique().all()
    more = len(rows) > size
    rows = rows[:size]
    return rows, encode_cursor(rows[-1].at_risk, rows[-1].id) if more and rows else None


def exclusion_counts(filters: QueueFilters, today: date | None = None) -> dict[str, int]:
    """How many customers of this queue were left out, by reason (one reason each), and how many
    are in it (key "included")."""
    today = today or clock.team_today()
    reason = _exclusion(today).label("reason")
    inner = select(reason).where(*_matching(filters)).subquery()
    counts = dict(db.session.execute(select(inner.c.reason, func.count()).group_by(inner.c.reason)).all())
    result = {key: counts.get(key, 0) for key in EXCLUSIONS}
    result["included"] = counts.get(None, 0)
    return result


def kept_exclusion_counts(filters: QueueFilters) -> dict[str, int]:
    """`exclusion_counts`, kept for a few minutes per filter (or until `forget_exclusion_counts`)."""
    generation = int(redis.connection.get(EXCLUDED_GENERATION) or 0)
    key = f"lapsed:excluded:{generation}:" + "&".join(f"{k}={v}" for k, v in sorted(filters.to_args().items()))
    cached = redis.connection.hgetall(key)
    if cached:
        return {k.decode(): int(v) for k, v in cached.items()}
    counts = exclusion_counts(filters)
    redis.connection.hset(key, mapping=counts)
    redis.connection.expire(key, EXCLUDED_SECONDS)
    return counts


def forget_exclusion_counts() -> None:
    """Count who is left out afresh at the next view (after an import or a rebuild)."""
    redis.connection.incr(EXCLUDED_GENERATION)


def sizes() -> dict[str, int]:
    """How many customers are lapsing and lapsed, before exclusions, as of the last rebuild (the tabs
    of the page: counting a third of a million index entries per page view would cost more than the
    page itself)."""
    counts = segments.last_rebuild().get("lapse_counts", {})
    return {lapse: counts.get(lapse, 0) for lapse in (Lapse.LAPSING.value, Lapse.LAPSED.value)}


# --- actions ---------------------------------------------------------------------------------------

def _chosen(customer_ids: list[int]) -> list[Customer]:
    if not customer_ids:
        raise FieldError("ids", str(_l("Tick at least one customer.")))
    if len(customer_ids) > MAX_BULK:
        raise FieldError("ids", str(_l("Choose at most %(n)d customers at a time.", n=MAX_BULK)))
    return db.session.scalars(select(Customer).where(Customer.id.in_(customer_ids))).unique().all()


def assign_callbacks(customer_ids: list[int], target, day: date | None, acting: User,
                     today: date | None = None) -> int:
    """Put customers in call-back queues for a day (one manager's, or shared round-robin or by
    load); return how many were added. A customer already waiting for a call keeps that one."""
    chosen = sorted(_chosen(customer_ids), key=lambda c: (-c.at_risk, c.id))  # the queue's rank
    return callbacks.assign(chosen, target, day, acting, today=today)


def set_leave_reason(customer_ids: list[int], reason: str, acting: User) -> int:
    """Record why these customers left; return how many changed."""
    try:
        value = LeaveReason(reason)
    except ValueError:
        raise FieldError("reason", str(_l("Choose one of the offered reasons."))) from None
    changed = 0
    for customer in _chosen(customer_ids):
        if customer.leave_reason is value:
            continue
        before = customer.leave_reason.value if customer.leave_reason else ""
        customer.leave_reason = value
        customers.record(customer, Kind.EDIT, acting, field="leave_reason", before=before, after=value.value)
        changed += 1
    return changed


def dismiss(customer_ids: list[int], days: int | str, acting: User, today: date | None = None) -> int:
    """Leave customers out of the queues for some days; return how many."""
    try:
        days = int(days)
    except (TypeError, ValueError):
        days = 0
    if days not in DISMISS_DAYS:
        raise FieldError("days", str(_l("Choose one of the offered periods.")))
    until = (today or clock.team_today()) + timedelta(days=days)
    chosen = _chosen(customer_ids)
    for customer in chosen:
        customer.dismissed_until = until
        customers.record(customer, Kind.EDIT, acting, field="dismissed_until", before="", after=until.isoformat())
    return len(chosen)

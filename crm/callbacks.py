"""The daily call-back queue: who a manager phones today, in what order, and what each outcome does.

A call-back stays open until a call's outcome closes it. An outcome that asks for another call
("no answer", "call me back at ...") closes the row and opens the next one, so every closed row is
one call made: the progress line and the history are counts of closed rows. At most one call-back
per customer is open (a unique index), so two managers are never sent to the same person, and the
outcome claims its row with one conditional UPDATE, so a double click, a retry or a colleague on
the same row records the call once.

The web views, the lapsed queues and account deactivation all go through here; callers commit.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, delete, func, or_, select, update

from crm import accounts, clock, customers, settings, workdays
from crm.errors import FieldError
from crm.extensions import db, upsert_insert
from crm.figures import aware
from crm.ids import as_id
from crm.models import (
    CallBack,
    CallReason,
    Contact,
    ContactKind,
    Customer,
    Interaction,
    Kind,
    Lapse,
    LeaveReason,
    Order,
    OrderStatus,
    Role,
    Status,
    TeamSetting,
    User,
)
from crm.settings import CallRules

# The outcomes of a call, in the order of their keyboard shortcuts (1-5; 6 is a free note).
OUTCOMES = ("responded", "not_interested", "no_answer", "wrong_number", "call_back")
REACHED = frozenset({"responded", "not_interested", "call_back"})  # somebody picked up
UNDO_SECONDS = 30  # the page offers undo for a few seconds; the server allows for a slow network
SHARE = {"round_robin": _l("Round-robin across managers"), "least_loaded": _l("Least loaded manager")}
ROUND_ROBIN_KEY = "callbacks_round_robin"


class AlreadyHandled(Exception):
    """Somebody logged this call-back's outcome already (a colleague, or this same click before)."""

    def __init__(self, callback: CallBack):
        super().__init__(callback.id)
        self.callback = callback


class Refused(Exception):
    """The customer can no longer be called (moved to inactive, or do-not-contact meanwhile)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotYours(Exception):
    """A manager acting on another manager's call-back."""


# --- the queue ---------------------------------------------------------------------------------

@dataclass
class Row:
    callback: CallBack
    customer: Customer
    phone: str | None
    last_call: Interaction | None = None


@dataclass
class Progress:
    """ "12 of 30 done today": calls logged today, calls still to make within the cap, the rest."""

    done: int = 0
    shown: int = 0
    rolled: int = 0  # due but beyond the daily cap: they wait for the next working day
    cap: int | None = None  # None for a sum over several queues

    @property
    def total(self) -> int:
        return self.done + self.shown

    def __add__(self, other: Progress) -> Progress:
        return Progress(self.done + other.done, self.shown + other.shown, self.rolled + other.rolled)


@dataclass
class Queue:
    manager: User | None
    rows: list[Row]
    progress: Progress


def _callable():
    """Customers who may still be phoned: an inactive or do-not-contact customer leaves the queue."""
    return [Customer.status != Status.INACTIVE, Customer.do_not_contact.is_(False)]


def _held_by(manager_id: int | None):
    return CallBack.manager_id.is_(None) if manager_id is None else CallBack.manager_id == manager_id


def _due(manager_id: int | None, end: datetime):
    return [_held_by(manager_id), CallBack.done_at.is_(None), CallBack.due_at < end, *_callable()]


def _rank(start: datetime):
    """Promised and retried calls and overdue ones first, by when they fell due; then the day's new
    assignments, most value at risk first."""
    scheduled = or_(CallBack.due_at < start, CallBack.reason == CallReason.PROMISED, CallBack.attempts > 0)
    return (case((scheduled, 0), else_=1), case((scheduled, CallBack.due_at)), Customer.at_risk.desc(), CallBack.id)


def done_today(manager_id: int | None, day: date) -> int:
    start, end = workdays.day_bounds(day)
    return db.session.scalar(select(func.count()).select_from(CallBack).where(
        _held_by(manager_id), CallBack.done_at >= start, CallBack.done_at < end, CallBack.outcome.in_(OUTCOMES)))


def progress(manager: User | None, now: datetime | None = None, rules: CallRules | None = None) -> Progress:
    """ "12 of 30 done today" for a manager's queue, by counting (no rows loaded)."""
    now = now or clock.now()
    rules = rules or settings.load(CallRules)
    day = workdays.day_of(now)
    manager_id = manager.id if manager else None
    done = done_today(manager_id, day)
    due = db.session.scalar(select(func.count()).select_from(CallBack).join(Customer).where(
        *_due(manager_id, workdays.day_bounds(day)[1])))
    shown = min(due, max(rules.daily_cap - done, 0)) if manager else due
    return Progress(done, shown, due - shown, rules.daily_cap)


def queue(manager: User | None, now: datetime | None = None, rules: CallRules | None = None) -> Queue:
    """The manager's calls for the team's today (None: the call-backs nobody holds), within the cap."""
    now = now or clock.now()
    counts = progress(manager, now, rules)
    start, end = workdays.day_bounds(workdays.day_of(now))
    found = db.session.execute(
        select(CallBack, Customer).join(Customer, Customer.id == CallBack.customer_id)
        .where(*_due(manager.id if manager else None, end)).order_by(*_rank(start)).limit(counts.shown)).all()
    rows = [Row(callback, customer, None) for callback, customer in found]
    _fill(rows)
    return Queue(manager, rows, counts)


def team_queues(now: datetime | None = None) -> list[Queue]:
    """Every active member's queue that has anything today, and the call-backs nobody holds."""
    rules = settings.load(CallRules)
    queues = [queue(member, now, rules) for member in accounts.active_team()] + [queue(None, now, rules)]
    return [q for q in queues if q.rows or q.progress.done or q.progress.rolled]


def team_progress(now: datetime | None = None) -> Progress:
    """The whole team's progress line, by counting (no rows loaded)."""
    rules = settings.load(CallRules)
    return sum((progress(member, now, rules) for member in [*accounts.active_team(), None]), Progress())


def _fill(rows: list[Row]) -> None:
    """Attach each row's phone (the first one not flagged wrong) and last logged call, in two queries."""
    ids = [row.customer.id for row in rows]
    if not ids:
        return
    phones: dict[int, str] = {}
    for customer_id, value in db.session.execute(
            select(Contact.customer_id, Contact.value).where(
                Contact.customer_id.in_(ids), Contact.kind == ContactKind.PHONE, Contact.invalid.is_(False))
            .order_by(Contact.id)):
        phones.setdefault(customer_id, value)
    latest = (select(func.max(Interaction.id)).where(Interaction.customer_id.in_(ids), Interaction.kind == Kind.CALL)
              .group_by(Interaction.customer_id))
    calls = {entry.customer_id: entry for entry in db.session.scalars(
        select(Interaction).where(Interaction.id.in_(latest)))}
    for row in rows:
        row.phone = phones.get(row.customer.id)
        row.last_call = calls.get(row.customer.id)


def row_of(callback: CallBack) -> Row:
    """One queue row, for swapping in place after an outcome."""
    single = Row(callback, callback.customer, None)
    _fill([single])
    return single


# --- outcomes ----------------------------------------------------------------------------------

def _open_for(callback_id, acting: User) -> CallBack:
    callback = db.session.get(CallBack, as_id(callback_id) or 0)
    if callback is None:
        raise LookupError(callback_id)
    if acting.role is not Role.OWNER and callback.manager_id != acting.id:
        raise NotYours(callback_id)
    return callback


def _check_callable(customer: Customer) -> None:
    if customer.status is Status.INACTIVE:
        raise Refused(str(_l("%(name)s was moved to the inactive list meanwhile: this call is off.",
                             name=customer.name)))
    if customer.do_not_contact:
        raise Refused(str(_l("%(name)s was marked do-not-contact meanwhile: this call is off.", name=customer.name)))


def parse_when(raw: str | None, now: datetime) -> datetime:
    """A "call me back at" time typed in the team's zone (YYYY-MM-DDTHH:MM): in the future and
    within working days and hours."""
    try:
        local = datetime.fromisoformat((raw or "").strip())
    except ValueError:
        raise FieldError("when", str(_l("Pick a date and time."))) from None
    if local.tzinfo is not None:
        raise FieldError("when", str(_l("Pick a date and time.")))
    moment = workdays.local_moment(local.date(), local.time())
    if moment <= now:
        raise FieldError("when", str(_l("Pick a time in the future.")))
    if moment - now > timedelta(days=366):
        raise FieldError("when", str(_l("Pick a time within a year.")))
    if not workdays.within_hours(moment):
        config = current_app.config
        raise FieldError("when", str(_l("Pick a working day between %(start)s:00 and %(end)s:00.",
                                         start=config["WORKDAY_START_HOUR"], end=config["WORKDAY_END_HOUR"])))
    return moment


def _set_status(customer: Customer, status: Status, acting: User, undo: dict, how: str = "manager") -> None:
    if customer.status is status:
        return
    undo.setdefault("status", customer.status.value)
    undo.setdefault("stage_id", customer.stage_id)
    undo.setdefault("stage_pinned", customer.stage_pinned)
    undo["entries"].append(customers.record(customer, Kind.STATUS, acting, before=customer.status.value,
                                            after=status.value))
    customer.status = status
    if status is Status.INACTIVE:
        customer.inactive_how, customer.inactive_since = how, clock.now()
        customer.inactive_reason = str(_l("A manager's decision after a call") if how == "manager" else
                                       _l("Wrong number, and no other channel to reach them"))
        stage_id = customers.stage_id_of("inactive")
        if stage_id and customer.stage_id != stage_id:
            undo["entries"].append(customers.record(customer, Kind.STAGE, acting, before=customer.stage_id,
                                                    after=stage_id))
            customer.stage_id, customer.stage_pinned = stage_id, True


def _follow_up(callback: CallBack, due_at: datetime, reason: CallReason, attempts: int, note: str | None,
               undo: dict) -> None:
    follow = CallBack(customer_id=callback.customer_id, manager_id=callback.manager_id, due_at=due_at,
                      reason=reason, attempts=attempts, note=note, created_by_id=callback.handled_by_id)
    db.session.add(follow)
    db.session.flush()
    undo["next_id"] = follow.id


def log_outcome(callback_id, outcome: str, acting: User, *, note: str | None = None, reason: str | None = None,
                inactive: bool = False, when: str | None = None, now: datetime | None = None,
                rules: CallRules | None = None) -> CallBack:
    """Log a call's outcome on a call-back, once; apply what follows from it; return the call-back.

    Raises LookupError / NotYours for a wrong id, FieldError for a bad reason or time,
    Refused if the customer may no longer be called, AlreadyHandled if the row was closed already
    (except the same person logging the same outcome again, which returns the row as it is)."""
    now = now or clock.now()
    callback = _open_for(callback_id, acting)
    if outcome not in OUTCOMES:
        raise FieldError("outcome", str(_l("Choose one of the offered values.")))
    if callback.done_at is not None:
        if callback.handled_by_id == acting.id and callback.outcome == outcome:
            return callback  # a double click or a retry: already recorded
        raise AlreadyHandled(callback)
    customer = callback.customer
    _check_callable(customer)
    note = (note or "").strip()[:2000] or None
    leave_reason = None
    if outcome == "not_interested":
        try:
            leave_reason = LeaveReason(reason or "")
        except ValueError:
            raise FieldError("reason", str(_l("Choose a reason for leaving."))) from None
    promised_at = parse_when(when, now) if outcome == "call_back" else None
    rules = rules or settings.load(CallRules)

    # The claim: only one request turns this row from open to done; every other one stops here.
    claimed = db.session.execute(
        update(CallBack).where(CallBack.id == callback.id, CallBack.done_at.is_(None))
        .values(done_at=now, outcome=outcome, handled_by_id=acting.id)
        .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(callback)
    if claimed != 1:
        raise AlreadyHandled(callback)

    undo: dict = {"entries": []}
    call = customers.record(customer, Kind.CALL, acting, body=note, outcome=outcome, callback_id=callback.id,
                            **({"reason": leave_reason.value} if leave_reason else {}),
                            **({"when": promised_at.isoformat()} if promised_at else {}))
    undo["entries"].append(call)
    if outcome == "responded":
        if customer.status is not Status.RESPONDED:
            _set_status(customer, Status.RESPONDED, acting, undo)
        # A running sequence stops here (the manager is on the phone already: no hand-off call).
        from crm import responses

        responses.respond(customer, "call", acting, now, hand_off=False)
    elif outcome == "not_interested":
        undo["leave_reason"] = customer.leave_reason.value if customer.leave_reason else None
        customer.leave_reason = leave_reason
        if inactive:
            _set_status(customer, Status.INACTIVE, acting, undo)
    elif outcome == "no_answer":
        attempts = callback.attempts + 1
        if attempts < rules.attempt_limit:
            _follow_up(callback, workdays.after_no_answer(attempts, workdays.day_of(now)), callback.reason,
                       attempts, callback.note, undo)
        elif rules.after_attempts == "inactive":
            _set_status(customer, Status.INACTIVE, acting, undo)
        # "queue": nothing more; with no open call-back the customer is back in the lapsed queue.
    elif outcome == "wrong_number":
        phone = db.session.scalars(select(Contact).where(
            Contact.customer_id == customer.id, Contact.kind == ContactKind.PHONE, Contact.invalid.is_(False))
            .order_by(Contact.id).limit(1)).first()
        if phone is not None:
            phone.invalid = True
            undo["contact_id"] = phone.id
            db.session.flush()
            db.session.refresh(customer, ["contacts"])
            from crm import inactive

            if inactive.every_contact_failed(customer):  # wrong numbers and bounces on every channel
                _set_status(customer, Status.INACTIVE, acting, undo, how="bounces")
    elif outcome == "call_back":
        _follow_up(callback, promised_at, CallReason.PROMISED, 0, note or callback.note, undo)
    db.session.flush()
    undo["entries"] = [entry.id for entry in undo["entries"]]
    callback.undo = undo
    return callback


def take_back(callback_id, acting: User, now: datetime | None = None) -> CallBack:
    """Undo an outcome logged moments ago by the same person: reopen the call-back, put back what it
    changed, and remove its timeline entries. Raises FieldError once the moment has passed."""
    now = now or clock.now()
    callback = _open_for(callback_id, acting)
    if callback.done_at is None:
        return callback  # undone already (a double click)
    done_at = aware(callback.done_at)
    undo = callback.undo
    if callback.handled_by_id != acting.id or undo is None or now - done_at > timedelta(seconds=UNDO_SECONDS):
        raise FieldError("undo", str(_l("This call can no longer be undone; log a new outcome on the card.")))
    if undo.get("next_id"):
        follow = db.session.get(CallBack, undo["next_id"])
        if follow is not None and follow.done_at is not None:
            raise FieldError("undo", str(_l("The follow-up call was logged already; it can no longer be undone.")))
        if follow is not None:
            db.session.delete(follow)
            db.session.flush()  # before reopening: one open call-back per customer
    customer = callback.customer
    if "status" in undo:
        customer.status = Status(undo["status"])
        customer.stage_id, customer.stage_pinned = undo["stage_id"], undo["stage_pinned"]
    if "leave_reason" in undo:
        customer.leave_reason = LeaveReason(undo["leave_reason"]) if undo["leave_reason"] else None
    if undo.get("contact_id"):
        contact = db.session.get(Contact, undo["contact_id"])
        if contact is not None:
            contact.invalid = False
    db.session.execute(delete(Interaction).where(Interaction.id.in_(undo["entries"])))
    callback.done_at = callback.outcome = callback.handled_by_id = callback.undo = None
    return callback


def add_note(callback_id, text: str, acting: User) -> CallBack:
    """A free note on the call-back (shown on its row) and the customer's timeline; the call stays open."""
    callback = _open_for(callback_id, acting)
    body = (text or "").strip()
    if not body:
        raise FieldError("note", str(_l("Write something first.")))
    if len(body) > 2000:
        raise FieldError("note", str(_l("Use at most %(n)d characters.", n=2000)))
    customers.record(callback.customer, Kind.NOTE, acting, body=body, callback_id=callback.id)
    callback.note = body
    return callback


# --- assignment --------------------------------------------------------------------------------

def active_managers() -> list[User]:
    return db.session.scalars(select(User).where(User.active.is_(True), User.role == Role.MANAGER)
                              .order_by(User.id)).all()


def open_load(manager_ids: list[int]) -> dict[int, int]:
    """Open call-backs each of these managers holds."""
    counts = dict(db.session.execute(
        select(CallBack.manager_id, func.count())
        .where(CallBack.manager_id.in_(manager_ids), CallBack.done_at.is_(None)).group_by(CallBack.manager_id)).all())
    return {ident: counts.get(ident, 0) for ident in manager_ids}


@dataclass
class Sharer:
    """Hands out customers one at a time to one manager, in turn, or to whoever holds fewest open calls."""

    mode: str
    managers: list[User]
    turn: int = 0
    heap: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def for_target(cls, target, acting: User, exclude: int | None = None) -> Sharer:
        if target in SHARE:
            if acting.role is not Role.OWNER:
                raise FieldError("manager", str(_l("Only an owner shares calls among the team.")))
            managers = [m for m in active_managers() if m.id != exclude]
            if not managers:
                raise FieldError("manager", str(_l("There is no active manager to share the calls among.")))
            sharer = cls(target, managers)
            if target == "round_robin":
                row = db.session.get(TeamSetting, ROUND_ROBIN_KEY)
                last = (row.value or {}).get("last") if row else None
                # Start after whoever got the last call of the previous round, so small batches stay fair.
                sharer.turn = next((i + 1 for i, m in enumerate(managers) if m.id == last), 0) % len(managers)
            else:
                sharer.heap = [(load, ident) for ident, load in open_load([m.id for m in managers]).items()]
                heapq.heapify(sharer.heap)
            return sharer
        manager = db.session.get(User, as_id(target) or 0)
        if manager is None or not manager.active or manager.id == exclude:
            raise FieldError("manager", str(_l("Choose an active team member.")))
        if acting.role is not Role.OWNER and manager.id != acting.id:
            raise FieldError("manager", str(_l("Managers put customers in their own queue.")))
        return cls("one", [manager])

    def next(self) -> User:
        if self.mode == "round_robin":
            manager = self.managers[self.turn % len(self.managers)]
            self.turn += 1
            return manager
        if self.mode == "least_loaded":
            load, ident = heapq.heappop(self.heap)
            heapq.heappush(self.heap, (load + 1, ident))
            return next(m for m in self.managers if m.id == ident)
        return self.managers[0]

    def remember(self, last: User | None) -> None:
        if self.mode == "round_robin" and last is not None:
            row = db.session.get(TeamSetting, ROUND_ROBIN_KEY) or TeamSetting(key=ROUND_ROBIN_KEY)
            row.value = {"last": last.id}
            db.session.add(row)


def reason_for(customer: Customer) -> CallReason:
    """Why a customer from the lapsed queues is called: a big spender slipping away is a VIP call."""
    if customer.lapse is Lapse.LAPSING and customer.m_score == 3:
        return CallReason.VIP
    return CallReason.LAPSING if customer.lapse is Lapse.LAPSING else CallReason.LAPSED


def check_day(day: date | None, today: date) -> date:
    if day is None:
        raise FieldError("day", str(_l("Pick a day.")))
    if day < today:
        raise FieldError("day", str(_l("Pick today or a later day.")))
    if not workdays.is_working_day(day):
        raise FieldError("day", str(_l("Pick a working day.")))
    return day


def _insert_open(rows: list[dict]) -> set[int]:
    """Insert call-backs, skipping customers who already wait for a call (the unique index decides,
    so two people adding the same customer at once cannot both succeed); return who was added."""
    if not rows:
        return set()
    stmt = upsert_insert(CallBack).values(rows)
    stmt = stmt.on_conflict_do_nothing(index_elements=[CallBack.customer_id], index_where=CallBack.done_at.is_(None))
    return set(db.session.scalars(stmt.returning(CallBack.customer_id)))


def assign(chosen: list[Customer], target, day: date | None, acting: User, *, reason: CallReason | None = None,
           note: str | None = None, at: time | None = None, today: date | None = None) -> int:
    """Put customers (in rank order) in call-back queues for a day: one manager's (`target` an id) or
    shared round-robin / least-loaded. Return how many were added; a customer already waiting for
    a call keeps that one."""
    check_day(day, today or clock.team_today())
    due = workdays.local_moment(day, at) if at else workdays.opening(day)
    if at and not workdays.within_hours(due):
        raise FieldError("at", str(_l("Pick a time within working hours.")))
    sharer = Sharer.for_target(target, acting)
    waiting = set(db.session.scalars(select(CallBack.customer_id).where(
        CallBack.customer_id.in_([c.id for c in chosen]), CallBack.done_at.is_(None))))
    planned, last = {}, None
    for customer in chosen:
        if customer.id in waiting or customer.id in planned:
            continue
        last = manager = sharer.next()
        planned[customer.id] = (customer, manager, reason or reason_for(customer))
    added = _insert_open([{"customer_id": cid, "manager_id": m.id, "due_at": due, "reason": r, "note": note,
                           "attempts": 0, "created_by_id": acting.id, "created_at": clock.now()}
                          for cid, (_, m, r) in planned.items()])
    for cid in added:
        customer, manager, why = planned[cid]
        customers.record(customer, Kind.CALLBACK, acting, outcome="assigned", manager_id=manager.id,
                         manager=manager.name, due=day.isoformat(), reason=why.value)
    sharer.remember(last)
    return len(added)


def hand_off(customer: Customer, now: datetime | None = None) -> bool:
    """A customer answered a sequence: a call-back for today with their manager (or whoever holds
    the fewest open calls), due now or when the working day starts. False when one is open already."""
    now = now or clock.now()
    manager_id = customer.manager_id
    manager = customer.manager
    if manager is None or not manager.active:
        team = {m.id: m for m in active_managers()}
        load = open_load(list(team))
        manager = team[min(load, key=lambda ident: (load[ident], ident))] if load else None
    manager_id = manager.id if manager else None
    day = workdays.day_of(now)
    due = max(now, workdays.opening(day)) if workdays.is_working_day(day) else workdays.opening(
        workdays.next_working_day(day))
    added = _insert_open([{"customer_id": customer.id, "manager_id": manager_id, "due_at": due,
                           "reason": CallReason.SEQUENCE, "note": None, "attempts": 0, "created_by_id": None,
                           "created_at": now}])
    if added:
        customers.record(customer, Kind.CALLBACK, None, outcome="assigned", manager_id=manager_id,
                         manager=manager.name if manager else "", due=workdays.day_of(due).isoformat(),
                         reason=CallReason.SEQUENCE.value)
    return bool(added)


def reassign(callback_ids: list[int], target, acting: User, exclude: int | None = None) -> int:
    """Give open call-backs to another manager or share them out (owner only); return how many moved."""
    if acting.role is not Role.OWNER:
        raise FieldError("manager", str(_l("Only an owner reassigns calls.")))
    sharer = Sharer.for_target(target, acting, exclude=exclude)
    held = db.session.scalars(select(CallBack).where(CallBack.id.in_(callback_ids), CallBack.done_at.is_(None))
                              .order_by(CallBack.due_at, CallBack.id)).all()
    moved, last = 0, None
    for callback in held:
        last = manager = sharer.next()
        if callback.manager_id == manager.id:
            continue
        callback.manager_id = manager.id
        customers.record(callback.customer, Kind.CALLBACK, acting, outcome="reassigned", manager_id=manager.id,
                         manager=manager.name, due=workdays.day_of(callback.due_at).isoformat(),
                         reason=callback.reason.value)
        moved += 1
    sharer.remember(last)
    return moved


def hand_over(leaving: User, acting: User) -> int:
    """A deactivated member's open call-backs go to the least-loaded active managers (or, with no
    manager left, to the owner deactivating them): reassigned, not lost."""
    ids = list(db.session.scalars(select(CallBack.id).where(CallBack.manager_id == leaving.id,
                                                            CallBack.done_at.is_(None))))
    if not ids:
        return 0
    target = "least_loaded" if any(m.id != leaving.id for m in active_managers()) else acting.id
    return reassign(ids, target, acting, exclude=leaving.id)


# --- history -----------------------------------------------------------------------------------

@dataclass
class Day:
    day: date
    calls: int = 0
    reached: int = 0
    responded: int = 0
    returned: int = 0


def callback_outcomes(start: datetime, end: datetime) -> dict[str, int]:
    """How many call-backs got each outcome logged within [start, end) (UTC-aware), every outcome
    listed (0 when none), in the order of OUTCOMES."""
    start, end = clock.as_utc(start), clock.as_utc(end)
    counts = dict(db.session.execute(
        select(CallBack.outcome, func.count()).where(
            CallBack.done_at >= start, CallBack.done_at < end, CallBack.outcome.in_(OUTCOMES))
        .group_by(CallBack.outcome)).all())
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def history(manager_id: int | None, days: int = 14, today: date | None = None,
            rules: CallRules | None = None, outcome: str | None = None) -> list[Day]:
    """Calls per team day over the `days` days up to `today` (one member's, or the team's with None):
    made, reached, responded, and how many of those customers ordered within the team's window after;
    only the calls of one outcome when it is given."""
    today = today or clock.team_today()
    rules = rules or settings.load(CallRules)
    first = today - timedelta(days=days - 1)
    start, end = workdays.day_bounds(first)[0], workdays.day_bounds(today)[1]
    query = select(CallBack.customer_id, CallBack.done_at, CallBack.outcome).where(
        CallBack.done_at >= start, CallBack.done_at < end,
        CallBack.outcome == outcome if outcome in OUTCOMES else CallBack.outcome.in_(OUTCOMES))
    if manager_id is not None:
        query = query.where(CallBack.handled_by_id == manager_id)
    calls = db.session.execute(query).all()
    window = timedelta(days=rules.returned_within_days)
    ordered: dict[int, list[datetime]] = {}
    ids = list({c.customer_id for c in calls})
    for chunk in range(0, len(ids), 500):
        for customer_id, placed_at in db.session.execute(select(Order.customer_id, Order.placed_at).where(
                Order.customer_id.in_(ids[chunk:chunk + 500]), Order.placed_at >= start,
                Order.status == OrderStatus.PAID)):
            ordered.setdefault(customer_id, []).append(aware(placed_at))
    by_day = {first + timedelta(days=i): Day(first + timedelta(days=i)) for i in range(days)}
    for customer_id, done_at, outcome in calls:
        done_at = aware(done_at)
        entry = by_day.get(workdays.day_of(done_at))
        if entry is None:
            continue
        entry.calls += 1
        entry.reached += outcome in REACHED
        entry.responded += outcome == "responded"
        entry.returned += any(done_at < placed <= done_at + window for placed in ordered.get(customer_id, ()))
    return list(by_day.values())



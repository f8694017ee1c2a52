"""The funnel: its stages (the owner's to rename, reorder, add and remove), the board's columns a
page at a time with their bounded totals, and moving a customer's card from one stage to another.

Plain arguments in, models and values out; the board's views, the CLI and the worker call these.
Callers commit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, Select, func, insert, literal, literal_column, select, tuple_, update

from crm import customer_list
from crm.customers import record
from crm.errors import FieldError
from crm.extensions import db, redis
from crm.models import Customer, Interaction, Kind, Stage, User
from crm.models.user import utcnow

MAX_NAME = 80  # Stage.name is String(80)
MAX_STAGES = 20  # a board wider than this is no longer read at a glance
COLUMN_SIZE = 30  # cards a column shows before its "more" button
SMALL_BOOK = 2_000  # a manager with at most this many customers is read through the manager index
# Column totals stop counting here: a column of 500,000 customers is counted in a few milliseconds
# only because the count reads at most this many index entries.
COUNT_CAP = 10_000
# Adding up the LTV of 10,000 customers still reads 10,000 rows (40-100 ms at a million on SQLite),
# too slow for every view of the board: totals are kept this long in Redis, and a move through the
# board forgets those of its two columns at once. Orders, imports and the rebuild show within it.
TOTALS_SECONDS = 60


# --- reading the board --------------------------------------------------------------------------

def ordered() -> list[Stage]:
    """Return every stage in board order."""
    return list(db.session.scalars(select(Stage).order_by(Stage.position, Stage.id)))


@dataclass
class Card:
    """What a card on the board shows: read as plain columns, a board holds hundreds of them."""

    id: int
    name: str
    total_spent: int  # minor units
    last_order_at: datetime | None
    pinned: bool


@dataclass
class ColumnPage:
    cards: list[Card]
    next_cursor: str | None  # pass as `after` for the next page; None on the last one


@dataclass
class Totals:
    count: int  # exact up to COUNT_CAP
    capped: bool  # more customers than COUNT_CAP: `count` and `ltv` are then lower bounds
    ltv: int  # sum of the counted customers' total spent, minor units


_CARD = (Customer.id, Customer.name, Customer.total_spent, Customer.last_order_at, Customer.stage_pinned)


def cards(ids: list[int]) -> list[Card]:
    """Return the cards of these customers, in this order."""
    if not ids:
        return []
    found = {row.id: Card(*row) for row in db.session.execute(select(*_CARD).where(Customer.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


def _whose(column, manager: str):
    return column.is_(None) if manager == "none" else column == int(manager)


def reads_by_manager(manager: str) -> bool:
    """Tell whether the board reads this manager filter's cards through the manager's index.

    A column filtered by manager meets two indexes, (stage_id, last_order_at, id) and (manager_id,
    last_order_at, id), and SQLite cannot tell which finds the column's cards sooner (it keeps no
    per-value statistics): left to guess, it walked a manager's 600,000 customers to fill an empty
    column. So the board chooses: a book of at most SMALL_BOOK customers is read through the
    manager's index (no query then reads more than that), a bigger one through the stage's.
    """
    if not manager:
        return False
    book = select(Customer.id).where(_whose(Customer.manager_id, manager)).limit(SMALL_BOOK + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(book)) <= SMALL_BOOK


def _hidden(name: str):
    # "+column" hides a column from the planner, so that it uses another index than this column's
    # (a no-op on the value, on SQLite and PostgreSQL alike).
    return literal_column(f"+customers.{name}", Integer)


def _on_stage(stage_id: int, manager: str, *columns, by_manager: bool = False) -> Select:
    """Select these columns of a stage's customers, optionally of one manager ("none": nobody's),
    read through the stage's index or, `by_manager`, the manager's (see `reads_by_manager`)."""
    query = select(*columns).where((_hidden("stage_id") if by_manager else Customer.stage_id) == stage_id)
    if manager:
        query = query.where(_whose(Customer.manager_id if by_manager else _hidden("manager_id"), manager))
    return query


def _sane(phase: str, value, ident: int) -> bool:
    # A cursor is read from the URL: a typed one must not reach the database as a bad parameter.
    return abs(ident) < 2**63 and (phase == "nulls" or isinstance(value, datetime))


def column(stage_id: int, after: str | None = None, manager: str = "", size: int = COLUMN_SIZE,
           by_manager: bool | None = None) -> ColumnPage:
    """Return one page of a stage's cards, most recent buyers first (customers without orders last,
    newest first), the page after the cursor `after`.

    `manager` is a user id as text, "none" for unassigned customers, or "" for everyone;
    `by_manager` as `reads_by_manager(manager)` says, found out when not given. Keyset paging: each
    page is one index range, so the 7,000th page of a 200,000-card column costs what the first one
    does. Cursors are the customers list's (a tampered one starts the column over).
    """
    if by_manager is None:
        by_manager = reads_by_manager(manager)
    position = customer_list.decode_cursor(after)
    if position is not None and not _sane(*position):
        position = None
    found: list[tuple[str, Card]] = []
    if position is None or position[0] == "values":
        query = _on_stage(stage_id, manager, *_CARD, by_manager=by_manager).where(Customer.last_order_at.is_not(None))
        if position is not None:
            query = query.where(tuple_(Customer.last_order_at, Customer.id) < tuple_(position[1], position[2]))
        found = [("values", Card(*row)) for row in db.session.execute(
            query.order_by(Customer.last_order_at.desc(), Customer.id.desc()).limit(size + 1))]
    if len(found) <= size:
        query = _on_stage(stage_id, manager, *_CARD, by_manager=by_manager).where(Customer.last_order_at.is_(None))
        if position is not None and position[0] == "nulls":
            query = query.where(Customer.id < position[2])
        # Ordered by the (NULL) last order too, so PostgreSQL reads the rows in the index's order;
        # by id alone it fetches the whole group and sorts it (120 ms for 38,000 "new" customers).
        found += [("nulls", Card(*row)) for row in db.session.execute(
            query.order_by(Customer.last_order_at.desc(), Customer.id.desc()).limit(size + 1 - len(found)))]
    page = [card for _, card in found[:size]]
    if len(found) <= size:
        return ColumnPage(page, None)
    phase, last = found[size - 1]
    return ColumnPage(page, customer_list.encode_cursor(phase, last.last_order_at, last.id))


def count(stage_id: int, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count a stage's customers up to `cap`; return (count, whether there are more)."""
    bounded = _on_stage(stage_id, "", Customer.id).limit(cap + 1).subquery()
    counted = db.session.scalar(select(func.count()).select_from(bounded))
    return min(counted, cap), counted > cap


def totals(stage_id: int, manager: str = "", cap: int = COUNT_CAP) -> Totals:
    """Count a stage's customers and add up their LTV, reading at most `cap` + 1 of them."""
    by_manager = reads_by_manager(manager)
    bounded = _on_stage(stage_id, manager, Customer.total_spent, by_manager=by_manager).limit(cap + 1).subquery()
    counted, ltv = db.session.execute(
        select(func.count(), func.coalesce(func.sum(bounded.c.total_spent), 0))).one()
    # LTV is never negative, so the sum over the first cap + 1 is a true lower bound of the whole.
    return Totals(min(counted, cap), counted > cap, int(ltv))


def _count_totals(stage_ids: list[int], manager: str) -> dict[int, Totals]:
    if not stage_ids:
        return {}
    if not reads_by_manager(manager):
        return {stage_id: totals(stage_id, manager) for stage_id in stage_ids}
    # A small book is added up whole, every stage at once, in one pass over the manager's index
    # (grouped by the hidden stage: else SQLite walks the whole stage index for its order).
    stage = _hidden("stage_id")
    found = {stage_id: Totals(n, False, int(ltv)) for stage_id, n, ltv in db.session.execute(
        select(stage, func.count(), func.coalesce(func.sum(Customer.total_spent), 0))
        .where(_whose(Customer.manager_id, manager)).group_by(stage))}
    return {stage_id: found.get(stage_id, Totals(0, False, 0)) for stage_id in stage_ids}


def _totals_key(stage_id: int) -> str:
    return f"crm:funnel:totals:{stage_id}"


def board_totals(stage_ids: list[int], manager: str = "") -> dict[int, Totals]:
    """Return the totals of these columns by stage id: from Redis when fresh there, else counted
    (and kept for the next views). One hash per stage, a field per manager filter."""
    field, now = manager or "*", time.time()
    with redis.connection.pipeline(transaction=False) as pipe:
        for stage_id in stage_ids:
            pipe.hget(_totals_key(stage_id), field)
        kept = pipe.execute()
    found = {}
    for stage_id, raw in zip(stage_ids, kept, strict=True):
        # Freshness is checked on each entry: the hash's own expiry moves whenever a field is added.
        entry = json.loads(raw) if raw else None
        if entry and now - entry[3] < TOTALS_SECONDS:
            found[stage_id] = Totals(*entry[:3])
    counted = _count_totals([stage_id for stage_id in stage_ids if stage_id not in found], manager)
    found.update(counted)
    if counted:
        with redis.connection.pipeline(transaction=False) as pipe:
            for stage_id, total in counted.items():
                pipe.hset(_totals_key(stage_id), field, json.dumps([total.count, total.capped, total.ltv, now]))
                pipe.expire(_totals_key(stage_id), TOTALS_SECONDS)
            pipe.execute()
    return found


def forget_totals(*stage_ids: int | None) -> None:
    """Drop the kept totals of these columns (after a change the board made itself)."""
    keys = [_totals_key(stage_id) for stage_id in stage_ids if stage_id]
    if keys:
        redis.connection.delete(*keys)


# --- moving cards -------------------------------------------------------------------------------

def move_customer(customer: Customer, stage_id: int, acting: User | None) -> bool:
    """Put the customer on a stage by hand, pinned there, with the move on the timeline.

    Return False when the card already is on that stage (nothing changes then). After committing,
    callers `forget_totals` of both stages so the board's column totals follow at once.
    """
    stage = db.session.get(Stage, stage_id)
    if stage is None:
        raise FieldError("stage_id", str(_l("Choose one of the offered stages.")))
    if customer.stage_id == stage.id:
        return False
    before = db.session.get(Stage, customer.stage_id) if customer.stage_id else None
    customer.stage_id = stage.id
    # A person placed the card: the nightly rebuild leaves pinned cards where they are.
    customer.stage_pinned = True
    # Shaped as the rebuild's own stage entries (crm.segments), without their "auto".
    record(customer, Kind.STAGE, acting, before=before.id if before else None, after=stage.id)
    return True


def unpin(customer: Customer) -> None:
    """Let the nightly rebuild move the customer's card again."""
    customer.stage_pinned = False


# --- the owner's edits to the stages ------------------------------------------------------------

def clean_stage_name(raw: str | None, stage: Stage | None = None) -> str:
    """Return the name with its spaces tidied, refusing an empty, long or already used one."""
    name = " ".join((raw or "").split())
    if not name:
        raise FieldError("name", str(_l("Enter the stage's name.")))
    if len(name) > MAX_NAME:
        raise FieldError("name", str(_l("Use at most %(n)d characters.", n=MAX_NAME)))
    # Compared in Python: the few stages fit in memory, and SQLite's lower() knows only ASCII.
    if any(other.name.casefold() == name.casefold() for other in ordered() if other is not stage):
        raise FieldError("name", str(_l("Another stage is already called “%(name)s”.", name=name)))
    return name


def create_stage(name: str) -> Stage:
    """Add a stage at the end of the board."""
    existing = ordered()
    if len(existing) >= MAX_STAGES:
        raise FieldError("name", str(_l("A board holds at most %(n)d stages.", n=MAX_STAGES)))
    stage = Stage(name=clean_stage_name(name), key=None,
                  position=max((s.position for s in existing), default=-1) + 1)
    db.session.add(stage)
    db.session.flush()
    return stage


def rename_stage(stage: Stage, name: str) -> Stage:
    """Give a stage another name (keyed stages too: the key, not the name, is what the rebuild uses)."""
    stage.name = clean_stage_name(name, stage)
    return stage


def _renumber(stages: list[Stage]) -> None:
    for position, stage in enumerate(stages):
        stage.position = position


def reorder_stage(stage: Stage, index: int) -> None:
    """Put a stage at this place on the board (0 is the first column), the others keeping their order."""
    others = [s for s in ordered() if s.id != stage.id]
    index = max(0, min(index, len(others)))
    _renumber([*others[:index], stage, *others[index:]])


def delete_stage(stage: Stage, move_to_id: int | None, acting: User | None) -> int:
    """Remove a stage, first moving its customers to the stage `move_to_id`; return how many moved.

    Keyed stages are refused: the nightly rebuild moves cards into them by their key.
    """
    if stage.key:
        raise FieldError("stage", str(_l("The nightly rebuild moves customers into this stage, so it cannot be "
                                         "removed; rename it instead.")))
    occupied = db.session.scalar(select(Customer.id).where(Customer.stage_id == stage.id).limit(1)) is not None
    moved = 0
    if occupied:
        target = db.session.get(Stage, move_to_id) if move_to_id else None
        if target is None or target.id == stage.id:
            raise FieldError("move_to", str(_l("Choose the stage its customers move to.")))
        # Set-based, whatever the stage holds: one INSERT ... SELECT puts the move on every
        # timeline, one UPDATE moves them. Their pins stay as they were.
        data = {"before": stage.id, "after": target.id, "deleted": True}
        db.session.execute(insert(Interaction).from_select(
            ["customer_id", "kind", "at", "user_id", "data"],
            select(Customer.id, literal(Kind.STAGE.value), literal(utcnow(), Interaction.at.type),
                   literal(acting.id if acting else None, Interaction.user_id.type),
                   literal(data, Interaction.data.type))
            .where(Customer.stage_id == stage.id)))
        moved = db.session.execute(
            update(Customer).where(Customer.stage_id == stage.id).values(stage_id=target.id)
            .execution_options(synchronize_session=False)).rowcount
    db.session.delete(stage)
    db.session.flush()
    _renumber(ordered())
    return moved

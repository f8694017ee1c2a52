"""The customers list: filters, prefix search, sorting and keyset paging that stay fast at a
million customers (every page is an index range; no COUNT over the table per keystroke).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal

from babel.numbers import get_currency_precision
from flask import current_app
from sqlalchemy import Boolean, Select, and_, cast, exists, func, literal_column, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.functions import FunctionElement

from crm import clock, orders, rfm, workdays
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    Behaviour,
    Contact,
    ContactKind,
    Customer,
    Gender,
    Order,
    OrderStatus,
    SearchTerm,
    Status,
    User,
)

PAGE_SIZE = 50
COUNT_CAP = 10_000
# Search as you type reads at most this many matches of its longest word: two letters of a common
# name match tens of thousands at a million customers, and the next keystroke narrows it anyway.
SEARCH_CAP = 500
# Sort keys a user can pick, each backed by an index on (column, id).
SORTS = {
    "last_order": Customer.last_order_at,
    "name": Customer.sort_name,
    "ltv": Customer.total_spent,
    "orders": Customer.order_count,
    "created": Customer.id,
}
MAX_AGE = 130
MAX_ORDERS = 10**9
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{4,}$")
_WORD = re.compile(r"[\w@.+'-]+", re.UNICODE)


@dataclass
class Filters:
    """What the list shows; every field round-trips through the URL, so a view can be shared."""

    q: str = ""
    status: str = ""
    stage: int | None = None
    manager: str = ""  # a user id, or "none" for unassigned
    city: str = ""
    tag: str = ""
    # Day ranges are the team's calendar days, both ends included.
    last_from: date | None = None
    last_to: date | None = None
    first_from: date | None = None  # the first paid order
    first_to: date | None = None
    bought_from: date | None = None  # any paid order
    bought_to: date | None = None
    rfm: int | None = None  # one cell of crm.rfm.CELLS
    rfm_group: str = ""  # a key of crm.rfm.GROUPS
    behaviour: str = ""
    gender: str = ""
    age_from: int | None = None  # years, from the birthday
    age_to: int | None = None
    spend_from: Decimal | None = None  # LTV in major units, as the user typed it
    spend_to: Decimal | None = None
    orders_from: int | None = None
    orders_to: int | None = None
    product: str = ""  # among the customer's favourite products (crm.figures keeps the top few)
    category: str = ""
    sort: str = "last_order"
    desc: bool = True
    ids: list[int] = field(default_factory=list)  # an explicit selection (bulk actions, export)

    @classmethod
    def from_args(cls, args) -> Filters:
        """Read filters from query-string arguments, ignoring values that make no sense."""
        def as_int(raw):
            try:
                return int(raw)
            except (TypeError, ValueError):
                return None

        def in_range(raw, top):
            number = as_int(raw)
            return number if number is not None and 0 <= number <= top else None

        def one_of(raw, allowed):
            return raw if raw in allowed else ""

        status = args.get("status", "")
        sort = args.get("sort", "last_order")
        manager = args.get("manager", "")
        cell = as_int(args.get("rfm"))
        return cls(
            q=(args.get("q") or "").strip()[:100],
            status=status if status in {s.value for s in Status} else "",
            stage=as_int(args.get("stage")),
            manager=manager if manager == "none" or as_int(manager) is not None else "",
            city=(args.get("city") or "").strip()[:120],
            tag=(args.get("tag") or "").strip().lower()[:40],
            last_from=workdays.parse_day(args.get("last_from")),
            last_to=workdays.parse_day(args.get("last_to")),
            first_from=workdays.parse_day(args.get("first_from")),
            first_to=workdays.parse_day(args.get("first_to")),
            bought_from=workdays.parse_day(args.get("bought_from")),
            bought_to=workdays.parse_day(args.get("bought_to")),
            rfm=cell if cell in rfm.CELLS else None,
            rfm_group=one_of(args.get("rfm_group"), rfm.GROUPS),
            behaviour=one_of(args.get("behaviour"), {b.value for b in Behaviour}),
            gender=one_of(args.get("gender"), {g.value for g in Gender}),
            age_from=in_range(args.get("age_from"), MAX_AGE),
            age_to=in_range(args.get("age_to"), MAX_AGE),
            spend_from=_amount(args.get("spend_from")),
            spend_to=_amount(args.get("spend_to")),
            orders_from=in_range(args.get("orders_from"), MAX_ORDERS),
            orders_to=in_range(args.get("orders_to"), MAX_ORDERS),
            product=(args.get("product") or "").strip()[:200],
            category=(args.get("category") or "").strip()[:200],
            sort=sort if sort in SORTS else "last_order",
            desc=args.get("dir", "desc") != "asc",
            ids=[i for i in (as_int(v) for v in args.getlist("ids")) if i is not None][:10_000]
            if hasattr(args, "getlist") else [],
        )

    def to_args(self, **changes) -> dict:
        """Return the non-default filters as URL arguments, with `changes` applied."""
        values = {**asdict(self), **changes}
        out = {}
        for key, value in values.items():
            if key == "ids" or value in ("", None, []):
                continue
            if key == "desc":
                if not value:
                    out["dir"] = "asc"
                continue
            if key == "sort" and value == "last_order":
                continue
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = format(value, "f")
            out[key] = value
        return out

    @property
    def active(self) -> bool:
        return any((self.q, self.status, self.stage is not None, self.manager, self.city, self.tag, self.last_from,
                    self.last_to, self.first_from, self.first_to, self.bought_from, self.bought_to,
                    self.rfm is not None, self.rfm_group, self.behaviour, self.gender,
                    self.age_from is not None, self.age_to is not None, self.spend_from is not None,
                    self.spend_to is not None, self.orders_from is not None, self.orders_to is not None,
                    self.product, self.category, self.ids))


def _precision() -> int:
    return get_currency_precision(current_app.config["TEAM_CURRENCY"])


def _amount(raw) -> Decimal | None:
    """Read a spend typed in major units ("1 234,50") as order amounts are read; None when it is not one."""
    if raw in (None, ""):
        return None
    try:
        return Decimal(orders.parse_amount(raw, current_app.config["TEAM_CURRENCY"])) / 10 ** _precision()
    except FieldError:
        return None


def minor_units(amount: Decimal) -> int:
    """Return a spend typed in major units as the minor units figures are stored in."""
    return int(amount * 10 ** _precision())


def _years_before(day: date, years: int) -> date:
    # Someone born on 29 February is a year older on the 28th in a common year.
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


class _listed(FunctionElement):
    """True when a JSON array column holds this string; compiled for each database below."""

    type = Boolean()
    inherit_cache = True


@compiles(_listed)
def _listed_sqlite(element, compiler, **kw):
    # Both pieces are compiled SQL: a column name and a bound parameter's placeholder, never user text.
    column, value = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})"  # noqa: S608


@compiles(_listed, "postgresql")
def _listed_postgresql(element, compiler, **kw):
    # jsonb's key-exists operator: an array's string elements count as keys, and unlike
    # json_array_elements_text it does not fail on a JSON null or scalar.
    column, value = element.clauses
    return compiler.process(cast(column, JSONB).has_key(value), **kw)


def search_words(q: str) -> list[str]:
    """Split a search into index terms: a phone number becomes its digits."""
    if _PHONE_LIKE.match(q):
        digits = re.sub(r"\D", "", q)
        return [digits] if digits else []
    return [w.lower() for w in _WORD.findall(q)][:5]


def _prefix(column, word: str):
    # An index range, not LIKE: the same plan on SQLite and PostgreSQL ("C" collation there).
    return and_(column >= word, column < word + "\U0010ffff")


def _literal(limit: int):
    # A LIMIT sent as a parameter makes SQLite plan for an unknown limit: with a filter and a
    # sort, it then walks the sort index through the whole base when the filter matches few
    # (5 s at a million). Written into the SQL (an int, never user text) it uses the filter.
    return literal_column(str(int(limit)))


def _plain(column):
    # SQLite's unary "+" is a no-op that hides the column from the planner: the filter is then
    # checked row by row while walking the sort index instead of being looked up by its own.
    return literal_column(f"+{column.table.name}.{column.name}")


def filtered(filters: Filters, walk_sort_index: bool = False) -> Select:
    """Return a SELECT of customer ids matching the filters (no order, no limit)."""
    sort_column = SORTS[filters.sort]

    def col(column):
        # A range on the sort column itself narrows the walk, so it stays visible.
        return _plain(column) if walk_sort_index and column is not sort_column else column

    query = select(Customer.id)
    words = search_words(filters.q)
    if words:
        lead = max(words, key=len)
        query = query.where(Customer.id.in_(
            select(SearchTerm.customer_id).where(_prefix(SearchTerm.term, lead)).limit(_literal(SEARCH_CAP))))
        for word in words:
            if word is not lead:
                # Checked per candidate through the (customer_id, term) primary key.
                query = query.where(exists().where(SearchTerm.customer_id == Customer.id,
                                                   _prefix(SearchTerm.term, word)))
    if filters.status:
        query = query.where(col(Customer.status) == Status(filters.status).value)
    if filters.stage is not None:
        query = query.where(col(Customer.stage_id) == filters.stage)
    if filters.manager == "none":
        query = query.where(col(Customer.manager_id).is_(None))
    elif filters.manager:
        query = query.where(col(Customer.manager_id) == int(filters.manager))
    if filters.city:
        query = query.where(col(Customer.city) == filters.city)
    if filters.tag:
        query = query.where(Customer.id.in_(select(SearchTerm.customer_id).where(SearchTerm.term == "#" + filters.tag)))
    if filters.last_from:
        query = query.where(Customer.last_order_at >= workdays.day_bounds(filters.last_from)[0])
    if filters.last_to:
        query = query.where(Customer.last_order_at < workdays.day_bounds(filters.last_to)[1])
    if filters.first_from:
        start = workdays.day_bounds(filters.first_from)[0]
        # The last order is never before the first: stated, it lets the last-order index read only
        # the customers who ordered since, instead of checking every customer.
        query = query.where(Customer.first_order_at >= start, Customer.last_order_at >= start)
    if filters.first_to:
        query = query.where(Customer.first_order_at < workdays.day_bounds(filters.first_to)[1])
    if filters.bought_from or filters.bought_to:
        bought = [Order.customer_id == Customer.id, Order.status == OrderStatus.PAID]
        if filters.bought_from:
            start = workdays.day_bounds(filters.bought_from)[0]
            bought.append(Order.placed_at >= start)
            # As above: a paid order since then makes the last one since then too.
            query = query.where(Customer.last_order_at >= start)
        if filters.bought_to:
            bought.append(Order.placed_at < workdays.day_bounds(filters.bought_to)[1])
        # A range of the (customer_id, placed_at, status, amount) index per customer, read from the
        # index alone (SELECT * would fetch the order rows too); once per customer however many match.
        query = query.where(select(Order.id).where(*bought).exists())
    if filters.rfm is not None:
        query = query.where(col(Customer.rfm) == filters.rfm)
    if filters.rfm_group:
        query = query.where(col(Customer.rfm).in_(rfm.cells_of(filters.rfm_group)))
    if filters.behaviour:
        query = query.where(col(Customer.behaviour) == Behaviour(filters.behaviour).value)
    if filters.gender:
        query = query.where(Customer.gender == Gender(filters.gender))
    if filters.age_from is not None or filters.age_to is not None:
        today = clock.team_today()
        if filters.age_from is not None:
            query = query.where(Customer.birthday <= _years_before(today, filters.age_from))
        if filters.age_to is not None:
            query = query.where(Customer.birthday > _years_before(today, filters.age_to + 1))
    if filters.spend_from is not None:
        query = query.where(col(Customer.total_spent) >= minor_units(filters.spend_from))
    if filters.spend_to is not None:
        query = query.where(col(Customer.total_spent) <= minor_units(filters.spend_to))
    if filters.orders_from is not None:
        query = query.where(col(Customer.order_count) >= filters.orders_from)
    if filters.orders_to is not None:
        query = query.where(col(Customer.order_count) <= filters.orders_to)
    if filters.product:
        query = query.where(_listed(Customer.favourite_products, filters.product))
    if filters.category:
        query = query.where(_listed(Customer.favourite_categories, filters.category))
    if filters.ids:
        query = query.where(Customer.id.in_(filters.ids))
    return query


# --- keyset paging ------------------------------------------------------------------------------
# A cursor is the last row's (sort value, id). Customers without a value (no orders yet) come after
# all the others in both directions, as a second phase ordered by id; the cursor says which phase.

def encode_cursor(phase: str, value, ident: int) -> str:
    if isinstance(value, datetime):
        value = {"dt": value.replace(tzinfo=None).isoformat()}
    raw = json.dumps([phase, value, ident], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None):
    """Return (phase, value, id) from a cursor, or None when absent or tampered with."""
    if not token:
        return None
    try:
        phase, value, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["dt"])
        if phase not in ("values", "nulls") or not isinstance(ident, int):
            return None
        return phase, value, ident
    except (ValueError, TypeError, KeyError):
        return None


@dataclass
class Page:
    ids: list[int]  # in list order
    next_cursor: str | None

    @property
    def customers(self) -> list[Customer]:
        """Load the page's customers as entities (with contacts, manager and stage)."""
        return load(self.ids)


def load(ids: list[int]) -> list[Customer]:
    """Return these customers, in this order, with their contacts loaded in one more query."""
    if not ids:
        return []
    found = {c.id: c for c in db.session.scalars(
        select(Customer).options(selectinload(Customer.contacts)).where(Customer.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


@dataclass
class Row:
    """What one line of the list shows; read with plain column queries, not entities, because
    a page of list rows is the hottest read in the app."""

    id: int
    name: str
    tags: list[str]
    city: str | None
    status: Status
    manager: str | None
    order_count: int
    total_spent: int
    last_order_at: datetime | None
    phone: str | None = None
    email: str | None = None


def rows(ids: list[int]) -> list[Row]:
    """Return the list rows of these customers, in this order (two queries)."""
    if not ids:
        return []
    found = {r.id: Row(*r) for r in db.session.execute(
        select(Customer.id, Customer.name, Customer.tags, Customer.city, Customer.status, User.name,
               Customer.order_count, Customer.total_spent, Customer.last_order_at)
        .outerjoin(User, User.id == Customer.manager_id).where(Customer.id.in_(ids)))}
    for customer_id, kind, value in db.session.execute(
            select(Contact.customer_id, Contact.kind, Contact.value)
            .where(Contact.customer_id.in_(ids), Contact.kind.in_((ContactKind.PHONE, ContactKind.EMAIL)))
            .order_by(Contact.id)):
        row = found.get(customer_id)
        if row is not None and getattr(row, kind.value) is None:
            setattr(row, kind.value, value)
    return [found[i] for i in ids if i in found]


def page(filters: Filters, cursor: str | None = None, size: int = PAGE_SIZE) -> Page:
    """Return one page of customers and the cursor of the next one."""
    column = SORTS[filters.sort]
    ids_query = filtered(filters, walk_sort_index=_frequent_filter(filters))
    position = decode_cursor(cursor)
    nullable = column is not Customer.id and column.nullable
    order_id = Customer.id.desc() if filters.desc else Customer.id.asc()
    found: list[tuple] = []

    if position is None or position[0] == "values":
        query = ids_query.add_columns(column)
        if nullable:
            query = query.where(column.is_not(None))
        if position is not None:
            _, value, ident = position
            key = tuple_(column, Customer.id)
            query = query.where(key < tuple_(value, ident) if filters.desc else key > tuple_(value, ident))
        order = column.desc() if filters.desc else column.asc()
        found = [("values", r[1], r[0]) for r in db.session.execute(
            query.order_by(order, order_id).limit(_literal(size + 1)))]
    if nullable and len(found) <= size:
        query = ids_query.where(column.is_(None))
        if position is not None and position[0] == "nulls":
            query = query.where(Customer.id < position[2] if filters.desc else Customer.id > position[2])
        # Ordered by the (NULL) sort column too, so PostgreSQL reads the group in the index's order
        # instead of fetching all of it to sort by id (a filter's customers without orders).
        null_order = column.desc() if filters.desc else column.asc()
        found += [("nulls", None, r[0]) for r in db.session.execute(
            query.order_by(null_order, order_id).limit(_literal(size + 1 - len(found))))]

    has_more = len(found) > size
    found = found[:size]
    next_cursor = encode_cursor(*found[-1]) if has_more and found else None
    return Page([r[2] for r in found], next_cursor)


WALK_THRESHOLD = 5_000


def _sorts_served(filters: Filters) -> list[set[str]]:
    """For each filter SQLite may look up by an index of its own, the sorts that index also
    gives in order (a composite index on the filter, then last order or LTV, then id)."""
    served = []
    for present, sorts in (
        (filters.status, {"last_order", "ltv"}),
        (filters.stage is not None, {"last_order"}),
        (filters.manager, {"last_order", "ltv"}),
        (filters.city, {"last_order"}),
        (filters.rfm is not None, {"last_order"}),
        # Several cells are several ranges of that index: their union is not in last-order order.
        (filters.rfm_group, set()),
        (filters.behaviour, {"last_order"}),
        (filters.spend_from is not None or filters.spend_to is not None, {"ltv"}),
        (filters.orders_from is not None or filters.orders_to is not None, {"orders"}),
    ):
        if present:
            served.append(sorts)
    return served


def _frequent_filter(filters: Filters) -> bool:
    """Tell whether a filter matches so many customers that walking the sort index finds a page
    sooner than sorting every match. SQLite cannot know (no per-value statistics) and by default
    sorts all of them: 2 s for a city of 350,000 at a million. PostgreSQL knows on its own."""
    if db.engine.dialect.name != "sqlite" or filters.q or filters.ids:
        return False
    served = _sorts_served(filters)
    if not served:
        return False
    if all(filters.sort in sorts for sorts in served):
        return False  # whichever of the filters' indexes SQLite picks also gives the order
    probe = select(func.count()).select_from(filtered(filters).limit(_literal(WALK_THRESHOLD + 1)).subquery())
    return db.session.scalar(probe) > WALK_THRESHOLD


def count(filters: Filters, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """Count matching customers up to `cap`; return (count, whether the cap was reached)."""
    counted = db.session.scalar(select(func.count()).select_from(filtered(filters).limit(cap + 1).subquery()))
    if filters.q and counted >= SEARCH_CAP:
        return SEARCH_CAP, True
    return min(counted, cap), counted > cap


def iter_all(filters: Filters, batch: int = 1000):
    """Yield every matching customer in list order, a page at a time (exports)."""
    cursor = None
    while True:
        result = page(filters, cursor, batch)
        yield from load(result.ids)
        if result.next_cursor is None:
            return
        cursor = result.next_cursor
        db.session.expunge_all()


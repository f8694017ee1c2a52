"""What follows from a customer's paid orders: count, LTV, average check, first and last order,
usual interval (median gap), expected next order, favourite products and categories.

Two ways to keep them, with the same rules: `refresh` for one customer when an order arrives,
and `rebuild` for the whole base in a few set-based statements (no Python loop over customers).
Days since the last order are not stored: they change every day, so pages compute them from
`last_order_at`.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import get_currency_precision
from sqlalchemy import select, text

from crm.extensions import db
from crm.models import Customer, Order, OrderStatus

FAVOURITES = 3


def aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; everything is stored in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def compute(orders: Iterable[tuple[datetime, int, list[dict]]]) -> dict:
    """Return the figures for one customer's paid orders given as (placed_at, amount, items)."""
    rows = sorted(((aware(at), amount, items or []) for at, amount, items in orders), key=lambda r: r[0])
    if not rows:
        return {"order_count": 0, "total_spent": 0, "average_check": 0, "first_order_at": None,
                "last_order_at": None, "usual_interval_days": None, "expected_next_order_on": None,
                "favourite_products": [], "favourite_categories": []}
    total = sum(amount for _, amount, _ in rows)
    # Whole seconds and decimal rounding, exactly as `rebuild` does in SQL: floats of days would
    # round 364.855 down on one side and up on the other.
    gaps = [_epoch(b[0]) - _epoch(a[0]) for a, b in zip(rows, rows[1:], strict=False)]
    interval = None
    if gaps:
        hundredths = (Decimal(statistics.median(gaps)) / 864).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        interval = int(hundredths) / 100
    last = rows[-1][0]
    products: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for _, _, items in rows:
        for item in items:
            quantity = item.get("quantity") or 1
            if item.get("name"):
                products[item["name"]] += quantity
            if item.get("category"):
                categories[item["category"]] += quantity
    return {
        "order_count": len(rows),
        "total_spent": total,
        # Half up, in integers, as SQL's ROUND does in `rebuild` (Python's round() goes half-even).
        "average_check": (2 * total + len(rows)) // (2 * len(rows)),
        "first_order_at": rows[0][0],
        "last_order_at": last,
        "usual_interval_days": interval,
        "expected_next_order_on": datetime.fromtimestamp(_epoch(last) + round(interval * 86400), UTC).date()
        if interval is not None else None,
        "favourite_products": _top(products),
        "favourite_categories": _top(categories),
    }


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _top(counter: Counter[str]) -> list[str]:
    # Ties broken by name so the result does not depend on row order (and matches `rebuild`).
    return [name for name, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:FAVOURITES]]


def refresh(customer_id: int) -> Customer:
    """Recompute and store one customer's figures from their paid orders."""
    customer = db.session.get(Customer, customer_id)
    rows = db.session.execute(
        select(Order.placed_at, Order.amount, Order.items)
        .where(Order.customer_id == customer_id, Order.status == OrderStatus.PAID)
    ).all()
    for name, value in compute(rows).items():
        setattr(customer, name, value)
    return customer


def nice_number(raw: float) -> float:
    """Round up to 1, 2 or 5 times a power of ten: chart steps and bucket widths that read well."""
    if raw <= 0:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def major_units(minor: int | None, currency: str) -> str:
    """Minor units as a plain decimal in major units ("150.00", "150" for yen); empty when unknown.
    For exports and URLs (a spend filter), where a formatted amount would not read back."""
    if minor is None:
        return ""
    unit = Decimal(1).scaleb(-get_currency_precision(currency))
    return str((Decimal(minor) * unit).quantize(unit))


def days_since(last_order_at: datetime | None, today: date) -> int | None:
    """Whole days from the last order to `today` (the team's today), or None without orders."""
    return None if last_order_at is None else (today - aware(last_order_at).date()).days


# --- the set-based rebuild ------------------------------------------------------------------------

_DIALECT = {
    "sqlite": {
        "days": "(CAST(strftime('%s', {b}) AS INTEGER) - CAST(strftime('%s', {a}) AS INTEGER))",
        "plus_days": "date(CAST(strftime('%s', {t}) AS INTEGER) + CAST(ROUND({d} * 86400) AS INTEGER), 'unixepoch')",
        "items": "json_each(o.items) AS item",
        "item": "json_extract(item.value, '$.{k}')",
        "qty": "COALESCE(json_extract(item.value, '$.quantity'), 1)",
        # SQLite 3.40 has no ORDER BY inside an aggregate; it aggregates in the subquery's order.
        "agg": "json_group_array({x})",
        "empty": "'[]'",
    },
    "postgresql": {
        "days": "(FLOOR(EXTRACT(EPOCH FROM {b})) - FLOOR(EXTRACT(EPOCH FROM {a})))",
        "plus_days": "to_timestamp(FLOOR(EXTRACT(EPOCH FROM {t})) + ROUND(CAST({d} AS NUMERIC) * 86400))::date",
        "items": "json_array_elements(o.items) AS item",
        "item": "(item ->> '{k}')",
        "qty": "COALESCE((item ->> 'quantity')::numeric, 1)",
        "agg": "json_agg({x} ORDER BY rn)",
        "empty": "'[]'::json",
    },
}


def build_totals() -> None:
    """Fill the temporary table `totals_next` (customer_id, n, total, first_at, last_at) from the paid
    orders; the caller drops it. CREATE TABLE AS keeps PostgreSQL's parallel scan of the orders (an
    INSERT ... SELECT would run it on one core, four times slower here)."""
    session = db.session
    session.execute(text("DROP TABLE IF EXISTS totals_next"))
    session.execute(text("""
        CREATE TEMP TABLE totals_next AS
        SELECT customer_id, COUNT(*) AS n, SUM(amount) AS total, MIN(placed_at) AS first_at, MAX(placed_at) AS last_at
        FROM orders WHERE status = :paid GROUP BY customer_id"""), {"paid": OrderStatus.PAID.value})
    session.execute(text("CREATE UNIQUE INDEX totals_next_customer ON totals_next (customer_id)"))
    if db.engine.dialect.name != "sqlite":
        session.execute(text("ANALYZE totals_next"))


def rebuild_totals() -> int:
    """Bring every customer's count, spend, average check and first/last order in line with the
    paid orders: one GROUP BY over the orders, and only customers whose totals differ are written.

    `rebuild` starts with this (the nightly rebuild does the same inside its one pass over the
    customers, crm.segments). The median interval and the favourites need the
    orders in sequence per customer (a window over ten million rows, minutes on SQLite); they only
    change when orders do, so `refresh` and the imports keep them and `rebuild` redoes them in full.
    Returns how many customers changed."""
    sqlite = db.engine.dialect.name == "sqlite"
    distinct = "IS NOT" if sqlite else "IS DISTINCT FROM"
    empty = _DIALECT[db.engine.dialect.name]["empty"]
    session = db.session
    build_totals()
    # One pass over the customers finds both kinds of change: totals that differ, and customers
    # left without paid orders (refunds, merges), who go back to zero.
    changed = session.execute(text(f"""
        UPDATE customers SET order_count = COALESCE(d.n, 0), total_spent = COALESCE(d.total, 0),
               average_check = CASE WHEN d.n IS NULL THEN 0 ELSE CAST(ROUND(d.total * 1.0 / d.n) AS BIGINT) END,
               first_order_at = d.first_at, last_order_at = d.last_at,
               usual_interval_days = CASE WHEN d.n IS NULL THEN NULL ELSE customers.usual_interval_days END,
               expected_next_order_on = CASE WHEN d.n IS NULL THEN NULL ELSE customers.expected_next_order_on END,
               favourite_products = CASE WHEN d.n IS NULL THEN {empty} ELSE customers.favourite_products END,
               favourite_categories = CASE WHEN d.n IS NULL THEN {empty} ELSE customers.favourite_categories END
        FROM (SELECT c.id, t.n, t.total, t.first_at, t.last_at
              FROM customers AS c LEFT JOIN totals_next AS t ON t.customer_id = c.id
              WHERE c.order_count <> COALESCE(t.n, 0) OR c.total_spent <> COALESCE(t.total, 0)
                 OR c.first_order_at {distinct} t.first_at OR c.last_order_at {distinct} t.last_at) AS d
        WHERE customers.id = d.id""")).rowcount  # noqa: S608
    session.execute(text("DROP TABLE totals_next"))
    return changed


def rebuild() -> None:
    """Recompute every customer's figures from the orders, all of them (median and favourites too)."""
    d = _DIALECT[db.engine.dialect.name]
    paid = OrderStatus.PAID.value
    rebuild_totals()
    statements = [
        # One order or none: no interval (the median below only sets it for two orders or more).
        """UPDATE customers SET usual_interval_days = NULL, expected_next_order_on = NULL
           WHERE order_count < 2 AND usual_interval_days IS NOT NULL""",
        # Median of the gaps in whole seconds (the middle one, or the mean of the two middle ones),
        # stored in days rounded half up to hundredths; numeric, since PostgreSQL rounds floats to even.
        """UPDATE customers SET usual_interval_days = med.days,
               expected_next_order_on = {next_on}
           FROM (SELECT customer_id, ROUND(CAST(AVG(gap) AS NUMERIC) / 864.0) / 100.0 AS days
                 FROM (SELECT customer_id, gap,
                              ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY gap) AS rn,
                              COUNT(*) OVER (PARTITION BY customer_id) AS cnt
                       FROM (SELECT customer_id,
                                    {gap} AS gap
                             FROM orders WHERE status = :paid) AS g
                       WHERE gap IS NOT NULL) AS ranked
                 WHERE rn IN ((cnt + 1) / 2, (cnt + 2) / 2)
                 GROUP BY customer_id) AS med
           WHERE customers.id = med.customer_id""",
    ]
    gap = d["days"].format(
        a="LAG(placed_at) OVER (PARTITION BY customer_id ORDER BY placed_at)", b="placed_at")
    next_on = d["plus_days"].format(t="customers.last_order_at", d="med.days")
    for key, column in (("name", "favourite_products"), ("category", "favourite_categories")):
        # Only constants of this module go into the SQL text; values are bound parameters.
        statements.append(f"""
            UPDATE customers SET {column} = fav.names
            FROM (SELECT customer_id, {d['agg'].format(x='label')} AS names
                  FROM (SELECT customer_id, label,
                               ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY qty DESC, label) AS rn
                        FROM (SELECT o.customer_id, {d['item'].format(k=key)} AS label, SUM({d['qty']}) AS qty
                              FROM orders AS o, {d['items']}
                              WHERE o.status = :paid AND {d['item'].format(k=key)} IS NOT NULL
                              GROUP BY o.customer_id, {d['item'].format(k=key)}) AS per_item
                        ORDER BY customer_id, rn) AS ranked
                  WHERE rn <= {FAVOURITES}
                  GROUP BY customer_id) AS fav
            WHERE customers.id = fav.customer_id""")  # noqa: S608
    for sql in statements:
        db.session.execute(text(sql.format(empty=d["empty"], gap=gap, next_on=next_on)), {"paid": paid})

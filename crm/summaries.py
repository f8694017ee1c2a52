"""The dashboard's summaries, rebuilt from the orders and customers by the nightly rebuild.

A period's revenue, orders, buyers and new customers are sums over `sales_days` (a row per day and
previous-order day), the average check per segment a sum over `segment_sales_days`, cohort retention
is read from `cohort_months`, and the base per status from `base_days` (one row per night, so a
period can be compared with the one before). Days are the team's calendar days (TEAM_TIMEZONE):
an order at 23:30 UTC belongs to the next day in Vladivostok.

Each summary is recomputed in full, set-based (a pass over the orders per table); `build` is
called inside the rebuild (crm.segments) and by tests and benchmarks directly.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import current_app
from sqlalchemy import delete, func, select, text

from crm import settings
from crm.extensions import db, upsert_insert
from crm.models import BaseDay, CohortMonth, Customer, OrderStatus, SalesDay, SegmentSalesDay, Status, TeamSetting

KEY = "dashboard"  # TeamSetting row: when the summaries were built, and the LTV distribution
COHORT_MONTHS = 12  # months after the first order a cohort is followed for
LTV_BUCKETS = 10  # equal-width buckets up to the 95th percentile, and one for the rest above
BACKFILL_DAYS = 400  # how far back base_days is estimated from the orders before the first rebuild

_SQL = {
    "sqlite": {
        "day": "local_date({t}, :tz)",
        "month": "(CAST(substr({d}, 1, 4) AS INTEGER) * 12 + CAST(substr({d}, 6, 2) AS INTEGER))",
        "month_start": "(substr({d}, 1, 8) || '01')",
    },
    "postgresql": {
        "day": "CAST(timezone(:tz, {t}) AS DATE)",
        "month": "CAST(EXTRACT(YEAR FROM {d}) * 12 + EXTRACT(MONTH FROM {d}) AS INTEGER)",
        "month_start": "CAST(date_trunc('month', {d}) AS DATE)",
    },
}


@dataclass
class Report:
    seconds: float = 0.0
    steps: dict[str, float] | None = None


def build(today: date) -> Report:
    """Rebuild every summary as of the team's `today` (the caller commits)."""
    started, steps = time.monotonic(), {}
    for name, work in (("sales", _sales), ("segments", _segment_sales), ("cohorts", _cohorts),
                       ("base", lambda: _base(today)), ("ltv", lambda: _ltv(today))):
        began = time.monotonic()
        work()
        steps[name] = round(time.monotonic() - began, 2)
    return Report(round(time.monotonic() - started, 2), steps)


def _params() -> dict:
    return {"tz": current_app.config["TEAM_TIMEZONE"], "paid": OrderStatus.PAID.value}


def _sql() -> dict:
    return _SQL[db.engine.dialect.name]


def _paid_days() -> str:
    # Every paid order with its day in the team's calendar; the passes below read the orders'
    # (customer, placed_at, status, amount) index in customer order, so the windows need no sort.
    day = _sql()["day"].format(t="placed_at")
    return f"SELECT customer_id, placed_at, amount, {day} AS day FROM orders WHERE status = :paid"  # noqa: S608


def _sales() -> None:
    db.session.execute(delete(SalesDay))
    db.session.execute(text(f"""
        INSERT INTO sales_days (day, prev_day, orders, revenue)
        SELECT day, prev_day, COUNT(*), SUM(amount)
        FROM (SELECT day, LAG(day) OVER (PARTITION BY customer_id ORDER BY placed_at) AS prev_day, amount
              FROM ({_paid_days()}) AS o) AS s
        GROUP BY day, prev_day"""), _params())  # noqa: S608


def _segment_sales() -> None:
    db.session.execute(delete(SegmentSalesDay))
    db.session.execute(text(f"""
        INSERT INTO segment_sales_days (day, rfm, behaviour, orders, revenue)
        SELECT o.day, c.rfm, c.behaviour, COUNT(*), SUM(o.amount)
        FROM ({_paid_days()}) AS o JOIN customers AS c ON c.id = o.customer_id
        GROUP BY o.day, c.rfm, c.behaviour"""), _params())  # noqa: S608


def _cohorts() -> None:
    sql = _sql()
    month, first_month = sql["month"].format(d="day"), sql["month"].format(d="first_day")
    db.session.execute(delete(CohortMonth))
    db.session.execute(text(f"""
        INSERT INTO cohort_months (cohort, month_offset, customers)
        SELECT cohort, month_offset, COUNT(DISTINCT customer_id)
        FROM (SELECT customer_id, {sql['month_start'].format(d='first_day')} AS cohort,
                     {month} - {first_month} AS month_offset
              FROM (SELECT customer_id, day, MIN(day) OVER (PARTITION BY customer_id) AS first_day
                    FROM ({_paid_days()}) AS o) AS f) AS s
        WHERE month_offset <= :months
        GROUP BY cohort, month_offset"""), {**_params(), "months": COHORT_MONTHS})  # noqa: S608


def _base(today: date) -> None:
    """Today's row from the customers as they stand, and estimated rows for earlier days never
    recorded (a new installation with imported history gets its trend at once)."""
    counts = dict(db.session.execute(select(Customer.status, func.count()).group_by(Customer.status)).all())
    buyers = db.session.scalar(select(func.count()).where(Customer.order_count > 0))
    row = {"day": today, "customers": sum(counts.values()), "buyers": buyers, "estimated": False,
           **{status.value: counts.get(status, 0) for status in Status}}
    insert = upsert_insert(BaseDay).values(row)
    db.session.execute(insert.on_conflict_do_update(index_elements=["day"], set_={
        key: insert.excluded[key] for key in row if key != "day"}))
    _backfill(today)


def _backfill(today: date) -> None:
    config = settings.load()
    known = set(db.session.scalars(select(BaseDay.day).where(BaseDay.day >= today - timedelta(days=BACKFILL_DAYS))))
    first_sale = db.session.scalar(select(func.min(SalesDay.day)))
    if first_sale is None:
        return
    missing = [day for day in (today - timedelta(days=n) for n in range(1, BACKFILL_DAYS + 1))
               if day not in known and day >= first_sale]
    if not missing:
        return
    rows = []
    for day in missing:
        customers = _first_orders_until(day)
        lapsed = customers - _kept(day, config.lapsed_days)
        not_active = customers - _kept(day, config.lapsing_days)
        rows.append({"day": day, "customers": customers, "buyers": customers, "active": customers - not_active,
                     "lapsing": not_active - lapsed, "lapsed": lapsed, "in_sequence": 0, "responded": 0,
                     "inactive": 0, "estimated": True})
    db.session.execute(upsert_insert(BaseDay).on_conflict_do_nothing(index_elements=["day"]), rows)


def _first_orders_until(day: date) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(SalesDay.orders), 0))
                                 .where(SalesDay.prev_day.is_(None), SalesDay.day <= day)))


def _kept(day: date, threshold: int) -> int:
    """Customers who had bought by `day` and bought within `threshold` days of it: a customer
    counts once, by their first order in the window whose previous order is before it (or who
    are new in it)."""
    start = day - timedelta(days=threshold)
    return int(db.session.scalar(select(func.coalesce(func.sum(SalesDay.orders), 0)).where(
        SalesDay.day >= start, SalesDay.day <= day,
        (SalesDay.prev_day.is_(None)) | (SalesDay.prev_day < start))))


def _ltv(today: date) -> None:
    """The LTV distribution of the buyers: equal-width buckets up to about the 95th percentile, the
    width rounded to 1, 2 or 5 times a power of ten so the edges read as money."""
    buyers = db.session.scalar(select(func.count()).where(Customer.order_count > 0)) or 0
    counts, width = [0] * (LTV_BUCKETS + 1), 0
    if buyers:
        non_buyers = db.session.scalar(select(func.count()).where(Customer.order_count == 0))
        p95 = db.session.scalar(select(Customer.total_spent).order_by(Customer.total_spent)
                                .offset(non_buyers + int(buyers * 0.95)).limit(1)) or 1
        width = nice_step(max(p95, 1) / LTV_BUCKETS)
        smaller = func.min if db.engine.dialect.name == "sqlite" else func.least  # two-argument minimum
        bucket = smaller(Customer.total_spent // width, LTV_BUCKETS)
        for index, count in db.session.execute(select(bucket.label("b"), func.count()).where(
                Customer.order_count > 0).group_by("b")).all():
            counts[int(index)] = count
    row = db.session.get(TeamSetting, KEY) or TeamSetting(key=KEY)
    row.value = {"built_at": datetime.now(UTC).isoformat(), "today": today.isoformat(), "ltv_width": width,
                 "ltv": counts}
    db.session.add(row)


def nice_step(raw: float) -> int:
    """Round a step up to 1, 2 or 5 times a power of ten (at least 1)."""
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    return next(int(m * power) for m in (1, 2, 5, 10) if m * power >= raw)


def month_start_sql(column: str) -> str:
    """SQL for the first day of the month of a date column (a constant of the caller's, never input)."""
    return _sql()["month_start"].format(d=column)


def state() -> dict:
    """When the summaries were built and the LTV distribution; {} before the first build."""
    row = db.session.get(TeamSetting, KEY)
    value = dict(row.value) if row else {}
    if "built_at" in value:
        value["built_at"] = datetime.fromisoformat(value["built_at"])
    return value

"""The dashboard's summaries, rebuilt from the orders and customers by the nightly rebuild.

A period's revenue, orders and new customers are sums over `sales_days` (a row per day), its
distinct buyers come from `repeat_days` (see RepeatDay), the average check per segment is a sum
over `segment_sales_days`, cohort retention is read from `cohort_months`, and the base per status
from `base_days` (one row per night, so a period can be compared with the one before). Days are
the team's calendar days (TEAM_TIMEZONE): an order at 23:30 UTC belongs to the next day in
Vladivostok.

Each summary is recomputed in full, set-based (a pass over the orders per table); `build` is
called after the rebuild (crm.tasks, crm.imports, crm.demo) and by tests and benchmarks directly.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import Date, cast, delete, func, insert, literal_column, select, text

from crm import figures, sequences, settings
from crm.extensions import db, upsert_insert
from crm.models import (
    BaseDay,
    CohortMonth,
    Customer,
    Enrolment,
    OrderStatus,
    ReactivationDay,
    RepeatDay,
    SalesDay,
    SegmentSalesDay,
    Status,
    TeamSetting,
)

KEY = "dashboard"  # TeamSetting row: when the summaries were built, and the LTV distribution
COHORT_MONTHS = 12  # months after the first order a cohort is followed for
LTV_BUCKETS = 10  # equal-width buckets up to the 95th percentile, and one for the rest above
BACKFILL_DAYS = 400  # how far back base_days is estimated from the orders before the first rebuild

_SQL = {
    "sqlite": {
        "month": "(CAST(substr({d}, 1, 4) AS INTEGER) * 12 + CAST(substr({d}, 6, 2) AS INTEGER))",
        "month_start": "(substr({d}, 1, 8) || '01')",
    },
    "postgresql": {
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
    for name, work in (("sales", _sales), ("segments", _segment_sales), ("reactivation", _reactivation),
                       ("base", lambda: _base(today)), ("ltv", lambda: _ltv(today))):
        began = time.monotonic()
        work()
        steps[name] = round(time.monotonic() - began, 2)
    return Report(round(time.monotonic() - started, 2), steps)


def _sql() -> dict:
    return _SQL[db.engine.dialect.name]


def local_day_sql(column: str) -> str:
    """SQL for the team's calendar day of a stored UTC instant. PostgreSQL knows time zones; SQLite
    does not, so its expression carries the zone's offsets since 1970 as a CASE over the instants
    they changed at, newest first (most orders are recent; a zone without changes is one branch).
    Seconds are cut off first: SQLite would round 13:59:59.9999 up to 14:00."""
    zone = current_app.config["TEAM_TIMEZONE"]
    if db.engine.dialect.name == "postgresql":
        return f"CAST(timezone(:tz, {column}) AS DATE)"  # the caller binds :tz (see _params)
    moment = f"substr({column}, 1, 19)"
    changes = _offsets(zone)  # computed by this module: no user text goes into the SQL
    branches = " ".join(f"WHEN {moment} >= '{since:%Y-%m-%d %H:%M:%S}' THEN date({moment}, '{offset:+d} seconds')"
                        for since, offset in reversed(changes[1:]))
    first = f"date({moment}, '{changes[0][1]:+d} seconds')"
    return f"CASE {branches} ELSE {first} END" if branches else first


@functools.lru_cache(maxsize=8)
def _offsets(zone: str) -> list[tuple[datetime, int]]:
    """(UTC instant from which it holds, offset in seconds) for each change of the zone's offset from
    1970 to two years ahead, oldest first: a day-by-day walk, each change found to the minute."""
    tz = ZoneInfo(zone)

    def offset(at: datetime) -> int:
        return int(at.astimezone(tz).utcoffset().total_seconds())

    moment, end = datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=730)
    changes = [(moment, offset(moment))]
    while moment < end:
        following = moment + timedelta(days=1)
        if offset(following) != changes[-1][1]:
            low, high = moment, following  # offset(low) is the old one, offset(high) the new one
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == changes[-1][1] else (low, middle)
            changes.append((high.replace(second=0, microsecond=0), offset(high)))
        moment = following
    return changes


def _params(**more) -> dict:
    return {"tz": current_app.config["TEAM_TIMEZONE"], "paid": OrderStatus.PAID.value, **more}


def _paid_days() -> str:
    # Every paid order with its day in the team's calendar, read from the orders' (customer,
    # placed_at, status, amount) index in customer order, so the windows below need no sort.
    return (f"SELECT customer_id, placed_at, amount, {local_day_sql('placed_at')} AS day "  # noqa: S608
            "FROM orders WHERE status = :paid")


def _sales() -> None:
    """One pass over the orders, each with its day, the day of the customer's previous order and of
    their first; grouped, that gives the sales per day, the repeat orders per previous-order day, and
    the cohorts (an order counts for its cohort when it is the customer's first in its month)."""
    sql = _sql()
    month, first_month = sql["month"].format(d="day"), sql["month"].format(d="first_day")
    prev_month = sql["month"].format(d="prev_day")
    for model in (SalesDay, RepeatDay, CohortMonth):
        db.session.execute(delete(model))
    db.session.execute(text("DROP TABLE IF EXISTS sales_pairs"))
    db.session.execute(text(f"""
        CREATE TEMP TABLE sales_pairs AS
        SELECT day, prev_day, cohort, COUNT(*) AS n, SUM(amount) AS revenue
        FROM (SELECT day, prev_day, amount,
                     CASE WHEN (prev_day IS NULL OR {prev_month} < {month}) AND {month} - {first_month} <= :months
                          THEN {sql['month_start'].format(d='first_day')} END AS cohort
              FROM (SELECT day, amount, LAG(day) OVER w AS prev_day, FIRST_VALUE(day) OVER w AS first_day
                    FROM ({_paid_days()}) AS o
                    WINDOW w AS (PARTITION BY customer_id ORDER BY placed_at)) AS ordered) AS s
        GROUP BY day, prev_day, cohort"""), _params(months=COHORT_MONTHS))  # noqa: S608
    db.session.execute(text("""
        INSERT INTO sales_days (day, orders, revenue, first_orders)
        SELECT day, SUM(n), SUM(revenue), SUM(CASE WHEN prev_day IS NULL THEN n ELSE 0 END)
        FROM sales_pairs GROUP BY day"""))
    # A repeat order on the same day as the previous one is never a buyer's first in any period.
    db.session.execute(text("""
        INSERT INTO repeat_days (day, prev_day, running)
        SELECT day, prev_day, SUM(SUM(n)) OVER (PARTITION BY day ORDER BY prev_day)
        FROM sales_pairs WHERE prev_day IS NOT NULL AND prev_day < day
        GROUP BY day, prev_day"""))
    db.session.execute(text(f"""
        INSERT INTO cohort_months (cohort, month_offset, customers)
        SELECT cohort, {month} - {sql['month'].format(d='cohort')}, SUM(n)
        FROM sales_pairs WHERE cohort IS NOT NULL
        GROUP BY cohort, {month} - {sql['month'].format(d='cohort')}"""))  # noqa: S608
    db.session.execute(text("DROP TABLE sales_pairs"))


@dataclass(frozen=True)
class Totals:
    """Paid orders of the days [start, end] of the team's calendar."""

    orders: int = 0
    revenue: int = 0
    new: int = 0  # customers whose first order ever is in the period
    buyers: int = 0  # distinct customers with an order in the period

    @property
    def average_check(self) -> float | None:
        return self.revenue / self.orders if self.orders else None

    @property
    def repeat_share(self) -> float | None:
        """Share of the orders that were not the customer's first."""
        return (self.orders - self.new) / self.orders if self.orders else None

    @property
    def frequency(self) -> float | None:
        """Orders per buyer in the period."""
        return self.orders / self.buyers if self.buyers else None

    @property
    def returning(self) -> int:
        return self.buyers - self.new


def totals(start: date, end: date) -> Totals:
    """Orders, revenue, new customers and distinct buyers of the days [start, end]: a row per day,
    and for each day one index seek into repeat_days for its repeat buyers who had not bought since
    before `start` (see RepeatDay)."""
    returning = (select(RepeatDay.running).where(RepeatDay.day == SalesDay.day, RepeatDay.prev_day < start)
                 .order_by(RepeatDay.prev_day.desc()).limit(1).correlate(SalesDay).scalar_subquery())
    row = db.session.execute(select(
        func.coalesce(func.sum(SalesDay.orders), 0), func.coalesce(func.sum(SalesDay.revenue), 0),
        func.coalesce(func.sum(SalesDay.first_orders), 0), func.coalesce(func.sum(func.coalesce(returning, 0)), 0),
    ).where(SalesDay.day >= start, SalesDay.day <= end)).one()
    orders, revenue, new, back = (int(value) for value in row)
    return Totals(orders, revenue, new, new + back)


def _segment_sales() -> None:
    db.session.execute(delete(SegmentSalesDay))
    db.session.execute(text(f"""
        INSERT INTO segment_sales_days (day, rfm, behaviour, orders, revenue)
        SELECT o.day, c.rfm, c.behaviour, COUNT(*), SUM(o.amount)
        FROM ({_paid_days()}) AS o JOIN customers AS c ON c.id = o.customer_id
        GROUP BY o.day, c.rfm, c.behaviour"""), _params())  # noqa: S608


def local_day(column):
    """The team's calendar day of a UTC column, as an SQLAlchemy expression (see local_day_sql)."""
    if db.engine.dialect.name == "postgresql":
        return cast(func.timezone(current_app.config["TEAM_TIMEZONE"], column), Date)
    return literal_column(local_day_sql(f"{column.table.name}.{column.name}"))


def _reactivation() -> None:
    """Enrolment outcomes per day of enrolment (crm.sequences decides who came back)."""
    db.session.execute(delete(ReactivationDay))
    rows = [{"day": row.bucket if isinstance(row.bucket, date) else date.fromisoformat(row.bucket),
             "state": row.state.value, "returned": bool(row.returned), "enrolments": row.count,
             "revenue": int(row.revenue or 0)}
            for row in sequences.enrolment_outcomes(by=local_day(Enrolment.enrolled_at))]
    if rows:
        db.session.execute(insert(ReactivationDay), rows)


def _base(today: date) -> None:
    """Today's row from the customers as they stand, and estimated rows for the days before the
    first one (a new installation with imported history gets its trend at once). Statuses are
    counted among the buyers: lapsing and lapsed only mean something for them, and it is what the
    orders alone can tell about the past."""
    counts = dict(db.session.execute(select(Customer.status, func.count()).where(Customer.order_count > 0)
                                     .group_by(Customer.status)).all())
    everyone = db.session.scalar(select(func.count()).select_from(Customer))
    row = {"day": today, "customers": everyone, "buyers": sum(counts.values()), "estimated": False,
           **{status.value: counts.get(status, 0) for status in Status}}
    insert = upsert_insert(BaseDay).values(row)
    db.session.execute(insert.on_conflict_do_update(index_elements=["day"], set_={
        key: insert.excluded[key] for key in row if key != "day"}))
    _backfill(today)


def _backfill(today: date) -> None:
    """Estimate the days before the first recorded night (never a night missed later: a gap between
    real nights stays a gap, and the panels read the night before it)."""
    config = settings.load()
    first_night = db.session.scalar(select(func.min(BaseDay.day)).where(BaseDay.estimated.is_(False)))
    first_sale = db.session.scalar(select(func.min(SalesDay.day)))
    if first_sale is None or first_night is None:
        return
    known = set(db.session.scalars(select(BaseDay.day).where(BaseDay.day >= today - timedelta(days=BACKFILL_DAYS))))
    missing = [day for day in (today - timedelta(days=n) for n in range(1, BACKFILL_DAYS + 1))
               if day not in known and first_sale <= day < first_night]
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
    return int(db.session.scalar(select(func.coalesce(func.sum(SalesDay.first_orders), 0)).where(SalesDay.day <= day)))


def _kept(day: date, threshold: int) -> int:
    """Customers who bought within `threshold` days up to `day`."""
    return totals(day - timedelta(days=threshold), day).buyers


def _ltv(today: date) -> None:
    """The LTV distribution of the buyers: equal-width buckets up to about the 95th percentile, the
    width rounded to 1, 2 or 5 times a power of ten so the edges read as money."""
    buyers = db.session.scalar(select(func.count()).where(Customer.order_count > 0)) or 0
    counts, width = [0] * (LTV_BUCKETS + 1), 0
    if buyers:
        non_buyers = db.session.scalar(select(func.count()).where(Customer.order_count == 0))
        p95 = db.session.scalar(select(Customer.total_spent).order_by(Customer.total_spent)
                                .offset(non_buyers + int(buyers * 0.95)).limit(1)) or 1
        width = max(1, int(figures.nice_number(p95 / LTV_BUCKETS)))
        smaller = func.min if db.engine.dialect.name == "sqlite" else func.least  # two-argument minimum
        bucket = smaller(Customer.total_spent // width, LTV_BUCKETS)
        for index, count in db.session.execute(select(bucket.label("b"), func.count()).where(
                Customer.order_count > 0).group_by("b")).all():
            counts[int(index)] = count
    row = db.session.get(TeamSetting, KEY) or TeamSetting(key=KEY)
    row.value = {"built_at": datetime.now(UTC).isoformat(), "today": today.isoformat(), "ltv_width": width,
                 "ltv": counts}
    db.session.add(row)


def state() -> dict:
    """When the summaries were built and the LTV distribution; {} before the first build."""
    return settings.record(KEY, "built_at")

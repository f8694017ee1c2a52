"""What the dashboard reads: small tables the nightly rebuild fills from the orders and customers
(crm.summaries), so a period's figures are a sum over a few thousand rows, never a scan of ten
million orders per view."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db


class SalesDay(db.Model):
    """Paid orders placed on `day` (the team's calendar): how many, their revenue, and how many were
    the customer's first order ever."""

    __tablename__ = "sales_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[int] = mapped_column(BigInteger)  # minor units
    first_orders: Mapped[int] = mapped_column(Integer)


class RepeatDay(db.Model):
    """Repeat orders placed on `day` whose previous order (by the same customer) was on `prev_day` or
    earlier, as a running count. This is what makes distinct buyers summable: the buyers of a
    period [a, b] are its first orders ever plus, for each day of it, the repeat orders whose
    previous order is before a (one index seek per day: the row with the last prev_day before a)."""

    __tablename__ = "repeat_days"
    __table_args__ = (Index("ix_repeat_days_day_prev", "day", "prev_day", "running"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    prev_day: Mapped[date] = mapped_column(Date)
    running: Mapped[int] = mapped_column(Integer)


class SegmentSalesDay(db.Model):
    """Paid orders per day by the buyer's RFM cell and behaviour class as of the last rebuild: the
    average check per segment and class for any period."""

    __tablename__ = "segment_sales_days"
    # Covering: a period's sums read the index alone.
    __table_args__ = (Index("ix_segment_sales_days_day", "day", "rfm", "behaviour", "orders", "revenue"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    rfm: Mapped[int | None] = mapped_column(SmallInteger)
    behaviour: Mapped[str | None] = mapped_column(String(32))
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[int] = mapped_column(BigInteger)


class BaseDay(db.Model):
    """The base as the rebuild left it on `day`: the buyers (customers with a paid order) per status,
    and everyone. One row per night; rows marked `estimated` were worked out from the orders alone
    for days before the first recorded night (the business type's lapsing and lapsed thresholds, no
    sequences or inactive list; `customers` there is the buyers, as leads leave no trace)."""

    __tablename__ = "base_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer, default=0)  # everyone, leads without orders too
    buyers: Mapped[int] = mapped_column(Integer, default=0)  # with at least one paid order; the statuses add up to it
    active: Mapped[int] = mapped_column(Integer, default=0)
    lapsing: Mapped[int] = mapped_column(Integer, default=0)
    lapsed: Mapped[int] = mapped_column(Integer, default=0)
    in_sequence: Mapped[int] = mapped_column(Integer, default=0)
    responded: Mapped[int] = mapped_column(Integer, default=0)
    inactive: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(default=False)


class CohortMonth(db.Model):
    """Customers whose first paid order was in the month `cohort` (first day of it, team calendar)
    who bought again `month_offset` months later (0: the cohort's size)."""

    __tablename__ = "cohort_months"

    cohort: Mapped[date] = mapped_column(Date, primary_key=True)
    month_offset: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    customers: Mapped[int] = mapped_column(Integer, default=0)


class ReactivationDay(db.Model):
    """Enrolments made on `day` (team calendar) by how they stand: state (held out, responded, ...)
    and whether the customer came back (a paid order within the sequence's return window), with
    that revenue. The dashboard's reactivation figures for a period sum these rows."""

    __tablename__ = "reactivation_days"
    __table_args__ = (Index("ix_reactivation_days_day", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20))
    returned: Mapped[bool] = mapped_column()
    enrolments: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[int] = mapped_column(BigInteger)  # of the returned, minor units

"""The dashboard's figures, read from the summaries (crm.summaries) and a few small tables: each
function answers one panel for a period and the period before, with a handful of queries over a
few thousand summary rows whatever the size of the base."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select

from crm import periods, rfm, summaries
from crm.extensions import db
from crm.models import BaseDay, Behaviour, CohortMonth, SegmentSalesDay
from crm.periods import Period
from crm.summaries import Totals


@dataclass(frozen=True)
class Compare:
    """A figure for the period and the one before (None where there is nothing to compare with)."""

    value: float | int | None
    previous: float | int | None = None

    @property
    def change(self) -> float | None:
        """Relative change (0.25 is +25 %); None without a previous value or from zero."""
        if self.value is None or not self.previous:
            return None
        return (self.value - self.previous) / self.previous

    @property
    def points(self) -> float | None:
        """Change of a share in percentage points."""
        if self.value is None or self.previous is None:
            return None
        return (self.value - self.previous) * 100


def _ratio(part, whole) -> float | None:
    return part / whole if whole else None


# --- the base ----------------------------------------------------------------------------------

# Among the buyers (customers with a paid order): what the orders can tell, now and in the past.
BASE_FIGURES = ("buyers", "active", "lapsing", "lapsed", "in_sequence", "responded", "inactive")


@dataclass
class Base:
    as_of: date | None = None  # the night the figures are from
    previous_as_of: date | None = None
    estimated: bool = False  # the previous figures were worked out from orders (before the first rebuild)
    counts: dict[str, Compare] = field(default_factory=dict)
    shares: dict[str, Compare] = field(default_factory=dict)
    new: Compare = Compare(0)


def _snapshot(day: date) -> BaseDay | None:
    return db.session.scalars(select(BaseDay).where(BaseDay.day <= day).order_by(BaseDay.day.desc()).limit(1)).first()


def _base_counts(row: BaseDay | None) -> dict[str, int | None]:
    if row is None:
        return dict.fromkeys(BASE_FIGURES)
    return {key: getattr(row, key) for key in BASE_FIGURES}


def base(period: Period) -> Base:
    now, before = _snapshot(period.end), _snapshot(period.previous().end)
    current, previous = _base_counts(now), _base_counts(before)
    result = Base(as_of=now.day if now else None, previous_as_of=before.day if before else None,
                  estimated=bool(before and before.estimated))
    for key in BASE_FIGURES:
        result.counts[key] = Compare(current[key], previous[key])
        if key != "buyers":
            result.shares[key] = Compare(
                _ratio(current[key], current["buyers"]) if now else None,
                _ratio(previous[key], previous["buyers"]) if before else None)
    before = period.previous()
    result.new = Compare(summaries.totals(period.start, period.end).new, summaries.totals(before.start, before.end).new)
    return result


# --- sales ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupSales:
    key: str
    orders: Compare
    revenue: Compare
    average_check: Compare


@dataclass
class Sales:
    totals: Totals
    previous: Totals
    rfm_groups: list[GroupSales]
    classes: list[GroupSales]
    ltv_width: int = 0  # minor units per bucket of the LTV distribution
    ltv: list[int] = field(default_factory=list)  # buyers per bucket; the last is "and above"

    def compare(self, name: str) -> Compare:
        return Compare(getattr(self.totals, name), getattr(self.previous, name))


def _segment_sales(period: Period) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    groups: dict[str, list[int]] = {key: [0, 0] for key in rfm.GROUPS}
    classes: dict[str, list[int]] = {member.value: [0, 0] for member in Behaviour}
    rows = db.session.execute(select(SegmentSalesDay.rfm, SegmentSalesDay.behaviour, func.sum(SegmentSalesDay.orders),
                                     func.sum(SegmentSalesDay.revenue))
                              .where(SegmentSalesDay.day >= period.start, SegmentSalesDay.day <= period.end)
                              .group_by(SegmentSalesDay.rfm, SegmentSalesDay.behaviour)).all()
    for cell, behaviour, orders, revenue in rows:
        for bucket, key in ((groups, rfm.group_of(cell) if cell in rfm.CELLS else None), (classes, behaviour)):
            if key in bucket:
                bucket[key][0] += int(orders)
                bucket[key][1] += int(revenue)
    return groups, classes


def _group_rows(now: dict[str, list[int]], before: dict[str, list[int]]) -> list[GroupSales]:
    return [GroupSales(key, Compare(now[key][0], before[key][0]), Compare(now[key][1], before[key][1]),
                       Compare(_ratio(now[key][1], now[key][0]), _ratio(before[key][1], before[key][0])))
            for key in now]


def sales(period: Period) -> Sales:
    before = period.previous()
    (groups, classes), (groups_before, classes_before) = _segment_sales(period), _segment_sales(before)
    state = summaries.state()
    return Sales(summaries.totals(period.start, period.end), summaries.totals(before.start, before.end),
                 _group_rows(groups, groups_before), _group_rows(classes, classes_before),
                 state.get("ltv_width", 0), state.get("ltv", []))


# --- cohorts -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cohort:
    month: date  # first day
    size: int
    retained: list[tuple[int, float] | None]  # months 1..12: (customers, share), None for months to come
    elapsed: int  # whole months since the cohort's month: the one at this offset is still running


def cohorts(today: date, count: int = 12) -> list[Cohort]:
    months = periods.month_starts(today, count)
    found: dict[date, dict[int, int]] = {}
    query = select(CohortMonth.cohort, CohortMonth.month_offset, CohortMonth.customers).where(
        CohortMonth.cohort >= months[0])
    for cohort, offset, customers in db.session.execute(query):
        found.setdefault(cohort, {})[offset] = customers
    result = []
    for position, month in enumerate(months):
        counts = found.get(month, {})
        size = counts.get(0, 0)
        elapsed = count - 1 - position  # whole months since this cohort's month
        result.append(Cohort(month, size, [
            (counts.get(k, 0), _ratio(counts.get(k, 0), size) or 0.0) if k <= elapsed else None
            for k in range(1, summaries.COHORT_MONTHS + 1)], elapsed))
    return result


# --- trends --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Month:
    month: date  # first day
    orders: int
    revenue: int
    new: int  # buyers whose first order was this month
    returning: int  # buyers who had bought before this month
    lapsed_share: float | None  # lapsed / buyers at the month's end (or the latest night before)
    estimated: bool


def trends(today: date, count: int = 12) -> list[Month]:
    months = periods.month_starts(today, count)
    nights = list(db.session.scalars(select(BaseDay).where(BaseDay.day <= today).where(
        BaseDay.day >= months[0] - timedelta(days=31)).order_by(BaseDay.day)))
    result = []
    for first in months:
        last = min(periods.month_end(first), today)
        sold = summaries.totals(first, last)
        night = next((row for row in reversed(nights) if row.day <= last), None)
        result.append(Month(first, sold.orders, sold.revenue, sold.new, sold.returning,
                            _ratio(night.lapsed, night.buyers) if night else None,
                            bool(night and night.estimated)))
    return result

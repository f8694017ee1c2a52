"""The campaign report: per sequence and per step, what went out and what it cost, who answered and
who came back (with their revenue), who was moved to the inactive list, and the lift over the
holdout; and the reactivation totals of a period for the dashboard.

Set-based throughout: the report is a fixed handful of queries however many sequences, enrolments
and messages there are (the figures themselves come from crm.sequences, the one implementation the
sequence's own page uses too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select

from crm import clock, sequences, settings, workdays
from crm.extensions import db
from crm.figures import major_units as money
from crm.models import Customer, Enrolment, EnrolmentState, ReactivationDay, Sequence, Status
from crm.settings import CHANNELS, Messaging


def _per_returned(cost: int | None, returned: int) -> int | None:
    """Cost per returned customer in minor units, rounded half up; None when either is missing."""
    if cost is None or not returned:
        return None
    return int((Decimal(cost) / returned).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _cost(attempted: dict[str, int], costs: dict[str, int]) -> int | None:
    """What these messages cost by the channel each went out on; None when no cost is entered at all."""
    if not any(costs.values()):
        return None
    return sum(count * costs.get(channel, 0) for channel, count in attempted.items())


@dataclass(kw_only=True)
class Outcomes:
    """What went out and what came of it, for a sequence or one of its steps."""

    sent: int = 0  # attempted: delivered + failed + uncertain
    delivered: int = 0
    failed: int = 0
    uncertain: int = 0
    clicked: int = 0
    skipped: int = 0
    # For a step: credited to the last step delivered before the enrolment ended.
    responded: int = 0
    returned: int = 0
    revenue: int = 0
    moved_to_inactive: int = 0  # for a step: the last one (the whole sequence went unanswered)
    cost: int | None = None

    @property
    def cost_per_returned(self) -> int | None:
        return _per_returned(self.cost, self.returned)


@dataclass(kw_only=True)
class StepRow(Outcomes):
    position: int  # 0: before any message (answered or came back before one reached them)
    channel: str = ""  # as the step is set up: preferred, email, sms...


@dataclass(kw_only=True)
class SequenceRow(Outcomes):
    id: int
    name: str
    paused: bool
    return_days: int
    enrolled: int = 0  # messaged (not held out)
    held_out: int = 0
    held_returned: int = 0
    lift_pp: float | None = None  # percentage points over the holdout; None without one
    steps: list[StepRow] = field(default_factory=list)
    before_first: StepRow | None = None  # present when someone answered before any message reached them

    @property
    def return_rate(self) -> float | None:
        return self.returned / self.enrolled if self.enrolled else None


@dataclass
class Report:
    sequences: list[SequenceRow]
    costs_entered: bool  # some channel has a cost
    uncosted: list[str]  # channels that carried messages without a cost entered


def _step_row(step: sequences.StepFigures, channel: str, costs: dict[str, int]) -> StepRow:
    return StepRow(position=step.position, channel=channel, sent=sum(step.attempted_by_channel.values()),
                   delivered=step.sent, failed=step.failed, uncertain=step.uncertain, clicked=step.clicked,
                   skipped=sum(step.skipped.values()), responded=step.responded, returned=step.returned,
                   revenue=step.returned_revenue, cost=_cost(step.attempted_by_channel, costs))


def _sequence_row(sequence: Sequence, figures: sequences.Figures, costs: dict[str, int]) -> SequenceRow:
    channels = {step.position: step.channel.value for step in sequence.steps}
    steps = [_step_row(step, channels.get(step.position, ""), costs) for step in figures.steps]
    if steps and figures.inactive:
        steps[-1].moved_to_inactive = figures.inactive
    first = figures.before_first
    row = SequenceRow(
        id=sequence.id, name=sequence.name, paused=sequence.paused, return_days=sequence.return_days,
        enrolled=figures.enrolled, held_out=figures.held_out, responded=figures.responded, returned=figures.returned,
        revenue=figures.returned_revenue, moved_to_inactive=figures.inactive, held_returned=figures.held_returned,
        lift_pp=figures.lift, steps=steps,
        before_first=_step_row(first, "", costs) if first.responded or first.returned else None)
    for name in ("sent", "delivered", "failed", "uncertain", "clicked", "skipped"):
        setattr(row, name, sum(getattr(step, name) for step in steps))
    row.cost = sum(step.cost or 0 for step in steps) if costs else None
    return row


def report(messaging: Messaging | None = None) -> Report:
    """The campaign report of every sequence (in the list's order), each with its step rows."""
    messaging = messaging or settings.load(Messaging)
    costs = {channel: cost for channel, cost in messaging.costs.items() if cost}
    chosen = sequences.listing()
    figures = sequences.figures_of(chosen)
    used = {channel for result in figures.values() for step in result.steps
            for channel, count in step.attempted_by_channel.items() if count}
    return Report(sequences=[_sequence_row(sequence, figures[sequence.id], costs) for sequence in chosen],
                  costs_entered=bool(costs), uncosted=[c for c in CHANNELS if c in used and c not in costs])


# --- CSV ---------------------------------------------------------------------------------------------

CSV_COLUMNS = ("level", "sequence_id", "sequence", "step", "channel", "enrolled", "held_out", "sent", "delivered",
               "failed", "uncertain", "clicked", "skipped", "responded", "returned", "returned_revenue",
               "moved_to_inactive", "lift_pp", "cost", "cost_per_returned")


def csv_rows(data: Report, currency: str):
    """A row per sequence, then one per step beneath it (and one for who answered before any message)."""
    for row in data.sequences:
        yield ["sequence", row.id, row.name, "", "", row.enrolled, row.held_out, row.sent, row.delivered, row.failed,
               row.uncertain, row.clicked, row.skipped, row.responded, row.returned, money(row.revenue, currency),
               row.moved_to_inactive, "" if row.lift_pp is None else round(row.lift_pp, 1),
               money(row.cost, currency), money(row.cost_per_returned, currency)]
        extra = [row.before_first] if row.before_first else []
        for step in [*row.steps, *extra]:
            yield ["step" if step.position else "before_first_message", row.id, row.name, step.position or "",
                   step.channel, "", "", step.sent, step.delivered, step.failed, step.uncertain, step.clicked,
                   step.skipped, step.responded, step.returned, money(step.revenue, currency),
                   step.moved_to_inactive, "", money(step.cost, currency), money(step.cost_per_returned, currency)]


# --- period totals for the dashboard -------------------------------------------------------------------

@dataclass(frozen=True)
class PeriodTotals:
    enrolled: int = 0  # messaged (not held out), enrolled within the period
    held_out: int = 0
    responded: int = 0
    returned: int = 0  # a paid order within their sequence's return_days of enrolment
    returned_revenue: int = 0  # minor units
    held_returned: int = 0
    moved_to_inactive: int = 0  # customers put on the inactive list within the period (still there)

    @property
    def lift_pp(self) -> float | None:
        """Percentage points: the returned share of the messaged minus that of the held out."""
        if not self.enrolled or not self.held_out:
            return None
        return (self.returned / self.enrolled - self.held_returned / self.held_out) * 100


def period_totals(start: datetime, end: datetime) -> PeriodTotals:
    """Reactivation across every sequence for the enrolments made within [start, end) (aware
    instants), and who was moved to the inactive list within it: two queries, read through the
    enrolled_at and (status, inactive_since) indexes. Exact to the moment; the dashboard reads the
    nightly summary instead (`summarised_totals`), as a month of enrolments is many lookups."""
    start, end = clock.as_utc(start), clock.as_utc(end)
    rows = sequences.enrolment_outcomes(Enrolment.enrolled_at >= start, Enrolment.enrolled_at < end)
    return _tally([(row.state, row.returned, row.count, row.revenue) for row in rows], _moved(start, end))


def summarised_totals(first: date, last: date) -> PeriodTotals:
    """The same for the enrolments of the team's days [first, last], from the summary the nightly
    rebuild keeps (crm.summaries); moves to the inactive list on those days are counted live."""
    start, end = workdays.day_bounds(first)[0], workdays.day_bounds(last)[1]
    rows = db.session.execute(select(ReactivationDay.state, ReactivationDay.returned,
                                     func.sum(ReactivationDay.enrolments), func.sum(ReactivationDay.revenue))
                              .where(ReactivationDay.day >= first, ReactivationDay.day <= last)
                              .group_by(ReactivationDay.state, ReactivationDay.returned)).all()
    return _tally([(EnrolmentState(state), returned, count, revenue) for state, returned, count, revenue in rows],
                  _moved(start, end))


def _tally(rows, moved: int) -> PeriodTotals:
    """Rows of (state, returned, count, revenue) into the period's totals."""
    totals = dict.fromkeys(("enrolled", "held_out", "responded", "returned", "returned_revenue", "held_returned"), 0)
    for state, returned, count, revenue in rows:
        holdout = state is EnrolmentState.HOLDOUT
        totals["held_out" if holdout else "enrolled"] += count
        totals["responded"] += count if state is EnrolmentState.RESPONDED else 0
        if returned and holdout:
            totals["held_returned"] += count
        elif returned:
            totals["returned"] += count
            totals["returned_revenue"] += int(revenue or 0)
    return PeriodTotals(**totals, moved_to_inactive=moved)


def _moved(start: datetime, end: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(Customer).where(
        Customer.status == Status.INACTIVE, Customer.inactive_since >= start, Customer.inactive_since < end)) or 0

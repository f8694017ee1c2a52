"""Sequence definitions: the 3-, 5- and 7-step templates a new sequence starts from, editing and
checking them, and the figures per sequence (enrolled, held out, per step, responded, returned,
revenue, inactive, and the lift over the holdout group)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Interval, and_, case, func, null, or_, select

from crm import message_templates
from crm.errors import FieldError
from crm.extensions import db
from crm.models import (
    Enrolment,
    EnrolmentState,
    Kind,
    Message,
    MessageState,
    Order,
    OrderStatus,
    Sequence,
    SequenceStep,
    StepChannel,
    User,
)
from crm.models.sequence import LENGTHS

MAX_DELAY_DAYS = 365
# Days between steps in the templates: a gentle start, wider gaps later.
TEMPLATE_DELAYS = {3: [0, 3, 7], 5: [0, 3, 5, 7, 10], 7: [0, 2, 3, 5, 7, 10, 14]}
SKIP_REASONS = {
    "channel_not_set_up": _l("channel not set up"),
    "no_consent": _l("no consent"),
    "no_contact": _l("no contact"),
    "frequency_cap": _l("weekly cap reached"),
    "do_not_contact": _l("do-not-contact"),
    "inactive": _l("inactive"),
    "responded": _l("answered"),
    "click": _l("answered"),
    "reply": _l("answered"),
    "order": _l("answered"),
    "call": _l("answered"),
    "template": _l("template error"),
    "no_response": _l("no response"),
    "worker_died": _l("worker stopped mid-send"),
    "unanswered": _l("connection lost before the provider answered"),
    "stopped": _l("stopped by hand"),
    "manager": _l("a manager's decision"),
    "holdout": _l("held out"),
    "retrying": _l("to be retried"),
    "refused": _l("refused by every channel"),
    "gave_up": _l("failed after every retry"),
    "confirmed": _l("confirmed sent by hand"),
    "resend": _l("sent again by hand"),
    "bounces": _l("unreachable on every channel"),
    "unsubscribed": _l("unsubscribed from every channel"),
}


def _template_texts(position: int, length: int) -> tuple[str, str]:
    if position == 1:
        return (_("We miss you, {{ first_name }}"),
                _("Hello {{ first_name }}! It has been {{ days_since }} days since your last order. "
                  "Come back for {{ products }}: {{ link }}"))
    if position == length:
        return (_("Last chance, {{ first_name }}"),
                _("This is our last message, {{ first_name }}. Your code {{ discount_code }} still works: {{ link }}"))
    return (_("A gift for you, {{ first_name }}"),
            _("{{ first_name }}, here is {{ discount_code }} for your next order: {{ link }}. "
              "Questions? {{ manager }} will help."))


def set_paused(sequence: Sequence, paused: bool) -> None:
    """Pause (nothing goes out; due steps wait, then resume where they were) or resume a sequence."""
    sequence.paused = paused


def create(length: int, name: str, acting: User) -> Sequence:
    """A new sequence from the template of that length (the caller commits)."""
    if length not in LENGTHS:
        raise FieldError("length", str(_l("Choose 3, 5 or 7 steps.")))
    sequence = Sequence(name=clean_name(name), created_by_id=acting.id, weekdays=[1, 2, 3, 4, 5, 6, 7])
    for position, delay in enumerate(TEMPLATE_DELAYS[length], 1):
        subject, body = _template_texts(position, length)
        sequence.steps.append(SequenceStep(position=position, delay_days=delay, delay_hours=0,
                                           channel=StepChannel.PREFERRED, subject=subject, body=body))
    db.session.add(sequence)
    db.session.flush()
    return sequence


def clean_name(raw: str | None) -> str:
    name = " ".join((raw or "").split())
    if not name:
        raise FieldError("name", str(_l("Give the sequence a name.")))
    if len(name) > 120:
        raise FieldError("name", str(_l("Keep the name under 120 characters.")))
    return name


def _number(raw, field_name: str, low: int, high: int) -> int:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise FieldError(field_name, str(_l("Enter a whole number."))) from None
    if not low <= value <= high:
        raise FieldError(field_name, str(_l("Enter a number from %(low)s to %(high)s.", low=low, high=high)))
    return value


@dataclass
class StepInput:
    delay_days: str = "0"
    delay_hours: str = "0"
    channel: str = "preferred"
    subject: str = ""
    body: str = ""


@dataclass
class SequenceInput:
    name: str = ""
    window_start: str = "9"
    window_end: str = "20"
    weekdays: list[str] = field(default_factory=list)
    grace_days: str = "7"
    holdout_percent: str = "0"
    return_days: str = "30"
    link_url: str = ""
    discount_code: str = ""
    steps: list[StepInput] = field(default_factory=list)


def update(sequence: Sequence, data: SequenceInput) -> Sequence:
    """Apply the editor's form to a sequence, or raise FieldError naming the field (steps as
    `step-<n>-<field>`); the number of steps stays as created."""
    values = {
        "name": clean_name(data.name),
        "window_start": _number(data.window_start, "window_start", 0, 23),
        "window_end": _number(data.window_end, "window_end", 1, 24),
        "grace_days": _number(data.grace_days, "grace_days", 0, 90),
        "holdout_percent": _number(data.holdout_percent, "holdout_percent", 0, 50),
        "return_days": _number(data.return_days, "return_days", 1, 365),
    }
    if values["window_end"] <= values["window_start"]:
        raise FieldError("window_end", str(_l("The window must end after it starts.")))
    weekdays = sorted({_number(day, "weekdays", 1, 7) for day in data.weekdays})
    if not weekdays:
        raise FieldError("weekdays", str(_l("Pick at least one day.")))
    link = (data.link_url or "").strip()
    if link and (not link.startswith(("https://", "http://")) or len(link) > 500 or any(c.isspace() for c in link)):
        raise FieldError("link_url", str(_l("Enter a web address starting with https://.")))
    code = (data.discount_code or "").strip()
    if len(code) > 60:
        raise FieldError("discount_code", str(_l("Keep the code under 60 characters.")))
    if len(data.steps) != sequence.length:
        raise FieldError("steps", str(_l("A sequence keeps the number of steps it was made with.")))
    steps = []
    for position, step in enumerate(data.steps, 1):
        prefix = f"step-{position}-"
        try:
            channel = StepChannel(step.channel)
        except ValueError:
            raise FieldError(prefix + "channel", str(_l("Choose one of the offered channels."))) from None
        subject = (step.subject or "").strip()
        if len(subject) > 200:
            raise FieldError(prefix + "subject", str(_l("Keep the subject under 200 characters.")))
        try:
            message_templates.check(subject, step.body or "")
        except FieldError as error:
            raise FieldError(prefix + error.field, error.message) from None
        steps.append({"delay_days": _number(step.delay_days, prefix + "delay_days", 0, MAX_DELAY_DAYS),
                      "delay_hours": _number(step.delay_hours, prefix + "delay_hours", 0, 23),
                      "channel": channel, "subject": subject, "body": step.body.strip()})
    for name, value in values.items():
        setattr(sequence, name, value)
    sequence.weekdays, sequence.link_url, sequence.discount_code = weekdays, link or None, code or None
    for step, changes in zip(sequence.steps, steps, strict=True):
        for name, value in changes.items():
            setattr(step, name, value)
    return sequence


def listing() -> list[Sequence]:
    return db.session.scalars(select(Sequence).order_by(Sequence.paused, Sequence.name, Sequence.id)).all()


def running_counts() -> dict[int, int]:
    return dict(db.session.execute(select(Enrolment.sequence_id, func.count()).where(
        Enrolment.state == EnrolmentState.ACTIVE).group_by(Enrolment.sequence_id)).all())


# --- uncertain messages ------------------------------------------------------------------------

REVIEW_LIMIT = 50


def uncertain(sequence: Sequence) -> list[Message]:
    """Messages that may or may not have gone out (their worker died mid-send), oldest first."""
    return db.session.scalars(select(Message).where(Message.sequence_id == sequence.id,
                                                    Message.state == MessageState.UNCERTAIN)
                              .order_by(Message.id).limit(REVIEW_LIMIT)).all()


def review(message: Message, decision: str, acting: User) -> None:
    """A person settles an uncertain message: "sent" (the customer got it, e.g. the provider's log
    says so) counts it as sent; "resend" queues it again for the next dispatch pass."""
    from crm import customers

    if message.state is not MessageState.UNCERTAIN:
        raise FieldError("decision", str(_l("This message was settled already.")))
    if decision == "sent":
        message.state, message.reason = MessageState.SENT, "confirmed"
        message.sent_at = message.sending_at
        message.enrolment.sent += 1
    elif decision == "resend":
        message.state, message.reason = MessageState.QUEUED, "resend"
        message.enqueued_at = message.not_before = None
    else:
        raise FieldError("decision", str(_l("Choose one of the offered values.")))
    customers.record(message.customer, Kind.MESSAGE_OUT, acting, body=message.subject, outcome=f"review_{decision}",
                     channel=message.channel, sequence_id=message.sequence_id, step=message.step,
                     message_id=message.id)


# --- figures -------------------------------------------------------------------------------------

@dataclass
class StepFigures:
    position: int
    sent: int = 0
    failed: int = 0
    queued: int = 0
    uncertain: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    clicked: int = 0
    # Messages that went out or were tried (sent, failed, uncertain) by the channel used: what they cost.
    attempted_by_channel: dict[str, int] = field(default_factory=dict)
    # Enrolments whose last message delivered before they ended was this step's.
    responded: int = 0
    returned: int = 0
    returned_revenue: int = 0


@dataclass
class Figures:
    enrolled: int = 0  # messaged group (not the holdout)
    held_out: int = 0
    running: int = 0
    responded: int = 0
    inactive: int = 0
    stopped: int = 0
    returned: int = 0
    returned_revenue: int = 0
    held_returned: int = 0
    steps: list[StepFigures] = field(default_factory=list)
    # Who answered or came back before any message had reached them (position 0).
    before_first: StepFigures = field(default_factory=lambda: StepFigures(0))

    @property
    def return_rate(self) -> float | None:
        return self.returned / self.enrolled if self.enrolled else None

    @property
    def held_return_rate(self) -> float | None:
        return self.held_returned / self.held_out if self.held_out else None

    @property
    def lift(self) -> float | None:
        """Percentage points the messages added to the share who came back, against the holdout."""
        if self.return_rate is None or self.held_return_rate is None:
            return None
        return (self.return_rate - self.held_return_rate) * 100


ATTEMPTED = (MessageState.SENT, MessageState.FAILED, MessageState.UNCERTAIN)


def figures(sequence: Sequence) -> Figures:
    """The figures of one sequence (its page); see `figures_of`."""
    return figures_of([sequence])[sequence.id]


def figures_of(chosen: list[Sequence]) -> dict[int, Figures]:
    """The figures of these sequences by id, in two queries however many sequences, enrolments or
    messages there are."""
    results = {sequence.id: Figures(steps=[StepFigures(position) for position in range(1, sequence.length + 1)])
               for sequence in chosen}
    if not results:
        return results
    steps = {ident: {step.position: step for step in result.steps} for ident, result in results.items()}
    for row in enrolment_outcomes(Enrolment.sequence_id.in_(list(results)), by_step=True):
        result, count, revenue = results[row.sequence_id], row.count, int(row.revenue or 0)
        holdout = row.state is EnrolmentState.HOLDOUT
        if holdout:
            result.held_out += count
        else:
            result.enrolled += count
            name = {EnrolmentState.ACTIVE: "running", EnrolmentState.RESPONDED: "responded",
                    EnrolmentState.INACTIVE: "inactive", EnrolmentState.STOPPED: "stopped"}[row.state]
            setattr(result, name, getattr(result, name) + count)
        if row.returned and holdout:
            result.held_returned += count
        elif row.returned:
            result.returned += count
            result.returned_revenue += revenue
        if holdout or not (row.returned or row.state is EnrolmentState.RESPONDED):
            continue
        step = (result.before_first if not row.step else
                steps[row.sequence_id].setdefault(row.step, StepFigures(row.step)))
        step.responded += count if row.state is EnrolmentState.RESPONDED else 0
        if row.returned:
            step.returned += count
            step.returned_revenue += revenue
    per_step = db.session.execute(
        select(Message.sequence_id, Message.step, Message.state, Message.reason, Message.channel, func.count(),
               func.sum(case((Message.clicked_at.is_not(None), 1), else_=0)))
        .where(Message.sequence_id.in_(list(results)))
        .group_by(Message.sequence_id, Message.step, Message.state, Message.reason, Message.channel)).all()
    for sequence_id, position, state, reason, channel, count, clicked in per_step:
        step = steps[sequence_id].setdefault(position, StepFigures(position))
        step.clicked += int(clicked or 0)
        if state is MessageState.SKIPPED:
            step.skipped[reason or "other"] = step.skipped.get(reason or "other", 0) + count
        elif state is MessageState.SENDING:
            step.queued += count
        else:
            setattr(step, state.value, getattr(step, state.value) + count)
        if state in ATTEMPTED:
            key = channel or "other"
            step.attempted_by_channel[key] = step.attempted_by_channel.get(key, 0) + count
    for ident, result in results.items():
        result.steps = [steps[ident][k] for k in sorted(steps[ident])]
    return results


def enrolment_outcomes(*conditions, by_step: bool = False, by=None) -> list:
    """Enrolments (those meeting the conditions) counted by sequence, state, whether they came back
    (a paid order within the sequence's return_days of enrolment) and, with `by_step`, the step to
    credit: the last one whose message was delivered before the enrolment ended, for those who
    answered or came back (None when no message had reached them). Rows of (sequence_id, state,
    returned, step, count, revenue), in one query however many enrolments; with `by` (a column
    expression over the enrolment, e.g. its day) a `bucket` column too, grouped by."""
    revenue = select(func.sum(Order.amount)).where(
        Order.customer_id == Enrolment.customer_id, Order.status == OrderStatus.PAID,
        Order.placed_at >= Enrolment.enrolled_at, _before_return_deadline()).scalar_subquery()
    # Materialized: a subquery flattened into the grouping would run each correlated lookup once per
    # place it is named (returned, revenue, the grouping), not once per enrolment.
    bucket = (by if by is not None else null()).label("bucket")
    each = (select(Enrolment.id, Enrolment.sequence_id, Enrolment.state, Enrolment.ended_at, revenue.label("revenue"),
                   bucket)
            .join(Sequence, Sequence.id == Enrolment.sequence_id).where(*conditions)
            .cte("each_enrolment").prefix_with("MATERIALIZED"))
    returned = each.c.revenue.is_not(None)
    if by_step:
        # Not Enrolment.sent: it counts messages, not positions (a skipped step leaves a gap), and a
        # message on the wire when the customer answered is counted after the enrolment ended.
        last = select(func.max(Message.step)).where(
            Message.enrolment_id == each.c.id, Message.state == MessageState.SENT,
            or_(each.c.ended_at.is_(None), func.coalesce(Message.sent_at, Message.queued_at) <= each.c.ended_at)
        ).scalar_subquery()
        step = case((and_(each.c.state != EnrolmentState.HOLDOUT,
                          or_(each.c.state == EnrolmentState.RESPONDED, returned)), last))
    else:
        step = null()
    tagged = (select(each.c.sequence_id, each.c.state, returned.label("returned"), step.label("step"),
                     each.c.revenue, each.c.bucket).cte("tagged_enrolment").prefix_with("MATERIALIZED"))
    return db.session.execute(
        select(tagged.c.sequence_id, tagged.c.state, tagged.c.returned, tagged.c.step, tagged.c.bucket,
               func.count().label("count"), func.sum(tagged.c.revenue).label("revenue"))
        .group_by(tagged.c.sequence_id, tagged.c.state, tagged.c.returned, tagged.c.step, tagged.c.bucket)).all()


def _before_return_deadline():
    """Orders placed within the sequence's return_days after enrolment (date arithmetic differs per database)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return Order.placed_at < Enrolment.enrolled_at + func.make_interval(0, 0, 0, Sequence.return_days,
                                                                             type_=Interval)
    return func.julianday(Order.placed_at) < func.julianday(Enrolment.enrolled_at) + Sequence.return_days

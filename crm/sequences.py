"""Sequence definitions: the 3-, 5- and 7-step templates a new sequence starts from, editing and
checking them, and the figures per sequence (enrolled, held out, per step, responded, returned,
revenue, inactive, and the lift over the holdout group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select

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


def figures(sequence: Sequence) -> Figures:
    result = Figures()
    states = dict(db.session.execute(select(Enrolment.state, func.count()).where(
        Enrolment.sequence_id == sequence.id).group_by(Enrolment.state)).all())
    result.held_out = states.get(EnrolmentState.HOLDOUT, 0)
    result.running = states.get(EnrolmentState.ACTIVE, 0)
    result.responded = states.get(EnrolmentState.RESPONDED, 0)
    result.inactive = states.get(EnrolmentState.INACTIVE, 0)
    result.stopped = states.get(EnrolmentState.STOPPED, 0)
    result.enrolled = sum(states.values()) - result.held_out
    # Returned: a paid order within return_days of enrolment (first one counts the revenue of all in the window).
    window = timedelta(days=sequence.return_days)
    orders = (select(Enrolment.state, Enrolment.customer_id, func.sum(Order.amount).label("revenue"))
              .join(Order, and_(Order.customer_id == Enrolment.customer_id, Order.status == OrderStatus.PAID,
                                Order.placed_at >= Enrolment.enrolled_at))
              .where(Enrolment.sequence_id == sequence.id)
              .group_by(Enrolment.id, Enrolment.state, Enrolment.customer_id, Enrolment.enrolled_at))
    for state, _customer, revenue in db.session.execute(_within(orders, window)).all():
        if state is EnrolmentState.HOLDOUT:
            result.held_returned += 1
        else:
            result.returned += 1
            result.returned_revenue += int(revenue or 0)
    per_step = db.session.execute(select(Message.step, Message.state, Message.reason, func.count(),
                                         func.sum(case((Message.clicked_at.is_not(None), 1), else_=0)))
                                  .where(Message.sequence_id == sequence.id)
                                  .group_by(Message.step, Message.state, Message.reason)).all()
    steps = {position: StepFigures(position) for position in range(1, sequence.length + 1)}
    for position, state, reason, count, clicked in per_step:
        step = steps.setdefault(position, StepFigures(position))
        step.clicked += int(clicked or 0)
        if state is MessageState.SKIPPED:
            step.skipped[reason or "other"] = step.skipped.get(reason or "other", 0) + count
        elif state is MessageState.SENDING:
            step.queued += count
        else:
            setattr(step, state.value, getattr(step, state.value) + count)
    result.steps = [steps[k] for k in sorted(steps)]
    return result


def _within(query, window: timedelta):
    """Keep orders placed within the window after enrolment (date arithmetic differs per database)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return query.where(Order.placed_at < Enrolment.enrolled_at + window)
    seconds = int(window.total_seconds())
    return query.where(func.julianday(Order.placed_at) < func.julianday(Enrolment.enrolled_at) + seconds / 86400)

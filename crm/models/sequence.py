"""Reactivation sequences: the sequence and its steps, who is enrolled, every message, and the
rules that enrol customers automatically.

The database is the source of truth for what is due: an active enrolment knows its next step and
when (`next_step`, `next_at`); a message row exists once per (enrolment, step) and walks
queued -> sending -> sent / failed / skipped / uncertain (see crm.dispatch and crm.delivery).
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.customer import Customer, _enum
from crm.models.user import User, utcnow

LENGTHS = (3, 5, 7)


class StepChannel(enum.StrEnum):
    PREFERRED = "preferred"  # the customer's preferred channel, then the team's fallback order
    EMAIL = "email"
    SMS = "sms"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"


class EnrolmentState(enum.StrEnum):
    ACTIVE = "active"  # steps to go, or the grace period after the last one running
    HOLDOUT = "holdout"  # the control group: enrolled on paper, never messaged
    RESPONDED = "responded"
    INACTIVE = "inactive"  # went through every step and the grace period without a response
    STOPPED = "stopped"  # ended otherwise: do-not-contact, moved to inactive by hand, erased, stopped


class MessageState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    # The worker died between handing the message to the provider and recording the result:
    # it may have gone out, so it is never sent again by itself; a person decides (crm.sequences.review).
    UNCERTAIN = "uncertain"


class Trigger(enum.StrEnum):
    LAPSING = "lapsing"  # became lapsing
    LAPSED = "lapsed"  # became lapsed
    BIRTHDAY = "birthday"  # N days before the birthday
    AFTER_ORDER = "after_order"  # N days after the last order
    BEFORE_EXPECTED = "before_expected"  # N days before the expected next order


class Sequence(db.Model):
    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # Send window in the customer's local time: from this hour up to (not including) that one,
    # on these ISO weekdays (1 = Monday).
    window_start: Mapped[int] = mapped_column(SmallInteger, default=9, server_default="9")
    window_end: Mapped[int] = mapped_column(SmallInteger, default=20, server_default="20")
    weekdays: Mapped[list[int]] = mapped_column(db.JSON, default=lambda: [1, 2, 3, 4, 5, 6, 7])
    grace_days: Mapped[int] = mapped_column(SmallInteger, default=7, server_default="7")
    holdout_percent: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # A paid order within this many days of enrolment counts as "returned" in the stats.
    return_days: Mapped[int] = mapped_column(SmallInteger, default=30, server_default="30")
    link_url: Mapped[str | None] = mapped_column(String(500))  # where the tracked link leads
    discount_code: Mapped[str | None] = mapped_column(String(60))
    paused: Mapped[bool] = mapped_column(default=False, server_default="0")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    steps: Mapped[list[SequenceStep]] = relationship(back_populates="sequence", cascade="all, delete-orphan",
                                                     order_by="SequenceStep.position", lazy="selectin")
    created_by: Mapped[User | None] = relationship()

    @property
    def length(self) -> int:
        return len(self.steps)

    def step(self, position: int) -> SequenceStep | None:
        return self.steps[position - 1] if 1 <= position <= len(self.steps) else None


class SequenceStep(db.Model):
    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "position", name="uq_sequence_steps_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)  # 1-based
    # Wait after the previous step (after enrolment for the first one).
    delay_days: Mapped[int] = mapped_column(Integer, default=0)
    delay_hours: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[StepChannel] = mapped_column(_enum(StepChannel), default=StepChannel.PREFERRED)
    subject: Mapped[str] = mapped_column(String(200), default="")
    body: Mapped[str] = mapped_column(Text, default="")

    sequence: Mapped[Sequence] = relationship(back_populates="steps")


class Enrolment(db.Model):
    __tablename__ = "enrolments"
    __table_args__ = (
        # What is due: the dispatcher reads one range of this.
        Index("ix_enrolments_state_next_at", "state", "next_at"),
        Index("ix_enrolments_customer_state", "customer_id", "state"),
        Index("ix_enrolments_sequence_state", "sequence_id", "state"),
        # The enrolments of a period, to the moment (crm.campaigns.period_totals; the dashboard reads
        # the nightly summary built from all of them instead).
        Index("ix_enrolments_enrolled_at", "enrolled_at"),
        # One running sequence per customer: two enrolments at once are refused by the database.
        Index("uq_enrolments_customer_active", "customer_id", unique=True,
              sqlite_where=text("state = 'active'"), postgresql_where=text("state = 'active'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    state: Mapped[EnrolmentState] = mapped_column(_enum(EnrolmentState), default=EnrolmentState.ACTIVE)
    source: Mapped[str] = mapped_column(String(40), default="manual")  # card, bulk, segment, lapsed, rule:<id>
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    enrolled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The next step to dispatch (1-based); length + 1 means the grace period after the last one.
    next_step: Mapped[int] = mapped_column(SmallInteger, default=1)
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")  # messages sent so far
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(40))

    sequence: Mapped[Sequence] = relationship()
    customer: Mapped[Customer] = relationship()


class Message(db.Model):
    __tablename__ = "messages"
    __table_args__ = (
        # Exactly one message per step of an enrolment: a second dispatch cannot make another.
        UniqueConstraint("enrolment_id", "step", name="uq_messages_enrolment_step"),
        # Queued messages to enqueue again and stuck ones to recover.
        Index("ix_messages_state_enqueued_at", "state", "enqueued_at"),
        # The frequency cap counts a customer's recent messages.
        Index("ix_messages_customer_queued_at", "customer_id", "queued_at"),
        Index("ix_messages_sequence_step_state", "sequence_id", "step", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id", ondelete="CASCADE"))
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(SmallInteger)
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), default=MessageState.QUEUED)
    reason: Mapped[str | None] = mapped_column(String(40))  # why skipped or failed
    channel: Mapped[str | None] = mapped_column(String(16))  # the channel it went (or would go) out on
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)  # on the dispatch's clock
    # When a send job for it was last put on the queue (wall clock): a message still queued long
    # after that lost its job (Redis flushed, worker killed) and is enqueued again.
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Not to be tried before this (the backoff after a transient failure).
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sending_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    clicked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Apprise's outcome per URL, secrets masked: [{"url": ..., "ok": bool, "error": ...}, ...]
    result: Mapped[list] = mapped_column(db.JSON, default=list)

    enrolment: Mapped[Enrolment] = relationship()
    customer: Mapped[Customer] = relationship()


class EnrolmentRule(db.Model):
    """Enrol customers automatically when something happens to them (see crm.enrolment.apply_rules)."""

    __tablename__ = "enrolment_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    trigger: Mapped[Trigger] = mapped_column(_enum(Trigger))
    days: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # Only customers in these RFM groups (crm.rfm.GROUPS keys); empty means everyone.
    groups: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True, server_default="1")
    last_run_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    sequence: Mapped[Sequence] = relationship()

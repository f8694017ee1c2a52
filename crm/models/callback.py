"""Call-backs: a customer a manager should phone, when, and why; closed by the call's outcome."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.customer import Customer, _enum
from crm.models.user import User, utcnow


class CallReason(enum.StrEnum):
    LAPSING = "lapsing"
    LAPSED = "lapsed"
    SEQUENCE = "sequence"  # a reactivation sequence handed the customer over
    PROMISED = "promised"  # "call me back later"
    BIRTHDAY = "birthday"
    VIP = "vip"  # a big spender about to lapse
    MANUAL = "manual"


class CallBack(db.Model):
    __tablename__ = "callbacks"
    __table_args__ = (
        # A manager's open call-backs by due time: the morning queue is one range of this index.
        Index("ix_callbacks_manager_open_due", "manager_id", "done_at", "due_at"),
        Index("ix_callbacks_customer_open", "customer_id", "done_at"),
        # One open call-back per customer: two managers are never both sent to call the same person,
        # and two simultaneous "add to call-backs" cannot both succeed.
        Index("uq_callbacks_customer_open", "customer_id", unique=True,
              sqlite_where=text("done_at IS NULL"), postgresql_where=text("done_at IS NULL")),
        # Calls made per day (history, progress) read a range of this.
        Index("ix_callbacks_done_at", "done_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[CallReason] = mapped_column(_enum(CallReason))
    note: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # What logging the outcome changed, so a mistaken click can be taken back (crm.callbacks.undo).
    undo: Mapped[dict | None] = mapped_column(db.JSON)

    customer: Mapped[Customer] = relationship()
    manager: Mapped[User | None] = relationship(foreign_keys=[manager_id])
    handled_by: Mapped[User | None] = relationship(foreign_keys=[handled_by_id])

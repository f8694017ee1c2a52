"""The customer's timeline: every call, note, message, change, import and merge, by whom and when."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.customer import _enum
from crm.models.user import User, utcnow


class Kind(enum.StrEnum):
    NOTE = "note"
    CALL = "call"
    MESSAGE_OUT = "message_out"
    MESSAGE_IN = "message_in"
    ORDER = "order"
    EDIT = "edit"
    STAGE = "stage"
    STATUS = "status"
    CONSENT = "consent"
    IMPORT = "import"
    MERGE = "merge"
    CREATED = "created"
    CALLBACK = "callback"  # put in (or taken out of) a manager's call-back queue
    SEQUENCE = "sequence"  # enrolled in, held out of, answered, finished or stopped a sequence
    ERASED = "erased"  # personal data removed on request


class Interaction(db.Model):
    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_customer_id_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[Kind] = mapped_column(_enum(Kind))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    outcome: Mapped[str | None] = mapped_column(String(40))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(db.JSON, default=dict)

    user: Mapped[User | None] = relationship(lazy="joined")

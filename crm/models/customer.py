"""The customer aggregate: the customer, their contacts, consents and search terms, and funnel stages."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.extensions import db
from crm.models.user import User, utcnow


def _enum(cls):
    # Stored as plain strings (no native enum type), so adding a member needs no ALTER TYPE.
    return db.Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


# Prefix search compares bytes: "C" on PostgreSQL keeps `term >= 'ab' AND term < 'ab\uffff'` an
# index range whatever the database's locale; SQLite compares bytes already.
SearchText = String(200).with_variant(String(200, collation="C"), "postgresql")


class Status(enum.StrEnum):
    ACTIVE = "active"
    LAPSING = "lapsing"
    LAPSED = "lapsed"
    IN_SEQUENCE = "in_sequence"
    RESPONDED = "responded"
    INACTIVE = "inactive"


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    PHONE = "phone"


class ContactKind(enum.StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"


class Lapse(enum.StrEnum):
    """Where a customer stands against their own cadence (see crm.segments)."""

    ON_TRACK = "on_track"
    LAPSING = "lapsing"
    LAPSED = "lapsed"


class Behaviour(enum.StrEnum):
    """Behaviour classes, from the customer's own order history (see crm.segments)."""

    FREQUENT = "frequent"
    PERIODIC = "periodic"
    STOPPED = "stopped"  # were frequent and stopped
    RARE = "rare"
    ONE_OFF = "one_off"


class Gender(enum.StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class LeaveReason(enum.StrEnum):
    PRICE = "price"
    CONDITIONS = "conditions"
    SERVICE = "service"
    CHANNEL = "channel"
    IRRELEVANT = "irrelevant"
    OTHER = "other"


class Stage(db.Model):
    """A funnel stage (a column of the board); `key` marks the ones the rebuild moves cards into."""

    __tablename__ = "stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str | None] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Customer(db.Model):
    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_last_order_at_id", "last_order_at", "id"),
        Index("ix_customers_total_spent_id", "total_spent", "id"),
        # A filter with the default sort (last order) reads its page straight from one of these.
        Index("ix_customers_status_last_order", "status", "last_order_at", "id"),
        Index("ix_customers_manager_last_order", "manager_id", "last_order_at", "id"),
        Index("ix_customers_stage_last_order", "stage_id", "last_order_at", "id"),
        Index("ix_customers_city_last_order", "city", "last_order_at", "id"),
        # "Who is worth most" within a status or a manager's book: LTV is the other sort that matters.
        Index("ix_customers_status_ltv", "status", "total_spent", "id"),
        Index("ix_customers_manager_ltv", "manager_id", "total_spent", "id"),
        Index("ix_customers_sort_name_id", "sort_name", "id"),
        Index("ix_customers_order_count_id", "order_count", "id"),
        # The lapsed-client queues: one status of the cadence, most value at risk first.
        Index("ix_customers_lapse_at_risk", "lapse", "at_risk", "id"),
        # A cell of the RFM grid or a behaviour class, opened as a list sorted by last order.
        Index("ix_customers_rfm_last_order", "rfm", "last_order_at", "id"),
        Index("ix_customers_behaviour_last_order", "behaviour", "last_order_at", "id"),
        # The inactive list, newest first.
        Index("ix_customers_status_inactive_since", "status", "inactive_since", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The customer's id in the shop or till that sends orders; orders and re-imports find them by it.
    external_ref: Mapped[str | None] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Lower-cased name for sorting and paging by name; kept by `crm.customers`.
    sort_name: Mapped[str] = mapped_column(SearchText, default="")
    preferred_channel: Mapped[Channel | None] = mapped_column(_enum(Channel))
    birthday: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[Gender | None] = mapped_column(_enum(Gender))
    city: Mapped[str | None] = mapped_column(String(120))
    # IANA zone for the send window of sequences ("Europe/Moscow"); NULL means the team's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    stage_id: Mapped[int | None] = mapped_column(ForeignKey("stages.id", ondelete="SET NULL"))
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.ACTIVE)
    leave_reason: Mapped[LeaveReason | None] = mapped_column(_enum(LeaveReason))
    leave_reason_note: Mapped[str | None] = mapped_column(String(500))
    do_not_contact: Mapped[bool] = mapped_column(default=False)
    complainer: Mapped[bool] = mapped_column(default=False)
    notes: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(40), default="manual")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow,
                                                 server_default=func.now())
    # Optimistic locking: an edit made from a stale page is refused instead of silently
    # overwriting what another tab saved. Only people's edits bump it (crm.customers.set_field):
    # an order arriving meanwhile refreshes the figures without invalidating an open editor.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    # Figures derived from the paid orders, stored so lists sort and filter on them by index.
    # `crm.figures` keeps them: for one customer when an order arrives, set-based for everyone.
    order_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_spent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # minor units
    average_check: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # minor units
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    usual_interval_days: Mapped[float | None] = mapped_column(db.Float)  # median gap between orders
    expected_next_order_on: Mapped[date | None] = mapped_column(Date)
    favourite_products: Mapped[list[str]] = mapped_column(db.JSON, default=list)
    favourite_categories: Mapped[list[str]] = mapped_column(db.JSON, default=list)

    # Segments, kept by `crm.segments` (the nightly rebuild, and at once when an order arrives).
    # RFM scores 1-3 (3 is best) and the cell as one number, r*100 + f*10 + m; NULL without orders.
    r_score: Mapped[int | None] = mapped_column(db.SmallInteger)
    f_score: Mapped[int | None] = mapped_column(db.SmallInteger)
    m_score: Mapped[int | None] = mapped_column(db.SmallInteger)
    rfm: Mapped[int | None] = mapped_column(db.SmallInteger)
    behaviour: Mapped[Behaviour | None] = mapped_column(_enum(Behaviour))
    lapse: Mapped[Lapse | None] = mapped_column(_enum(Lapse))
    # What the team stands to lose (minor units, weighted): ranks the lapsed-client queues.
    at_risk: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A person put the card on its stage: the rebuild leaves it there.
    stage_pinned: Mapped[bool] = mapped_column(default=False, server_default="0")
    # Why and since when the customer is on the inactive list (crm.inactive).
    inactive_reason: Mapped[str | None] = mapped_column(String(300))
    inactive_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inactive_how: Mapped[str | None] = mapped_column(String(20))  # a key of crm.inactive.HOW
    # Dismissed from the lapsed queues until this day (team's calendar).
    dismissed_until: Mapped[date | None] = mapped_column(Date)

    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    manager: Mapped[User | None] = relationship(lazy="joined")
    stage: Mapped[Stage | None] = relationship(lazy="joined")
    contacts: Mapped[list[Contact]] = relationship(back_populates="customer", cascade="all, delete-orphan",
                                                   order_by="Contact.id")
    consents: Mapped[list[Consent]] = relationship(cascade="all, delete-orphan", order_by="Consent.channel")

    def contact(self, kind: ContactKind) -> str | None:
        """Return the first contact of this kind (the one shown in lists), or None."""
        return next((c.value for c in self.contacts if c.kind is kind), None)

    def consent_for(self, channel: Channel) -> Consent | None:
        return next((c for c in self.consents if c.channel is channel), None)


class Contact(db.Model):
    """A phone, email or messenger id of a customer, stored normalised (E.164, lower-case email)."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "value", name="uq_contacts_customer_kind_value"),
        Index("ix_contacts_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ContactKind] = mapped_column(_enum(ContactKind))
    value: Mapped[str] = mapped_column(SearchText)
    # A wrong number or a hard bounce: kept on record, never used again.
    invalid: Mapped[bool] = mapped_column(default=False)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


class Consent(db.Model):
    """Whether a customer agreed to marketing on a channel, and when and how that was given."""

    __tablename__ = "consents"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel), primary_key=True)
    granted: Mapped[bool] = mapped_column(default=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    how: Mapped[str | None] = mapped_column(String(200))


class SearchTerm(db.Model):
    """One searchable word of a customer (name word, email, phone digits, tag): a small inverted
    index that answers prefix search by an index range on SQLite and PostgreSQL alike."""

    __tablename__ = "search_terms"
    __table_args__ = (Index("ix_search_terms_term_customer", "term", "customer_id"),)

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(SearchText, primary_key=True)

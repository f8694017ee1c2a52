"""Orders: what a customer bought, when and for how much. Only paid orders count in the figures."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from crm.extensions import db
from crm.models.customer import _enum
from crm.models.user import utcnow


class OrderStatus(enum.StrEnum):
    PAID = "paid"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        # Re-importing or re-posting the same order updates it instead of adding a second one.
        UniqueConstraint("source", "external_id", name="uq_orders_source_external_id"),
        # The card's history and the per-customer figures read orders by customer, newest first; with
        # status and amount in the index too, the rebuild's totals (a GROUP BY over ten million
        # orders) read the index alone, in customer order, and never touch the table.
        Index("ix_orders_customer_placed_status_amount", "customer_id", "placed_at", "status", "amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40), default="manual")
    external_id: Mapped[str] = mapped_column(String(80))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PAID)
    # [{"name": ..., "category": ..., "quantity": 1, "price": minor units}, ...]
    items: Mapped[list[dict]] = mapped_column(db.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, server_default=func.now())

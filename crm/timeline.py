"""Reading a customer's history for the card: orders and timeline entries, newest first, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from crm.extensions import db
from crm.models import Interaction, Order


@dataclass
class Slice:
    items: list
    next_before: int | None  # pass as `before` for the next page; None on the last one


def _newest_first(model, moment, customer_id: int, before: int | None, size: int) -> Slice:
    # Keyset on (time, id) through the (customer_id, time) index: a card with thousands of
    # orders reads only the rows it shows.
    query = select(model).where(model.customer_id == customer_id)
    if before:
        anchor = db.session.get(model, before)
        if anchor is None or anchor.customer_id != customer_id:
            return Slice([], None)
        at = getattr(anchor, moment.key)
        query = query.where((moment < at) | ((moment == at) & (model.id < anchor.id)))
    rows = db.session.scalars(query.order_by(moment.desc(), model.id.desc()).limit(size + 1)).all()
    return Slice(rows[:size], rows[size - 1].id if len(rows) > size else None)


def orders_page(customer_id: int, before: int | None = None, size: int = 20) -> Slice:
    """Return the customer's orders, newest first, older than the order `before`."""
    return _newest_first(Order, Order.placed_at, customer_id, before, size)


def entries_page(customer_id: int, before: int | None = None, size: int = 30) -> Slice:
    """Return the customer's timeline, newest first, older than the entry `before`."""
    return _newest_first(Interaction, Interaction.at, customer_id, before, size)

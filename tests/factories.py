"""Test data made through the domain functions, as the app itself makes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from crm import customers, orders
from crm.extensions import db

_ids = count(1)
REGION = "RU"


def customer(name: str = "Anna Ivanova", acting=None, **fields):
    """Create a customer (fields as in CustomerInput) and return it."""
    made = customers.create_customer(customers.CustomerInput(name=name, **fields), acting, REGION)
    db.session.flush()
    return made


def order(customer_obj, placed_at: datetime | str, amount: str | int = "100.00", status: str = "paid",
          items: list[dict] | None = None, external_id: str | None = None, source: str = "test"):
    """Save a paid order for the customer, as the API would."""
    payload = {"external_id": external_id or f"T-{next(_ids)}", "amount": str(amount), "currency": "RUB",
               "placed_at": placed_at.isoformat() if isinstance(placed_at, datetime) else placed_at,
               "status": status, "customer": {"id": customer_obj.id}, "items": items or []}
    saved, _ = orders.save_order(orders.parse_order(payload, "RUB", "UTC"), source, REGION)
    return saved


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def lapsed_call(name: str, manager_id: int, at_risk: int, phone: str = "+7 912 345-67-89") -> int:
    """A lapsed customer with a phone and a call-back due an hour ago in a manager's queue; its id."""
    from crm import clock
    from crm.models import CallBack, CallReason, Status

    person = customer(name, phones=[phone])
    person.status, person.at_risk = Status.LAPSED, at_risk
    db.session.flush()
    call = CallBack(customer_id=person.id, manager_id=manager_id, reason=CallReason.LAPSED,
                    due_at=clock.now() - timedelta(hours=1))
    db.session.add(call)
    db.session.flush()
    return call.id

"""Orders in: reading one order from JSON or a CSV row, and saving it idempotently by external id.

The orders API, the CSV import and the demo seed share these, so an order means the same thing
whichever way it arrives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm import contacts, customers, figures, responses, segments
from crm.errors import FieldError
from crm.extensions import db
from crm.models import Contact, ContactKind, Customer, Kind, Order, OrderStatus, User

MAX_ITEMS = 200
# Day-first is how Russian (and most European) shops write dates; ISO always works.
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M",
                "%d.%m.%Y", "%d/%m/%Y %H:%M", "%d/%m/%Y")


@dataclass
class CustomerRef:
    """How an order names its customer: our id, the shop's id, or a contact; a name creates one."""

    id: int | None = None
    external_ref: str | None = None
    email: str | None = None
    phone: str | None = None
    name: str | None = None


@dataclass
class OrderInput:
    external_id: str
    placed_at: datetime
    amount: int  # minor units
    currency: str
    status: OrderStatus
    customer: CustomerRef
    items: list[dict] = field(default_factory=list)


def parse_datetime(raw, tz: str, field_name: str = "placed_at") -> datetime:
    """Read an ISO 8601 or day-first date/time; a time without a zone is in the team's zone."""
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day)
    else:
        text = str(raw or "").strip()
        moment = None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            for fmt in DATE_FORMATS:
                try:
                    moment = datetime.strptime(text, fmt)
                    break
                except ValueError:
                    continue
        if moment is None:
            raise FieldError(field_name, str(_l("Not a date: use YYYY-MM-DD or DD.MM.YYYY, optionally with a time.")))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    # Checked before converting: year 1 with a positive offset does not exist in UTC.
    if moment.year < 1990 or moment.year > datetime.now(UTC).year + 1:
        raise FieldError(field_name, str(_l("The date is out of range.")))
    return moment.astimezone(UTC)


def parse_amount(raw, currency: str, field_name: str = "amount") -> int:
    """Read "1 234,50", "1234.5" or 1234.5 into minor units of `currency`."""
    if isinstance(raw, bool):
        raise FieldError(field_name, str(_l("Enter an amount, e.g. 1234.50.")))
    text = str(raw if raw is not None else "").strip().replace("\u00a0", "").replace(" ", "")
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise FieldError(field_name, str(_l("Enter an amount, e.g. 1234.50."))) from exc
    if not value.is_finite():
        raise FieldError(field_name, str(_l("Enter an amount, e.g. 1234.50.")))
    if value < 0:
        raise FieldError(field_name, str(_l("The amount cannot be negative.")))
    if value.adjusted() > 13:  # before scaling: "1e999999999" must not reach the arithmetic
        raise FieldError(field_name, str(_l("Too many decimal places or too large.")))
    minor = value.scaleb(get_currency_precision(currency))
    if minor != minor.to_integral_value() or minor > 10**15:
        raise FieldError(field_name, str(_l("Too many decimal places or too large.")))
    return int(minor)


def parse_currency(raw, default: str) -> str:
    code = (str(raw).strip().upper() if raw else default)
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise FieldError("currency", str(_l("Use a three-letter currency code, e.g. RUB.")))
    return code


def parse_status(raw) -> OrderStatus:
    if raw in (None, ""):
        return OrderStatus.PAID
    try:
        return OrderStatus(str(raw).strip().lower())
    except ValueError as exc:
        raise FieldError("status", str(_l("Use paid, cancelled or refunded."))) from exc


def parse_items(raw, currency: str) -> list[dict]:
    """Read [{"name", "category", "quantity", "price"}]; price in major units like the amount."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
        raise FieldError("items", str(_l("Items must be a list of at most %(n)d products.", n=MAX_ITEMS)))
    items = []
    for index, item in enumerate(raw):
        where = f"items[{index}]"
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise FieldError(where, str(_l("Each item needs a product name.")))
        quantity = item.get("quantity", 1)
        if not isinstance(quantity, int | float) or isinstance(quantity, bool) or quantity <= 0 or quantity > 10**6:
            raise FieldError(f"{where}.quantity", str(_l("Quantity must be a positive number.")))
        parsed = {"name": str(item["name"]).strip()[:200], "quantity": quantity}
        if item.get("category"):
            parsed["category"] = str(item["category"]).strip()[:120]
        if item.get("price") is not None:
            parsed["price"] = parse_amount(item["price"], currency, f"{where}.price")
        items.append(parsed)
    return items


def parse_order(payload: dict, default_currency: str, tz: str) -> OrderInput:
    """Validate one order given as a JSON object; raise FieldError naming the bad field."""
    if not isinstance(payload, dict):
        raise FieldError("order", str(_l("Each order must be a JSON object.")))
    external_id = str(payload.get("external_id") or "").strip()
    if not external_id or len(external_id) > 80:
        raise FieldError("external_id", str(_l("Give the order's id in your system (at most 80 characters).")))
    currency = parse_currency(payload.get("currency"), default_currency)
    ref = payload.get("customer")
    if not isinstance(ref, dict):
        raise FieldError("customer", str(_l("Name the customer: id, external_ref, email or phone.")))
    customer_ref = CustomerRef(
        # bool is an int in Python, and SQLite refuses integers past 64 bits.
        id=ref["id"] if type(ref.get("id")) is int and 0 < ref["id"] < 2**63 else None,
        external_ref=str(ref["external_ref"]).strip()[:80] if ref.get("external_ref") else None,
        email=str(ref["email"]) if ref.get("email") else None,
        phone=str(ref["phone"]) if ref.get("phone") else None,
        name=str(ref["name"]) if ref.get("name") else None,
    )
    if not any((customer_ref.id, customer_ref.external_ref, customer_ref.email, customer_ref.phone)):
        raise FieldError("customer", str(_l("Name the customer: id, external_ref, email or phone.")))
    return OrderInput(
        external_id=external_id,
        placed_at=parse_datetime(payload.get("placed_at"), tz),
        amount=parse_amount(payload.get("amount"), currency),
        currency=currency,
        status=parse_status(payload.get("status")),
        customer=customer_ref,
        items=parse_items(payload.get("items"), currency),
    )


def resolve_customer(ref: CustomerRef, region: str, source: str, acting: User | None) -> Customer:
    """Find the order's customer, or create them when the order gives a name and a contact."""
    if ref.id is not None:
        found = db.session.get(Customer, ref.id)
        if found is None:
            raise FieldError("customer.id", str(_l("No customer has this id.")))
        return found
    if ref.external_ref:
        found = db.session.scalar(select(Customer).where(Customer.external_ref == ref.external_ref))
        if found is not None:
            return found
    email = contacts.normalise_email(ref.email, "customer.email") if ref.email else None
    phone = contacts.normalise_phone(ref.phone, region, "customer.phone") if ref.phone else None
    for kind, value in ((ContactKind.EMAIL, email), (ContactKind.PHONE, phone)):
        if value:
            owner_id = db.session.scalar(
                select(Contact.customer_id).where(Contact.kind == kind, Contact.value == value).limit(1))
            if owner_id is not None:
                return db.session.get(Customer, owner_id)
    if not ref.name:
        raise FieldError("customer", str(_l("Unknown customer; give a name to create them.")))
    return customers.create_customer(
        customers.CustomerInput(name=ref.name, emails=[email] if email else [], phones=[phone] if phone else [],
                                external_ref=ref.external_ref),
        acting, region, source=source)


def save_order(order_in: OrderInput, source: str, region: str, acting: User | None = None) -> tuple[Order, str]:
    """Create or update the order with this (source, external id); return it and
    "created", "updated" or "unchanged". The customer's figures follow at once."""
    customer = resolve_customer(order_in.customer, region, source, acting)
    order = db.session.scalar(select(Order).where(Order.source == source, Order.external_id == order_in.external_id))
    values = {"customer_id": customer.id, "placed_at": order_in.placed_at, "amount": order_in.amount,
              "currency": order_in.currency, "status": order_in.status, "items": order_in.items}
    if order is None:
        order = Order(source=source, external_id=order_in.external_id, **values)
        db.session.add(order)
        outcome = "created"
    else:
        current = {k: getattr(order, k) for k in values}
        current["placed_at"] = figures.aware(current["placed_at"])
        if current == values:
            return order, "unchanged"
        previous_customer = order.customer_id
        for key, value in values.items():
            setattr(order, key, value)
        outcome = "updated"
        if previous_customer != customer.id:
            db.session.flush()
            segments.refresh(figures.refresh(previous_customer))
    db.session.flush()
    segments.refresh(figures.refresh(customer.id))
    customers.record(customer, Kind.ORDER, acting, outcome=outcome, order_id=order.id,
                     external_id=order.external_id, amount=order.amount, currency=order.currency,
                     status=order.status.value, source=source)
    responses.after_order(order)  # a paid order stops a running reactivation sequence
    return order, outcome

"""CSV exports that spreadsheets open safely: UTF-8 with a BOM, formulas neutralised."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal

from crm.models import ContactKind, Customer

# A cell starting with one of these is run as a formula by Excel and LibreOffice.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CUSTOMER_COLUMNS = ("id", "name", "email", "phone", "telegram", "whatsapp", "city", "status", "stage", "manager",
                    "tags", "orders", "ltv", "average_check", "last_order", "usual_interval_days", "created")


def safe_cell(value) -> str:
    """Return the value as text that a spreadsheet shows and never evaluates. Numbers are left as
    they are: a negative figure (-16.7) is a number, not a formula."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _customer_row(c: Customer) -> list:
    def contacts(kind):
        return " ".join(x.value for x in c.contacts if x.kind is kind)

    return [c.id, c.name, contacts(ContactKind.EMAIL), contacts(ContactKind.PHONE), contacts(ContactKind.TELEGRAM),
            contacts(ContactKind.WHATSAPP), c.city, c.status.value, c.stage.name if c.stage else "",
            c.manager.name if c.manager else "", ", ".join(c.tags or []), c.order_count,
            f"{c.total_spent / 100:.2f}", f"{c.average_check / 100:.2f}",
            c.last_order_at.date().isoformat() if c.last_order_at else "", c.usual_interval_days or "",
            c.created_at.date().isoformat() if c.created_at else ""]


def rows_csv(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """Yield the CSV text of a header and rows, a chunk at a time (it streams)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(v) for v in row])
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def customers_csv(rows: Iterable[Customer]) -> Iterator[str]:
    """Yield the CSV text of these customers, a chunk at a time (it streams)."""
    return rows_csv(CUSTOMER_COLUMNS, map(_customer_row, rows))

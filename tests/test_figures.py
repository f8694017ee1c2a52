"""Per-customer figures against hand-worked examples; the set-based rebuild agrees with them."""

from __future__ import annotations

from datetime import date

import pytest

from crm import figures
from crm.extensions import db
from crm.models import Customer
from tests.factories import customer, order, utc


def _figures(c: Customer) -> dict:
    db.session.flush()
    db.session.refresh(c)
    return {k: getattr(c, k) for k in ("order_count", "total_spent", "average_check", "usual_interval_days",
                                       "expected_next_order_on", "favourite_products", "favourite_categories")}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request):
    """Run the test on SQLite and on PostgreSQL."""
    request.getfixturevalue("ctx" if request.param == "sqlite" else "pg_ctx")
    return request.param


@pytest.fixture
def monthly_client(any_db):
    """A salon client: 4 paid visits 30, 31 and 29 days apart, one cancelled booking."""
    c = customer("Мария Петрова", phones=["+7 916 123-45-67"])
    hair = {"name": "Haircut", "category": "Hair", "quantity": 1}
    colour = {"name": "Colouring", "category": "Hair", "quantity": 1}
    nails = {"name": "Manicure", "category": "Nails", "quantity": 2}
    order(c, utc(2026, 1, 10, 12), "2500.00", items=[hair])
    order(c, utc(2026, 2, 9, 12), "4000.00", items=[hair, colour])
    order(c, utc(2026, 3, 12, 12), "2500.50", items=[hair, nails])
    order(c, utc(2026, 4, 10, 12), "3000.00", items=[colour])
    order(c, utc(2026, 4, 20, 12), "9999.00", status="cancelled", items=[nails])
    return c


def test_figures_of_a_monthly_client_worked_by_hand(monthly_client):
    # Paid: 2500 + 4000 + 2500.50 + 3000 = 12000.50 over 4 orders -> average 3000.125, i.e. 300012.5 minor
    # units, rounded half up to 300013. Gaps 30, 31, 29 days -> median 30; next order 2026-04-10 + 30 days.
    assert _figures(monthly_client) == {
        "order_count": 4,
        "total_spent": 1200050,
        "average_check": 300013,
        "usual_interval_days": 30.0,
        "expected_next_order_on": date(2026, 5, 10),
        "favourite_products": ["Haircut", "Colouring", "Manicure"],
        "favourite_categories": ["Hair", "Nails"],
    }
    assert figures.days_since(monthly_client.last_order_at, date(2026, 5, 1)) == 21


def test_a_one_off_buyer_has_no_usual_interval(ctx):
    c = customer("One Off")
    order(c, utc(2025, 6, 1), "50.00")
    got = _figures(c)
    assert got["order_count"] == 1 and got["total_spent"] == 5000 and got["average_check"] == 5000
    assert got["usual_interval_days"] is None and got["expected_next_order_on"] is None


def test_an_even_number_of_gaps_takes_the_mean_of_the_middle_two(ctx):
    c = customer("Even Gaps")
    for month, day in ((1, 1), (1, 3), (1, 13), (1, 16), (2, 5)):  # gaps 2, 10, 3, 20 -> 2, 3, 10, 20 -> 6.5
        order(c, utc(2026, month, day), "10")
    assert _figures(c)["usual_interval_days"] == 6.5


def test_refunded_and_cancelled_orders_do_not_count(ctx):
    c = customer("Refunds")
    order(c, utc(2026, 1, 1), "100", status="refunded")
    order(c, utc(2026, 1, 2), "100", status="cancelled")
    assert _figures(c)["order_count"] == 0 and _figures(c)["total_spent"] == 0
    assert figures.days_since(c.last_order_at, date(2026, 1, 5)) is None


def test_rebuild_gives_the_same_figures_as_the_per_customer_refresh(monthly_client):
    others = [customer(f"Customer {i}") for i in range(3)]
    order(others[0], utc(2026, 1, 1), "10", items=[{"name": "Bread", "quantity": 3}])
    order(others[0], utc(2026, 1, 2, 6), "12", items=[{"name": "Milk"}, {"name": "Bread"}])
    order(others[1], utc(2026, 1, 1), "10", status="refunded")
    db.session.commit()
    expected = {c.id: _figures(c) for c in [monthly_client, *others]}
    # Scramble the stored figures, then rebuild the whole base set-based.
    db.session.execute(db.update(Customer).values(order_count=99, total_spent=1, average_check=1,
                                                  usual_interval_days=1.0, favourite_products=["x"]))
    figures.rebuild()
    db.session.commit()
    db.session.expire_all()
    assert {c.id: _figures(c) for c in [monthly_client, *others]} == expected
    figures.rebuild()  # twice gives the same
    db.session.expire_all()
    assert {c.id: _figures(c) for c in [monthly_client, *others]} == expected


def test_a_median_on_a_half_hundredth_rounds_up_the_same_in_python_and_sql(any_db):
    c = customer("Yearly Buyer")
    first = utc(2024, 1, 1)
    order(c, first, "10")
    from datetime import timedelta

    order(c, first + timedelta(seconds=31_523_472), "10")  # exactly 364.855 days later
    assert _figures(c)["usual_interval_days"] == 364.86
    expected = _figures(c)
    db.session.commit()
    figures.rebuild()
    db.session.commit()
    db.session.expire_all()
    assert _figures(c) == expected

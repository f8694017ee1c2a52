"""Reading an order's fields: dates, amounts, currencies and customer references, good and bad."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm import orders
from crm.errors import FieldError


@pytest.mark.parametrize("raw, expected", [
    ("2026-03-08", datetime(2026, 3, 7, 21, 0, tzinfo=UTC)),  # midnight in Moscow
    ("08.03.2026 10:30", datetime(2026, 3, 8, 7, 30, tzinfo=UTC)),
    ("2026-03-08T10:30:00Z", datetime(2026, 3, 8, 10, 30, tzinfo=UTC)),
    ("2026-03-08T10:30:00+05:00", datetime(2026, 3, 8, 5, 30, tzinfo=UTC)),
])
def test_dates_are_read_in_the_team_zone_unless_they_carry_one(app, raw, expected):
    with app.app_context():
        assert orders.parse_datetime(raw, "Europe/Moscow") == expected


@pytest.mark.parametrize("raw", ["", "yesterday", "31.02.2026", "0001-01-01T00:00:00+01:00", "9999-12-31"])
def test_bad_dates_are_refused_with_the_field_name(app, raw):
    with app.app_context(), pytest.raises(FieldError) as refused:
        orders.parse_datetime(raw, "UTC")
    assert refused.value.field == "placed_at"


@pytest.mark.parametrize("raw, currency, minor", [
    ("12.50", "USD", 1250), ("1 234,5", "RUB", 123450), (99, "USD", 9900), ("100", "JPY", 100), ("0", "EUR", 0),
])
def test_amounts_become_minor_units_of_their_currency(app, raw, currency, minor):
    with app.app_context():
        assert orders.parse_amount(raw, currency) == minor


@pytest.mark.parametrize("raw, message", [
    ("-5", "negative"), ("abc", "Enter an amount"), ("1e999999999", "too large"), ("0.001", "decimal places"),
    ("NaN", "Enter an amount"), (True, "Enter an amount"),
])
def test_bad_amounts_are_refused(app, raw, message):
    with app.app_context(), pytest.raises(FieldError, match=message):
        orders.parse_amount(raw, "USD")


def test_currency_codes_are_three_latin_letters(app):
    with app.app_context():
        assert orders.parse_currency("rub", "USD") == "RUB"
        assert orders.parse_currency(None, "USD") == "USD"
        for bad in ("ÄÖÜ", "RU", "RUBL", "12X"):
            with pytest.raises(FieldError):
                orders.parse_currency(bad, "USD")


@pytest.mark.parametrize("ident", [True, 2**70, -1, "12", 1.5])
def test_a_customer_id_must_be_a_sane_integer(app, ident):
    payload = {"external_id": "A-1", "amount": "1", "placed_at": "2026-01-01", "customer": {"id": ident}}
    with app.app_context(), pytest.raises(FieldError) as refused:
        orders.parse_order(payload, "USD", "UTC")
    assert refused.value.field == "customer"


def test_unknown_api_paths_and_methods_answer_json(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.json == {"errors": [{"message": "Not Found"}]}
    response = client.get("/api/v1/orders")
    assert response.status_code == 405 and response.is_json

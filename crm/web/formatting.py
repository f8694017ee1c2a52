"""Locale-aware formatting for lists of many rows, cached: Babel takes ~50 µs a call, and a page of
customers makes hundreds of calls, while the values repeat (dates, round amounts, phones)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_date as babel_date
from babel.numbers import format_compact_currency, get_currency_precision
from babel.numbers import format_currency as babel_currency
from flask import current_app
from flask_babel import format_percent, get_locale

from crm.contacts import display_phone


@lru_cache(maxsize=65536)
def money(minor: int, currency: str, locale: str) -> str:
    """Format minor units as money in the locale: 123456 RUB -> "1 234,56 ₽"."""
    return babel_currency(minor / 10 ** get_currency_precision(currency), currency, locale=locale)


@lru_cache(maxsize=8192)
def day(value: date, locale: str, form: str = "medium") -> str:
    return babel_date(value, form, locale=locale)


@lru_cache(maxsize=65536)
def phone(e164: str) -> str:
    return display_phone(e164)


def local_date(moment: datetime, tz: str) -> date:
    """Return the calendar date of a stored (UTC) moment where the team is."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(tz)).date()


def percent(share: float | None, signed: bool = False) -> str:
    """A share (0.125) as a percentage in the user's locale ("12.5%"); `signed` for changes."""
    if share is None:
        return ""
    return format_percent(share, "+#,##0.#%;-#,##0.#%" if signed else "#,##0.#%")


def short_money(minor: int) -> str:
    """"$1.2M": for a grid cell or an axis with room for a few characters (the full amount is in
    the label or the table view)."""
    currency = current_app.config["TEAM_CURRENCY"]
    return format_compact_currency(minor / 10 ** get_currency_precision(currency), currency,
                                   locale=str(get_locale()), fraction_digits=1)

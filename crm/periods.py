"""Periods of the dashboard: this month, the last 30/90/365 days or custom days, each against the
period just before it. Days are the team's calendar days, both ends included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask_babel import lazy_gettext as _l

from crm import workdays

PRESETS = {
    "month": _l("This month"),
    "30": _l("Last 30 days"),
    "90": _l("Last 90 days"),
    "365": _l("Last 365 days"),
    "custom": _l("Custom"),
}
DEFAULT = "30"
MAX_DAYS = 5 * 366  # a custom period longer than this is refused (nothing to compare it with)
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)


@dataclass(frozen=True)
class Period:
    key: str
    start: date
    end: date  # included

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period just before: for "this month" the same days of last month (the 1st to the
        same day, or its last day), otherwise as many days right before the start."""
        if self.key == "month":
            start = (self.start - timedelta(days=1)).replace(day=1)
            return Period(self.key, start, min(start + (self.end - self.start), self.start - timedelta(days=1)))
        return Period(self.key, self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as a half-open UTC range [the team's midnight starting it, the one ending it)."""
        return workdays.day_bounds(self.start)[0], workdays.day_bounds(self.end)[1]

    def args(self) -> dict[str, str]:
        """URL arguments that bring this period back."""
        if self.key == "custom":
            return {"period": "custom", "from": self.start.isoformat(), "to": self.end.isoformat()}
        return {"period": self.key}


def preset(key: str, today: date) -> Period:
    if key == "month":
        return Period(key, today.replace(day=1), today)
    days = int(key)
    return Period(key, today - timedelta(days=days - 1), today)


def parse(args, today: date) -> tuple[Period, dict[str, str]]:
    """Read the period from URL arguments; unknown or broken ones fall back to the default, with a
    message per field for the form."""
    key = args.get("period") or DEFAULT
    if key not in PRESETS:
        return preset(DEFAULT, today), {}
    if key != "custom":
        return preset(key, today), {}
    errors: dict[str, str] = {}
    days = {}
    for name in ("from", "to"):
        days[name] = workdays.parse_day(args.get(name))
        if days[name] is None:
            errors[name] = str(_l("Enter a date as YYYY-MM-DD."))
        elif not EARLIEST <= days[name] <= LATEST:  # room for the period before, and for time zones
            errors[name] = str(_l("Enter a date between %(first)s and %(last)s.", first=EARLIEST.year,
                                  last=LATEST.year))
    if errors:
        return preset(DEFAULT, today), errors
    if days["from"] > days["to"]:
        errors["to"] = str(_l("The end must not be before the start."))
    elif (days["to"] - days["from"]).days >= MAX_DAYS:
        errors["to"] = str(_l("Choose at most %(years)s years.", years=5))
    if errors:
        return preset(DEFAULT, today), errors
    return Period("custom", days["from"], days["to"]), {}


def month_starts(today: date, count: int) -> list[date]:
    """The first days of the last `count` months, oldest first, this month included."""
    months, first = [], today.replace(day=1)
    for _ in range(count):
        months.append(first)
        first = (first - timedelta(days=1)).replace(day=1)
    return months[::-1]


def month_end(first: date) -> date:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)

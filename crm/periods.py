"""Periods of the dashboard: this month, the last 30/90/365 days or custom days, each against the
period just before it. Days are the team's calendar days, both ends included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l

PRESETS = {
    "month": _l("This month"),
    "30": _l("Last 30 days"),
    "90": _l("Last 90 days"),
    "365": _l("Last 365 days"),
    "custom": _l("Custom"),
}
DEFAULT = "30"
MAX_DAYS = 5 * 366  # a custom period longer than this is refused (nothing to compare it with)


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
        """The period as UTC instants, [start, end): the team's midnights at both ends."""
        return day_start(self.start), day_start(self.end + timedelta(days=1))

    def args(self) -> dict[str, str]:
        """URL arguments that bring this period back."""
        if self.key == "custom":
            return {"period": "custom", "from": self.start.isoformat(), "to": self.end.isoformat()}
        return {"period": self.key}


def day_start(day: date) -> datetime:
    """The team's midnight at the start of `day`, as an aware datetime (compares with UTC columns)."""
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(current_app.config["TEAM_TIMEZONE"]))


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
        try:
            days[name] = date.fromisoformat(args.get(name) or "")
        except ValueError:
            errors[name] = str(_l("Enter a date as YYYY-MM-DD."))
    if not errors and days["from"] > days["to"]:
        errors["to"] = str(_l("The end must not be before the start."))
    if not errors and (days["to"] - days["from"]).days >= MAX_DAYS:
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

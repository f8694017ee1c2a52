"""The time: UTC in the database, the team's own zone for "today"."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware moment in UTC; a naive one is refused (its zone would be a guess)."""
    if moment.tzinfo is None:
        raise ValueError("a UTC-aware moment is needed")
    return moment.astimezone(UTC)


def team_today() -> date:
    """Return today's date where the team works (a team in UTC+10 starts its day before UTC does)."""
    return now().astimezone(ZoneInfo(current_app.config["TEAM_TIMEZONE"])).date()

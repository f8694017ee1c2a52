"""The team's working calendar: which days and hours calls happen, in the team's time zone.

Call-backs fall due at the start of a working day; a "call me back at ..." time must fall inside
working hours; a call nobody answered is tried again on a ladder of working days. Days are the
team's days: for a team in UTC+10, 23:30 UTC is already tomorrow morning.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app

# After the 1st, 2nd, 3rd and later unanswered call: try again this many working days later.
NO_ANSWER_LADDER = (1, 2, 4)


def zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TEAM_TIMEZONE"])


def working_weekdays() -> frozenset[int]:
    """ISO weekdays (1 = Monday) the team works, from WORKDAYS such as "1-5" or "1,2,3,4,5,6"."""
    spec = current_app.config["WORKDAYS"]
    days: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        days.update(range(int(first), int(last or first) + 1))
    return frozenset(day for day in days if 1 <= day <= 7)


def is_working_day(day: date) -> bool:
    return day.isoweekday() in working_weekdays()


def next_working_day(day: date, steps: int = 1) -> date:
    """The working day `steps` working days after `day` (never `day` itself)."""
    working = working_weekdays()
    if not working:
        raise ValueError("WORKDAYS names no day")
    while steps > 0:
        day += timedelta(days=1)
        if day.isoweekday() in working:
            steps -= 1
    return day


def opening(day: date) -> datetime:
    """When the team's working day `day` starts, in UTC."""
    start = time(hour=current_app.config["WORKDAY_START_HOUR"])
    return datetime.combine(day, start, tzinfo=zone()).astimezone(UTC)


def day_of(moment: datetime) -> date:
    """The team's calendar day at a moment."""
    return moment.astimezone(zone()).date()


# A day in the calendar's first or last year is never meant, and its bounds, or a year counted
# from it, would overflow datetime: a 500 instead of an ignored argument.
_FIRST_DAY, _LAST_DAY = date(date.min.year + 1, 1, 1), date(date.max.year - 1, 12, 31)


def parse_day(raw) -> date | None:
    """A day typed as YYYY-MM-DD (what a date input sends), or None when it is not a usable one."""
    try:
        day = date.fromisoformat(raw) if raw else None
    except (TypeError, ValueError):
        return None
    return day if day is not None and _FIRST_DAY <= day <= _LAST_DAY else None


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The team's day `day` as a half-open UTC range [midnight, next midnight)."""
    start = datetime.combine(day, time(), tzinfo=zone())
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone())
    return start.astimezone(UTC), end.astimezone(UTC)


def local_moment(day: date, at: time) -> datetime:
    """A wall-clock time on a day where the team is, in UTC."""
    return datetime.combine(day, at, tzinfo=zone()).astimezone(UTC)


def within_hours(moment: datetime) -> bool:
    """Whether a moment falls on a working day between the opening and closing hours (team time)."""
    local = moment.astimezone(zone())
    config = current_app.config
    return (local.isoweekday() in working_weekdays()
            and config["WORKDAY_START_HOUR"] <= local.hour < config["WORKDAY_END_HOUR"])


def after_no_answer(attempt: int, today: date) -> datetime:
    """When to call again after the `attempt`-th unanswered call (1-based), from the team's today."""
    steps = NO_ANSWER_LADDER[min(attempt, len(NO_ANSWER_LADDER)) - 1]
    return opening(next_working_day(today, steps))

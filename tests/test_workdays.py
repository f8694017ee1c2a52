"""The team's working calendar: working days, opening time in the team's zone, hours, and the
no-answer ladder, including a team far east of UTC late in the UTC evening."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm import workdays

FRIDAY = date(2026, 11, 27)


@pytest.fixture
def vladivostok(make_app):
    app = make_app(TEAM_TIMEZONE="Asia/Vladivostok")  # UTC+10
    with app.app_context():
        yield app


def test_working_days_skip_the_weekend(ctx):
    assert workdays.is_working_day(FRIDAY) and not workdays.is_working_day(date(2026, 11, 28))
    assert workdays.next_working_day(FRIDAY) == date(2026, 11, 30)  # Monday
    assert workdays.next_working_day(FRIDAY, 2) == date(2026, 12, 1)
    assert workdays.next_working_day(date(2026, 11, 28)) == date(2026, 11, 30)  # from Saturday


def test_a_six_day_week(make_app):
    with make_app(WORKDAYS="1-6").app_context():
        assert workdays.next_working_day(FRIDAY) == date(2026, 11, 28)
    with make_app(WORKDAYS="1,3,5").app_context():
        assert workdays.next_working_day(date(2026, 11, 23)) == date(2026, 11, 25)


def test_the_day_opens_at_the_teams_hour_in_its_zone(vladivostok):
    # 09:00 in Vladivostok is 23:00 UTC the evening before.
    assert workdays.opening(FRIDAY) == datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def test_working_hours_are_the_teams(vladivostok):
    # 23:30 UTC on Thursday is 09:30 on Friday in Vladivostok: inside working hours.
    assert workdays.within_hours(datetime(2026, 11, 26, 23, 30, tzinfo=UTC))
    # 08:30 UTC on Friday is 18:30 there: closed.
    assert not workdays.within_hours(datetime(2026, 11, 27, 8, 30, tzinfo=UTC))
    # 23:30 UTC on Friday is Saturday morning there: not a working day.
    assert not workdays.within_hours(datetime(2026, 11, 27, 23, 30, tzinfo=UTC))


def test_no_answer_ladder_is_one_then_two_then_four_working_days(ctx):
    monday = date(2026, 11, 23)
    assert [workdays.after_no_answer(n, monday).date() for n in (1, 2, 3, 4)] == [
        date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27), date(2026, 11, 27)]
    # From a Friday the first retry is Monday.
    assert workdays.after_no_answer(1, FRIDAY).date() == date(2026, 11, 30)

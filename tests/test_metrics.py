"""The dashboard's figures against a small base built by hand, on SQLite and PostgreSQL.

The team works in Vladivostok (UTC+10): an order at 15:00 UTC on 31 January is placed on 1 February
there, and 14:00 UTC on 28 February is already 1 March. Worked out by hand below:

    Alice  1 Feb 100, 10 Feb 300, 5 Mar 200     (first order 31 Jan UTC)
    Bob    28 Feb 23:59 local 50, 1 Mar 00:00 local 150
    Carol  15 Dec 2025 100, 20 Feb 100
    Dan    a cancelled order only (not a buyer)
    Eve    no orders
"""

from __future__ import annotations

from datetime import date

import pytest

from crm import metrics, periods, settings, summaries
from crm.extensions import db
from crm.models import BaseDay, Customer, Status
from crm.periods import Period
from tests.factories import customer, order, utc

TODAY = date(2026, 3, 5)
FEB = Period("custom", date(2026, 2, 1), date(2026, 2, 28))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def base(request, make_app):
    if request.param == "postgres":
        import uuid

        from tests import servers

        url = servers.create_database(request.getfixturevalue("postgres_admin_url"), f"crm_{uuid.uuid4().hex[:10]}")
        app = make_app(TEAM_TIMEZONE="Asia/Vladivostok",
                       SQLALCHEMY_DATABASE_URI=url.replace("postgresql://", "postgresql+psycopg://"))
    else:
        app = make_app(TEAM_TIMEZONE="Asia/Vladivostok")
    with app.app_context():
        db.create_all()
        settings.save(settings.Segmentation(lapsing_days=30, lapsed_days=60))
        alice, bob, carol = customer("Alice"), customer("Bob"), customer("Carol")
        dan, eve = customer("Dan"), customer("Eve")
        order(alice, utc(2026, 1, 31, 15, 0), "100.00")
        order(alice, utc(2026, 2, 10, 0, 0), "300.00")
        order(alice, utc(2026, 3, 4, 16, 0), "200.00")  # 5 March, 02:00 local
        order(bob, utc(2026, 2, 28, 13, 59), "50.00")
        order(bob, utc(2026, 2, 28, 14, 0), "150.00")
        order(carol, utc(2025, 12, 15, 3, 0), "100.00")
        order(carol, utc(2026, 2, 20, 3, 0), "100.00")
        order(dan, utc(2026, 2, 5, 3, 0), "70.00", status="cancelled")
        # Set by hand: the refresh on each order judged them against the real today.
        alice.status = bob.status = Status.ACTIVE
        carol.status, dan.status, eve.status = Status.LAPSED, Status.INACTIVE, Status.IN_SEQUENCE
        db.session.commit()
        summaries.build(TODAY)
        db.session.commit()
        yield app
        db.session.remove()
        db.engine.dispose()


def test_sales_of_a_period_count_orders_on_the_teams_days(base):
    totals = metrics.sales(FEB).totals
    # Alice's 31 January UTC order is her 1 February; Bob's 14:00 UTC one is already March.
    assert (totals.orders, totals.revenue) == (4, 55000)
    assert totals.new == 2  # Alice and Bob bought for the first time
    assert totals.buyers == 3 and totals.returning == 1  # Carol came back (bought in December)
    assert totals.average_check == 13750
    assert totals.repeat_share == 0.5
    assert totals.frequency == pytest.approx(4 / 3)


def test_the_period_before_a_custom_one_has_as_many_days(base):
    assert FEB.previous() == Period("custom", date(2026, 1, 4), date(2026, 1, 31))
    previous = metrics.sales(FEB).previous
    assert previous.orders == 0  # 31 January UTC is February in Vladivostok
    assert previous.average_check is None and previous.frequency is None  # no division by zero


def test_this_month_is_compared_with_the_same_days_of_last_month(base):
    month = periods.preset("month", TODAY)
    assert (month.start, month.end) == (date(2026, 3, 1), TODAY)
    assert month.previous() == Period("month", date(2026, 2, 1), date(2026, 2, 5))
    sales = metrics.sales(month)
    assert (sales.totals.orders, sales.totals.revenue, sales.totals.new, sales.totals.buyers) == (2, 35000, 0, 2)
    assert (sales.previous.orders, sales.previous.new, sales.previous.buyers) == (1, 1, 1)
    assert sales.compare("revenue").change == pytest.approx(2.5)  # 350 against 100


def test_month_ends_are_clipped(base):
    march_31 = Period("month", date(2026, 3, 1), date(2026, 3, 31))
    assert march_31.previous() == Period("month", date(2026, 2, 1), date(2026, 2, 28))
    assert periods.preset("30", TODAY) == Period("30", date(2026, 2, 4), TODAY)
    assert periods.preset("30", TODAY).previous() == Period("30", date(2026, 1, 5), date(2026, 2, 3))


def test_average_check_per_segment_and_class(base):
    with db.session.no_autoflush:
        db.session.execute(db.update(Customer).where(Customer.name == "Alice").values(rfm=333, behaviour="frequent"))
        db.session.execute(db.update(Customer).where(Customer.name.in_(["Bob", "Carol"]))
                           .values(rfm=111, behaviour="one_off"))
    summaries.build(TODAY)
    groups = {row.key: row for row in metrics.sales(FEB).rfm_groups}
    assert (groups["champions"].orders.value, groups["champions"].revenue.value) == (2, 40000)
    assert groups["champions"].average_check.value == 20000
    assert (groups["lost"].orders.value, groups["lost"].average_check.value) == (2, 7500)
    assert groups["loyal"].average_check.value is None
    classes = {row.key: row for row in metrics.sales(FEB).classes}
    assert classes["frequent"].orders.value == 2 and classes["one_off"].revenue.value == 15000


def test_ltv_distribution_in_round_buckets(base):
    sales = metrics.sales(FEB)
    # Buyers spent 600, 200 and 200; the 95th percentile is 600, so buckets are 100 wide.
    assert sales.ltv_width == 10000
    assert sales.ltv == [0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]


def test_the_base_today_against_an_estimate_before_the_first_rebuild(base):
    month = periods.preset("month", TODAY)
    result = metrics.base(month)
    assert result.as_of == TODAY
    counts = {key: compare.value for key, compare in result.counts.items()}
    # Among the buyers: Dan (a cancelled order only) and Eve (no order) are leads, not counted.
    assert counts == {"buyers": 3, "active": 2, "lapsing": 0, "lapsed": 1, "in_sequence": 0, "responded": 0,
                      "inactive": 0}
    assert result.shares["lapsed"].value == pytest.approx(1 / 3)
    # 5 February, worked out from the orders: Carol (December) and Alice (1 February) had bought;
    # Carol's last order was 52 days before, past lapsing (30), not lapsed (60).
    assert result.previous_as_of == date(2026, 2, 5) and result.estimated
    previous = {key: compare.previous for key, compare in result.counts.items()}
    assert previous == {"buyers": 2, "active": 1, "lapsing": 1, "lapsed": 0, "in_sequence": 0, "responded": 0,
                        "inactive": 0}
    assert (result.new.value, result.new.previous) == (0, 1)


def test_a_real_night_replaces_the_estimate(base):
    summaries.build(date(2026, 3, 6))  # the next night
    assert not db.session.get(BaseDay, TODAY).estimated
    assert db.session.get(BaseDay, date(2026, 3, 6)).buyers == 3


def test_cohorts_follow_first_buyers_month_by_month(base):
    rows = {row.month: row for row in metrics.cohorts(TODAY)}
    assert list(rows)[0] == date(2025, 4, 1) and list(rows)[-1] == date(2026, 3, 1)
    december, february = rows[date(2025, 12, 1)], rows[date(2026, 2, 1)]
    assert december.size == 1 and december.retained[:3] == [(0, 0.0), (1, 1.0), (0, 0.0)]
    assert december.retained[3] is None  # April has not come yet
    assert february.size == 2 and february.retained[0] == (2, 1.0) and february.retained[1] is None
    assert rows[date(2026, 1, 1)].size == 0


def test_monthly_trends(base):
    months = {row.month: row for row in metrics.trends(TODAY)}
    february, march = months[date(2026, 2, 1)], months[date(2026, 3, 1)]
    assert (february.orders, february.revenue, february.new, february.returning) == (4, 55000, 2, 1)
    assert (march.orders, march.revenue, march.new, march.returning) == (2, 35000, 0, 2)
    assert months[date(2025, 12, 1)].new == 1
    assert march.lapsed_share == pytest.approx(1 / 3) and not march.estimated
    assert february.estimated and february.lapsed_share == 0.0  # on 28 Feb nobody had gone 60 days without buying


def test_an_empty_base_gives_zeros_not_errors(app):
    with app.app_context():
        summaries.build(TODAY)
        month = periods.preset("month", TODAY)
        sales = metrics.sales(month)
        assert sales.totals.orders == 0 and sales.totals.average_check is None
        assert sales.ltv == [0] * 11
        base = metrics.base(month)
        assert base.counts["buyers"].value == 0 and base.shares["lapsed"].value is None
        assert base.counts["buyers"].change is None
        assert all(row.size == 0 for row in metrics.cohorts(TODAY))
        assert all(row.orders == 0 for row in metrics.trends(TODAY))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kolkata", "America/Los_Angeles", "Europe/Moscow"])
def test_sqlite_days_follow_the_zone_across_its_changes(make_app, zone):
    """SQLite has no time zones: its day expression carries the zone's offsets (crm.summaries). Check
    it against Python at the minutes around daylight-saving changes, half-hour zones and Moscow's
    2011/2014 changes, and at the last microsecond of a day."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy import text

    app = make_app(TEAM_TIMEZONE=zone)
    tz = ZoneInfo(zone)
    moments = [datetime(2026, 3, 29, 0, 59, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
               datetime(2026, 10, 25, 0, 59, 59, 999999, tzinfo=UTC), datetime(2026, 3, 8, 10, 0, tzinfo=UTC),
               datetime(2026, 11, 1, 8, 30, tzinfo=UTC), datetime(2011, 3, 26, 22, 30, tzinfo=UTC),
               datetime(2014, 10, 25, 21, 30, tzinfo=UTC), datetime(2020, 2, 29, 18, 29, 59, 999999, tzinfo=UTC),
               datetime(2020, 2, 29, 18, 30, tzinfo=UTC), datetime(1999, 12, 31, 23, 0, tzinfo=UTC)]
    moments += [moment + timedelta(hours=hours) for moment in moments[:2] for hours in range(-26, 27, 5)]
    with app.app_context():
        expression = summaries.local_day_sql(":at")
        for moment in moments:
            stored = moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it on SQLite
            got = db.session.scalar(text(f"SELECT {expression}"), {"at": stored})  # noqa: S608
            assert got == moment.astimezone(tz).date().isoformat(), (zone, moment)


def test_same_day_repeat_orders_count_one_buyer(app):
    """Two orders of one customer on one day: two orders, one buyer, one new customer; the second
    order is a repeat purchase but never anyone's first in a period."""
    with app.app_context():
        zoe = customer("Zoe")
        order(zoe, utc(2026, 2, 3, 9), "10.00")
        order(zoe, utc(2026, 2, 3, 18), "30.00")
        order(zoe, utc(2026, 2, 9, 9), "20.00")
        summaries.build(TODAY)
        whole = summaries.totals(date(2026, 2, 1), date(2026, 2, 28))
        assert (whole.orders, whole.new, whole.buyers, whole.returning) == (3, 1, 1, 0)
        assert whole.repeat_share == pytest.approx(2 / 3)
        later = summaries.totals(date(2026, 2, 4), date(2026, 2, 28))  # only the 9th: a returning buyer
        assert (later.orders, later.new, later.buyers, later.returning) == (1, 0, 1, 1)


def test_a_missed_night_is_not_filled_with_an_estimate(app):
    """Estimates only go before the first recorded night; a night the worker missed stays a gap, and
    the panels read the last real night before it."""
    with app.app_context():
        order(customer("Zoe"), utc(2025, 6, 1, 9), "10.00")
        summaries.build(date(2026, 3, 1))
        summaries.build(date(2026, 3, 5))  # 2, 3 and 4 March were never recorded
        days = {row.day: row.estimated for row in db.session.scalars(db.select(BaseDay))}
        assert days[date(2026, 2, 28)] is True and days[date(2026, 3, 1)] is False
        assert date(2026, 3, 3) not in days and days[date(2026, 3, 5)] is False
        assert metrics.base(Period("custom", date(2026, 3, 3), date(2026, 3, 3))).as_of == date(2026, 3, 1)


def test_estimated_and_real_nights_count_the_same_people(base):
    """Both count the buyers (leads leave no trace in the past): the shares compare like with like."""
    row = db.session.get(BaseDay, TODAY)
    assert (row.customers, row.buyers) == (5, 3)  # Dan (a cancelled order) and Eve (none) are leads
    assert row.active + row.lapsing + row.lapsed + row.in_sequence + row.responded + row.inactive == row.buyers


def test_a_leap_year_month_and_far_dates():
    assert Period("month", date(2028, 3, 1), date(2028, 3, 30)).previous() == \
        Period("month", date(2028, 2, 1), date(2028, 2, 29))
    from werkzeug.datastructures import MultiDict

    for far in ("0001-01-01", "9999-12-31", "1899-12-31"):
        period, errors = periods.parse(MultiDict({"period": "custom", "from": far, "to": far}), TODAY)
        assert errors and period.key == periods.DEFAULT

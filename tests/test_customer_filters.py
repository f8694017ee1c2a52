"""The segment filters of the customers list: RFM cell and group, behaviour class, gender, age band,
spend and order ranges, products and categories among the favourites; the first-order and bought-on
day ranges in the team's calendar; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm import clock, customer_list, saved_segments
from crm.extensions import db
from crm.models import Behaviour, Customer, Role, Segment
from tests import servers
from tests.conftest import make_user, page_token, sign_in
from tests.factories import customer, order, utc
from tests.test_query_plans import _captured, _check_sqlite

TODAY = date(2026, 3, 1)


def _make_base():
    """Four customers with known figures; the segment columns are set by hand (no rebuild)."""
    anna = customer("Anna Ivanova", gender="female", birthday=date(1990, 3, 1), city="Moscow")
    order(anna, utc(2026, 1, 10), "100.00", items=[{"name": "Wine", "category": "Drinks", "quantity": 2}])
    order(anna, utc(2026, 2, 10), "300.00", items=[{"name": "Cheese", "category": "Food"}])
    boris = customer("Boris Petrov", gender="male", birthday=date(1990, 3, 2), city="Kazan")
    order(boris, utc(2025, 6, 1), "50.00", items=[{"name": "Bread", "category": "Food"}])
    clara = customer("Clara Smirnova", gender="female", birthday=date(2008, 2, 29))
    order(clara, utc(2024, 5, 1), "1234.50", items=[{"name": "Вино красное", "category": "Напитки"}])
    dmitry = customer("Dmitry Orlov")  # a lead: no orders, no segment
    db.session.flush()
    for person, cell, behaviour in ((anna, 333, Behaviour.FREQUENT), (boris, 212, Behaviour.ONE_OFF),
                                    (clara, 113, Behaviour.STOPPED)):
        person.rfm, person.behaviour = cell, behaviour
        person.r_score, person.f_score, person.m_score = cell // 100, cell // 10 % 10, cell % 10
    db.session.commit()
    return {"anna": anna.id, "boris": boris.id, "clara": clara.id, "dmitry": dmitry.id}


def _names(filters: customer_list.Filters) -> list[str]:
    page = customer_list.page(filters)
    return sorted(c.name for c in page.customers)


def _matching(args: dict) -> list[str]:
    return _names(customer_list.Filters.from_args(MultiDict(args)))


@pytest.fixture
def base(app, monkeypatch):
    monkeypatch.setattr(clock, "team_today", lambda: TODAY)
    with app.app_context():
        return _make_base()


CASES = [
    ({"rfm": "333"}, ["Anna Ivanova"]),
    ({"rfm": "113"}, ["Clara Smirnova"]),
    ({"rfm_group": "champions"}, ["Anna Ivanova"]),
    ({"rfm_group": "needs_attention"}, ["Boris Petrov"]),
    ({"rfm_group": "hibernating"}, ["Clara Smirnova"]),
    ({"rfm_group": "loyal"}, []),
    ({"behaviour": "stopped"}, ["Clara Smirnova"]),
    ({"behaviour": "one_off"}, ["Boris Petrov"]),
    ({"gender": "female"}, ["Anna Ivanova", "Clara Smirnova"]),
    ({"gender": "male", "city": "Kazan"}, ["Boris Petrov"]),
    # Anna turns 36 today; Boris turns 36 tomorrow; Clara (29 Feb 2008) turned 18 on 28 Feb.
    ({"age_from": "36"}, ["Anna Ivanova"]),
    ({"age_from": "35", "age_to": "35"}, ["Boris Petrov"]),
    ({"age_to": "18"}, ["Clara Smirnova"]),
    ({"age_to": "17"}, []),
    ({"spend_from": "400"}, ["Anna Ivanova", "Clara Smirnova"]),
    ({"spend_from": "1 234,50"}, ["Clara Smirnova"]),
    ({"spend_from": "1234.51"}, []),
    ({"spend_to": "50"}, ["Boris Petrov", "Dmitry Orlov"]),
    ({"spend_from": "10", "spend_to": "400.00"}, ["Anna Ivanova", "Boris Petrov"]),
    ({"orders_from": "2"}, ["Anna Ivanova"]),
    ({"orders_to": "0"}, ["Dmitry Orlov"]),
    ({"orders_from": "1", "orders_to": "1"}, ["Boris Petrov", "Clara Smirnova"]),
    ({"product": "Wine"}, ["Anna Ivanova"]),
    ({"product": " Bread "}, ["Boris Petrov"]),
    ({"product": "Вино красное"}, ["Clara Smirnova"]),
    ({"product": "Win"}, []),  # a whole name, not a prefix
    ({"category": "Food"}, ["Anna Ivanova", "Boris Petrov"]),
    ({"category": "Напитки", "gender": "female"}, ["Clara Smirnova"]),
    ({"category": "Food", "rfm_group": "champions", "spend_from": "100"}, ["Anna Ivanova"]),
]


@pytest.mark.parametrize("args, expected", CASES)
def test_segment_filters_pick_the_right_customers(app, base, args, expected):
    with app.app_context():
        assert _matching(args) == expected


@pytest.mark.postgres
def test_segment_filters_pick_the_same_customers_on_postgresql(pg_app, monkeypatch):
    monkeypatch.setattr(clock, "team_today", lambda: TODAY)
    with pg_app.app_context():
        _make_base()
        for args, expected in CASES:
            assert _matching(args) == expected, args
        # A JSON null in the favourites (not an array) must not break the containment check.
        db.session.execute(Customer.__table__.update().values(favourite_products=None))
        assert _matching({"product": "Wine"}) == []
        db.session.rollback()


def test_filters_round_trip_through_the_url(app):
    args = {"rfm": "233", "rfm_group": "at_risk", "behaviour": "periodic", "gender": "other", "age_from": "18",
            "age_to": "65", "spend_from": "1 000,5", "spend_to": "20000", "orders_from": "0", "orders_to": "3",
            "product": "Wine", "category": "Drinks"}
    with app.test_request_context():
        filters = customer_list.Filters.from_args(MultiDict(args))
        assert filters.spend_from == Decimal("1000.5") and filters.orders_from == 0
        assert filters.active
        out = filters.to_args()
        assert out["spend_from"] == "1000.5" and out["spend_to"] == "20000" and out["rfm"] == 233
        assert customer_list.Filters.from_args(MultiDict(out)) == filters


@pytest.mark.parametrize("query", [
    "rfm=334", "rfm=abc", "rfm=-1", "rfm_group=nope", "behaviour=x", "gender=robot", "age_from=-3", "age_to=999",
    "age_from=abc", "spend_from=abc", "spend_from=-5", "spend_from=1e999999", "spend_to=NaN", "spend_to=1.001",
    "orders_from=x", "orders_to=-1", "orders_to=99999999999999999999", "product=" + "x" * 500,
])
def test_nonsense_segment_filters_are_ignored_not_500(app, owner_client, base, query):
    response = owner_client.get(f"/customers?{query}")
    assert response.status_code == 200
    if not query.startswith("product"):
        assert response.get_data(as_text=True).count("Ivanova") >= 1  # the filter was dropped
    assert owner_client.get(f"/customers/count?{query}", headers={"HX-Request": "true"}).status_code == 200


def test_the_list_page_shows_the_filters_in_use_and_counts_them(owner_client, base):
    html = owner_client.get("/customers?behaviour=stopped&spend_from=100&product=Wine").get_data(as_text=True)
    assert '<details class="more-filters" open>' in html
    assert '<option value="stopped" selected>' in html
    assert 'name="spend_from" inputmode="decimal" value="100"' in html
    assert 'value="Wine"' in html
    assert "among their top 3" in html
    plain = owner_client.get("/customers").get_data(as_text=True)
    assert '<details class="more-filters" >' in plain or '<details class="more-filters">' in plain
    count = owner_client.get("/customers/count?gender=female", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "2 customers" in count


def test_a_cell_of_the_grid_opens_as_its_list_with_the_cell_chosen(owner_client, base):
    html = owner_client.get("/customers?rfm=333").get_data(as_text=True)
    assert "Anna Ivanova" in html and "Boris Petrov" not in html
    assert '<option value="333" selected>R3 F3 M3 · Champions</option>' in html


def test_a_big_rfm_group_walks_the_last_order_index_and_finds_the_same_rows(app, monkeypatch):
    with app.app_context():
        made = []
        for i in range(12):
            c = customer(f"Walker {i:02d}")
            order(c, utc(2026, 1, 1 + i), "10")
            made.append(c)
        db.session.flush()
        for i, c in enumerate(made):
            c.rfm = 333 if i % 2 else 331  # both champions
        db.session.commit()
        filters = customer_list.Filters(rfm_group="champions")
        by_group_index = customer_list.page(filters, size=5)
        monkeypatch.setattr(customer_list, "WALK_THRESHOLD", 3)
        assert customer_list._frequent_filter(filters)
        walked = customer_list.page(filters, size=5)
        assert walked.ids == by_group_index.ids == [c.id for c in reversed(made)][:5]
        second = customer_list.page(filters, walked.next_cursor, size=5)
        assert second.ids == [c.id for c in reversed(made)][5:10]
        # One cell with the default sort is served by its own (rfm, last order) index: no walk.
        assert not customer_list._frequent_filter(customer_list.Filters(rfm=333))
        # A spend range sorted by LTV reads the LTV index itself.
        assert not customer_list._frequent_filter(customer_list.Filters(spend_from=Decimal(1), sort="ltv"))
        assert customer_list._frequent_filter(customer_list.Filters(spend_from=Decimal(1)))


# --- first order and bought on: the team's calendar days ------------------------------------------
# Vladivostok is UTC+10 all year: 23:30 UTC on 31 January is already 1 February there, and
# 14:00 UTC is the team's midnight.

FAR_EAST = "Asia/Vladivostok"


def _make_dated_base():
    """Customers whose orders fall either side of the team's midnights at the end of a month."""
    anna = customer("Anna Ivanova")
    order(anna, utc(2025, 12, 10, 10), "10")
    order(anna, utc(2026, 2, 5, 3), "10")  # two orders in February: listed once
    order(anna, utc(2026, 2, 20, 3), "10")
    boris = customer("Boris Petrov")
    order(boris, utc(2026, 1, 31, 23, 30), "10")  # 1 February 09:30 for the team (31 January in UTC)
    clara = customer("Clara Smirnova")
    order(clara, utc(2026, 1, 31, 13, 59), "10")  # 31 January 23:59 for the team
    dmitry = customer("Dmitry Orlov")
    order(dmitry, utc(2025, 11, 1, 3), "10")
    order(dmitry, utc(2026, 2, 10, 3), "10", status="refunded")  # neither counts as bought
    order(dmitry, utc(2026, 2, 11, 3), "10", status="cancelled")
    elena = customer("Elena Sokolova")
    order(elena, utc(2025, 10, 1, 3), "10")
    order(elena, utc(2026, 2, 28, 14, 30), "10")  # 1 March 00:30 for the team (28 February in UTC)
    fedor = customer("Fedor Kuznetsov")
    order(fedor, utc(2026, 2, 28, 13, 30), "10")  # 28 February 23:30 for the team
    lida = customer("Lida Popova")
    order(lida, utc(2026, 1, 31, 14), "10")  # the team's midnight: 1 February 00:00
    customer("Galina Volkova")  # no orders
    db.session.commit()


@pytest.fixture
def far_east(make_app):
    """An app whose team works in Vladivostok, with the dated customers in its database."""
    app = make_app(TEAM_TIMEZONE=FAR_EAST)
    with app.app_context():
        db.create_all()
        _make_dated_base()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def far_east_client(far_east):
    owner = make_user(far_east, "owner@example.com", Role.OWNER, "Olga Owner")
    client = far_east.test_client()
    assert sign_in(client, owner.email).status_code == 302
    return client


FEBRUARY = {"bought_from": "2026-02-01", "bought_to": "2026-02-28"}
DATED_CASES = [
    ({"first_from": "2026-02-01", "first_to": "2026-02-28"}, ["Boris Petrov", "Fedor Kuznetsov", "Lida Popova"]),
    ({"first_from": "2026-02-01"}, ["Boris Petrov", "Fedor Kuznetsov", "Lida Popova"]),
    ({"first_from": "2026-01-31", "first_to": "2026-01-31"}, ["Clara Smirnova"]),
    ({"first_to": "2026-01-31"}, ["Anna Ivanova", "Clara Smirnova", "Dmitry Orlov", "Elena Sokolova"]),
    ({"first_from": "2026-03-01"}, []),
    (FEBRUARY, ["Anna Ivanova", "Boris Petrov", "Fedor Kuznetsov", "Lida Popova"]),
    ({"bought_from": "2026-03-01", "bought_to": "2026-03-31"}, ["Elena Sokolova"]),
    ({"bought_from": "2026-02-28", "bought_to": "2026-02-28"}, ["Fedor Kuznetsov"]),
    ({"bought_to": "2026-01-31"}, ["Anna Ivanova", "Clara Smirnova", "Dmitry Orlov", "Elena Sokolova"]),
    ({"bought_from": "2026-02-10", "bought_to": "2026-02-11"}, []),  # only a refund and a cancellation
    ({"bought_from": "2026-02-06", "bought_to": "2026-02-19"}, []),  # between Anna's two orders
    # New buyers of February: bought then, and bought for the first time then.
    ({**FEBRUARY, "first_from": "2026-02-01"}, ["Boris Petrov", "Fedor Kuznetsov", "Lida Popova"]),
    ({**FEBRUARY, "first_to": "2026-01-31"}, ["Anna Ivanova"]),
    # The last order's days are the team's too.
    ({"last_to": "2026-01-31"}, ["Clara Smirnova", "Dmitry Orlov"]),
    ({"last_from": "2026-03-01"}, ["Elena Sokolova"]),
]


@pytest.mark.parametrize("args, expected", DATED_CASES)
def test_order_day_filters_use_the_teams_calendar(far_east, args, expected):
    with far_east.app_context():
        assert _matching(args) == expected
        assert customer_list.count(customer_list.Filters.from_args(MultiDict(args))) == (len(expected), False)


@pytest.mark.postgres
def test_order_day_filters_pick_the_same_customers_on_postgresql(make_app, postgres_admin_url):
    url = servers.create_database(postgres_admin_url, f"crm_{uuid.uuid4().hex[:10]}")
    app = make_app(SQLALCHEMY_DATABASE_URI=url.replace("postgresql://", "postgresql+psycopg://"),
                   TEAM_TIMEZONE=FAR_EAST)
    with app.app_context():
        db.create_all()
        _make_dated_base()
        for args, expected in DATED_CASES:
            assert _matching(args) == expected, args
            assert customer_list.count(customer_list.Filters.from_args(MultiDict(args)))[0] == len(expected), args
        db.engine.dispose()


def test_a_team_west_of_utc_counts_an_evening_order_on_its_own_day(make_app):
    """In Los Angeles 03:30 UTC on 1 March is still 28 February; after the clocks go forward on
    8 March, the team's midnight is 07:00 UTC, not 08:00."""
    app = make_app(TEAM_TIMEZONE="America/Los_Angeles")
    with app.app_context():
        db.create_all()
        olga = customer("Olga Evening")
        order(olga, utc(2026, 3, 1, 3, 30), "10")
        pavel = customer("Pavel Late")
        order(pavel, utc(2025, 5, 1), "10")
        order(pavel, utc(2026, 3, 9, 6, 30), "10")  # 8 March 23:30 PDT
        rita = customer("Rita Early")
        order(rita, utc(2026, 3, 9, 7, 30), "10")  # 9 March 00:30 PDT
        db.session.commit()
        assert _matching({"first_from": "2026-02-01", "first_to": "2026-02-28"}) == ["Olga Evening"]
        assert _matching({"bought_from": "2026-03-01", "bought_to": "2026-03-08"}) == ["Pavel Late"]
        assert _matching({"bought_from": "2026-03-09", "bought_to": "2026-03-09"}) == ["Rita Early"]
        assert _matching({"first_from": "2026-03-09"}) == ["Rita Early"]
        db.engine.dispose()


def test_a_customer_with_several_orders_in_the_range_is_one_row_on_every_page(far_east):
    with far_east.app_context():
        filters = customer_list.Filters.from_args(MultiDict(FEBRUARY))
        first = customer_list.page(filters, size=2)
        second = customer_list.page(filters, first.next_cursor, size=2)
        assert second.next_cursor is None
        names = [c.name for c in first.customers + second.customers]
        # Newest last order first: Fedor's 28 February, Anna's 20 February, Boris and Lida on 1 February.
        assert names == ["Fedor Kuznetsov", "Anna Ivanova", "Boris Petrov", "Lida Popova"]
        by_name = customer_list.page(customer_list.Filters.from_args(MultiDict({**FEBRUARY, "sort": "name",
                                                                                 "dir": "asc"})), size=3)
        assert [c.name for c in by_name.customers] == ["Anna Ivanova", "Boris Petrov", "Fedor Kuznetsov"]


def test_order_day_filters_round_trip_through_the_url(app):
    args = {"first_from": "2026-02-01", "first_to": "2026-02-28", "bought_from": "2026-01-31",
            "bought_to": "2026-03-01"}
    with app.test_request_context():
        filters = customer_list.Filters.from_args(MultiDict(args))
        assert filters.first_from == date(2026, 2, 1) and filters.bought_to == date(2026, 3, 1)
        assert filters.active
        assert filters.to_args() == args
        assert customer_list.Filters.from_args(MultiDict(filters.to_args())) == filters


def test_the_list_page_shows_the_order_day_filters_and_counts_them(far_east_client):
    html = far_east_client.get("/customers?first_from=2026-02-01&bought_from=2026-02-01&bought_to=2026-02-28"
                               ).get_data(as_text=True)
    assert '<details class="more-filters" open>' in html
    assert 'name="first_from" value="2026-02-01"' in html and 'name="first_to" value=""' in html
    assert 'name="bought_from" value="2026-02-01"' in html and 'name="bought_to" value="2026-02-28"' in html
    assert "First order from" in html and "Bought between" in html
    for name in ("Boris Petrov", "Fedor Kuznetsov", "Lida Popova"):
        assert name in html
    assert "Anna Ivanova" not in html
    # Sorting and "save as segment" carry the filters along.
    assert "first_from=2026-02-01" in html and '<input type="hidden" name="bought_to" value="2026-02-28">' in html
    count = far_east_client.get("/customers/count?bought_from=2026-02-01&bought_to=2026-02-28",
                                headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "4 customers" in count
    # Taking the filter off (an emptied date field) lists everyone again.
    html = far_east_client.get("/customers?first_from=&bought_from=&bought_to=").get_data(as_text=True)
    assert "Galina Volkova" in html and "Clear filters" not in html


def test_a_segment_keeps_the_order_day_filters(far_east, far_east_client):
    token = page_token(far_east_client, "/customers")
    response = far_east_client.post("/segments/", data={"name": "February buyers", "csrf_token": token, **FEBRUARY,
                                                        "first_from": "2026-02-01"},
                                    headers={"HX-Request": "true"})
    assert "Saved as “February buyers”." in response.get_data(as_text=True)
    with far_east.app_context():
        segment = db.session.scalar(select(Segment).where(Segment.name == "February buyers"))
        assert segment.filters == {**FEBRUARY, "first_from": "2026-02-01"}
        ids = set(db.session.scalars(saved_segments.customer_ids_query(segment)))
        assert {db.session.get(Customer, i).name for i in ids} == {"Boris Petrov", "Fedor Kuznetsov", "Lida Popova"}
    listing = far_east_client.get("/segments/").get_data(as_text=True)
    assert "Bought between Feb 1, 2026 and Feb 28, 2026" in listing and "First order from Feb 1, 2026" in listing
    assert "bought_from=2026-02-01" in listing


@pytest.mark.parametrize("query", [
    "first_from=2026-02-30", "first_to=abc", "bought_from=2026-13-01", "bought_to=31.01.2026",
    "bought_to=9999-12-31", "first_from=0001-01-01", "bought_from=0001-01-02&bought_to=9999-12-30",
    "first_to=" + "9" * 300,
])
def test_nonsense_order_days_are_ignored_not_500(far_east_client, query):
    response = far_east_client.get(f"/customers?{query}")
    assert response.status_code == 200
    assert "Galina Volkova" in response.get_data(as_text=True)  # the filter was dropped
    assert far_east_client.get(f"/customers/count?{query}", headers={"HX-Request": "true"}).status_code == 200


def test_order_day_filters_read_through_indexes(far_east, far_east_client):
    """The bought-on check is a range of the orders' (customer, placed_at, ...) index per customer,
    and the customers read are a range of the last-order index, never the whole table."""
    paths = ["/customers?bought_from=2026-02-01&bought_to=2026-02-28",
             "/customers?bought_from=2026-02-01&bought_to=2026-02-28&sort=name&dir=asc",
             "/customers?first_from=2026-02-01&first_to=2026-02-28",
             "/customers?first_from=2026-02-01&status=active&sort=ltv",
             "/customers/count?bought_from=2026-02-01&bought_to=2026-02-28",
             "/customers/count?first_from=2026-02-01"]
    statements = _captured(far_east, far_east_client, paths)
    _check_sqlite(far_east, statements)
    with far_east.app_context():
        plans = ["\n".join(row[3] for row in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                                                     params))
                 for sql, params in statements if "placed_at" in sql]
    assert plans and all("SEARCH orders USING COVERING INDEX ix_orders_customer_placed_status_amount "
                         "(customer_id=? AND placed_at>? AND placed_at<?)" in plan for plan in plans), plans

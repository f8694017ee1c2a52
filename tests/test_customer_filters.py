"""The segment filters of the customers list: RFM cell and group, behaviour class, gender, age band,
spend and order ranges, products and categories among the favourites; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from werkzeug.datastructures import MultiDict

from crm import clock, customer_list
from crm.extensions import db
from crm.models import Behaviour, Customer
from tests.factories import customer, order, utc

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

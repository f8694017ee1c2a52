"""Customers: the list (search, filters, sorting, paging), the card, inline edits, new, merge, export."""

from __future__ import annotations

import csv
import io

import pytest

from crm import customer_list
from crm.extensions import db
from crm.models import Customer, Interaction, Kind, Order
from tests.conftest import page_token, reload
from tests.factories import customer, order, utc


@pytest.fixture
def base(app):
    """Three customers with orders, contacts and tags, made through the domain."""
    with app.app_context():
        anna = customer("Anna Ivanova", emails=["anna@example.com"], phones=["+7 916 123-45-67"], tags=["vip", "wine"],
                        city="Moscow")
        order(anna, utc(2026, 1, 10), "100.00", items=[{"name": "Wine", "category": "Drinks"}])
        order(anna, utc(2026, 2, 10), "300.00", items=[{"name": "Wine", "category": "Drinks"}])
        boris = customer("Boris Petrov", emails=["boris@example.com"], city="Kazan")
        order(boris, utc(2025, 6, 1), "50.00")
        clara = customer("<script>alert(1)</script> Clara", phones=["+7 903 000-11-22"])
        db.session.commit()
        return {"anna": anna.id, "boris": boris.id, "clara": clara.id}


def _names(html: str) -> list[str]:
    return [n for n in ("Anna Ivanova", "Boris Petrov", "Clara") if n in html]


def test_list_shows_customers_newest_order_first_and_customers_without_orders_last(owner_client, base):
    html = owner_client.get("/customers").get_data(as_text=True)
    assert html.index("Anna Ivanova") < html.index("Boris Petrov") < html.index("Clara")


@pytest.mark.parametrize("q, expected", [
    ("ann", ["Anna Ivanova"]),
    ("ivanova", ["Anna Ivanova"]),
    ("anna iva", ["Anna Ivanova"]),
    ("boris@example", ["Boris Petrov"]),
    ("+7 916 123", ["Anna Ivanova"]),
    ("9161234567", ["Anna Ivanova"]),
    ("wine", ["Anna Ivanova"]),
    ("zzz", []),
])
def test_search_as_you_type_finds_by_name_phone_email_and_tag(owner_client, base, q, expected):
    response = owner_client.get("/customers", query_string={"q": q}, headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "<html" not in html  # htmx gets the results alone
    assert _names(html) == expected
    assert "HX-Request" in response.headers["Vary"]


def test_filters_combine_and_the_url_round_trips(owner_client, base):
    html = owner_client.get("/customers?city=Kazan").get_data(as_text=True)
    assert _names(html) == ["Boris Petrov"]
    html = owner_client.get("/customers?tag=vip&last_from=2026-01-01").get_data(as_text=True)
    assert _names(html) == ["Anna Ivanova"]
    html = owner_client.get("/customers?last_to=2025-12-31").get_data(as_text=True)
    assert _names(html) == ["Boris Petrov"]
    assert 'value="Kazan"' in owner_client.get("/customers?city=Kazan").get_data(as_text=True)


def test_nonsense_filters_are_ignored_not_500(owner_client, base):
    for query in ("status=nope", "stage=abc", "manager=x", "last_from=2026-13-45", "sort=drop+table", "after=garbage"):
        assert owner_client.get(f"/customers?{query}").status_code == 200, query


def test_sorting_by_name_and_ltv(owner_client, base):
    html = owner_client.get("/customers?sort=name&dir=asc").get_data(as_text=True)
    assert html.index("&lt;script&gt;") < html.index("Anna Ivanova") < html.index("Boris Petrov")
    html = owner_client.get("/customers?sort=ltv").get_data(as_text=True)
    assert html.index("Anna Ivanova") < html.index("Boris Petrov")


def test_html_in_a_name_is_shown_as_text(owner_client, base):
    html = owner_client.get("/customers").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Clara" in html
    card = owner_client.get(f"/customers/{base['clara']}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in card


def test_keyset_paging_walks_every_customer_once_in_each_sort(app):
    with app.app_context():
        made = []
        for i in range(23):
            c = customer(f"Person {i:02d}")
            if i % 3:
                order(c, utc(2026, 1, 1 + i % 5), str(10 + i % 4))  # ties on date and amount
            made.append(c.id)
        db.session.commit()
        for sort in customer_list.SORTS:
            for desc in (True, False):
                filters = customer_list.Filters(sort=sort, desc=desc)
                seen, cursor = [], None
                while True:
                    result = customer_list.page(filters, cursor, size=5)
                    seen += [c.id for c in result.customers]
                    if not result.next_cursor:
                        break
                    cursor = result.next_cursor
                assert sorted(seen) == sorted(made), (sort, desc)
                assert len(seen) == len(set(seen)), (sort, desc)


def test_show_more_appends_the_next_rows(owner_client, app):
    with app.app_context():
        for i in range(55):
            customer(f"Many {i:02d}")
        db.session.commit()
    html = owner_client.get("/customers?sort=name&dir=asc").get_data(as_text=True)
    assert "Many 49" in html and "Many 50" not in html
    link = html.split('class="more-row"')[1].split('hx-get="')[1].split('"')[0].replace("&amp;", "&")
    more = owner_client.get(link, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Many 50" in more and "Many 54" in more and "Many 49" not in more
    assert "<table" not in more


def test_count_is_capped_instead_of_counting_the_whole_base(app, owner_client, base):
    assert "3 customers" in owner_client.get("/customers/count", headers={"HX-Request": "true"}).get_data(as_text=True)
    with app.app_context():
        assert customer_list.count(customer_list.Filters(), cap=2) == (2, True)


def test_card_gathers_contacts_figures_orders_and_timeline(owner_client, base):
    html = owner_client.get(f"/customers/{base['anna']}").get_data(as_text=True)
    for expected in ("Anna Ivanova", "anna@example.com", "+7 916 123-45-67", 'href="tel:+79161234567"', "Moscow",
                     "Wine", "Drinks", "Timeline", "Customer added"):
        assert expected in html, expected
    assert "$400.00" in html  # LTV
    assert "$200.00" in html  # average check
    assert "31.0 days" in html  # usual interval: Jan 10 -> Feb 10


def test_unknown_customer_is_404(owner_client):
    assert owner_client.get("/customers/9999").status_code == 404
    assert owner_client.get("/customers/9999/fields/name/edit").status_code == 404


def test_inline_edit_saves_and_records_the_change_on_the_timeline(app, owner_client, base):
    cid = base["boris"]
    form = owner_client.get(f"/customers/{cid}/fields/city/edit", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'name="value"' in form and 'value="Kazan"' in form
    token = page_token(owner_client, f"/customers/{cid}")
    response = owner_client.post(f"/customers/{cid}/fields/city", data={"value": "Samara", "version": "1"},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    assert "Samara" in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "customer-changed"
    assert reload(app, Customer, cid).city == "Samara"
    with app.app_context():
        entry = db.session.scalars(db.select(Interaction).where(Interaction.customer_id == cid,
                                                                Interaction.kind == Kind.EDIT)).one()
        assert entry.data == {"field": "city", "before": "Kazan", "after": "Samara"}


@pytest.mark.parametrize("field, value, message", [
    ("email", "not-an-email", "valid email"),
    ("phone", "12", "valid phone"),
    ("name", "   ", "Enter a name"),
    ("birthday", "2999-01-01", "real date of birth"),
    ("gender", "robot", "offered values"),
])
def test_bad_input_is_refused_on_the_field_and_nothing_is_lost(app, owner_client, base, field, value, message):
    cid = base["anna"]
    token = page_token(owner_client, f"/customers/{cid}")
    before = reload(app, Customer, cid).version
    response = owner_client.post(f"/customers/{cid}/fields/{field}", data={"value": value, "version": before},
                                 headers={"HX-Request": "true", "X-CSRFToken": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert f'value="{value}"' in html or value.strip() == "" or field == "gender"  # what was typed stays
    assert reload(app, Customer, cid).version == before


def test_without_javascript_a_refused_field_comes_back_on_the_whole_card_with_what_was_typed(app, owner_client, base):
    cid = base["anna"]
    token = page_token(owner_client, f"/customers/{cid}")
    response = owner_client.post(f"/customers/{cid}/fields/email", data={"value": "not an email", "version": "1",
                                                                        "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<html" in html and "valid email" in html
    assert 'value="not an email"' in html


def test_an_edit_from_a_stale_tab_is_refused_with_a_reload_message(app, owner_client, base):
    cid = base["boris"]
    token = page_token(owner_client, f"/customers/{cid}")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    assert owner_client.post(f"/customers/{cid}/fields/city", data={"value": "Tab A", "version": "1"},
                             headers=headers).status_code == 200
    response = owner_client.post(f"/customers/{cid}/fields/city", data={"value": "Tab B", "version": "1"},
                                 headers=headers)
    assert response.status_code == 409
    assert "Reload the page" in response.get_data(as_text=True)
    assert reload(app, Customer, cid).city == "Tab A"


def test_notes_and_calls_land_on_the_timeline(owner_client, base):
    cid = base["anna"]
    token = page_token(owner_client, f"/customers/{cid}")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    html = owner_client.post(f"/customers/{cid}/notes", data={"body": "Prefers <b>red</b>"},
                             headers=headers).get_data(as_text=True)
    assert "Prefers &lt;b&gt;red&lt;/b&gt;" in html
    response = owner_client.post(f"/customers/{cid}/notes", data={"body": "  "}, headers=headers)
    assert response.status_code == 422 and "Write something first." in response.get_data(as_text=True)
    html = owner_client.post(f"/customers/{cid}/calls", data={"outcome": "no_answer", "note": "busy"},
                             headers=headers).get_data(as_text=True)
    assert "Call: No answer — busy" in html


def test_new_customer_form_creates_and_refuses_duplicates(app, owner_client, base):
    token = page_token(owner_client, "/customers/new")
    response = owner_client.post("/customers/new", data={
        "csrf_token": token, "name": "Dora", "email": "Dora@Example.com", "phone": "8 (916) 555-44-33",
        "consent_email": "y"})
    assert response.status_code == 302
    with app.app_context():
        dora = db.session.scalars(db.select(Customer).where(Customer.name == "Dora")).one()
        assert {c.value for c in dora.contacts} == {"dora@example.com", "+79165554433"}
        assert dora.consent_for(dora.consents[0].channel).granted
    response = owner_client.post("/customers/new",
                                 data={"csrf_token": token, "name": "Again", "email": "anna@example.com"})
    assert response.status_code == 422
    assert "already belongs to a customer" in response.get_data(as_text=True)
    response = owner_client.post("/customers/new", data={"csrf_token": token, "name": "Bad", "phone": "123"})
    assert response.status_code == 422 and "valid phone" in response.get_data(as_text=True)


def test_merge_moves_orders_timeline_and_contacts_and_removes_the_duplicate(app, owner_client, base):
    keep, drop = base["anna"], base["boris"]
    html = owner_client.get(f"/customers/{keep}/merge?q=boris").get_data(as_text=True)
    assert "Boris Petrov" in html
    token = page_token(owner_client, f"/customers/{keep}/merge?other={drop}")
    response = owner_client.post(f"/customers/{keep}/merge", data={"csrf_token": token, "other": drop})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Customer, drop) is None
        kept = db.session.get(Customer, keep)
        assert kept.order_count == 3 and kept.total_spent == 45000
        assert {c.value for c in kept.contacts} >= {"anna@example.com", "boris@example.com"}
        assert db.session.scalar(db.select(db.func.count(Order.id)).where(Order.customer_id == keep)) == 3
        merged = db.session.scalars(db.select(Interaction).where(Interaction.customer_id == keep,
                                                                 Interaction.kind == Kind.MERGE)).one()
        assert merged.data["merged_name"] == "Boris Petrov"
    assert owner_client.get(f"/customers/{drop}").status_code == 404


def test_bulk_assign_manager_to_selected_customers(app, owner_client, manager, base):
    token = page_token(owner_client, "/customers")
    response = owner_client.post("/customers/bulk/manager", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "manager_id": manager.id, "ids": [base["anna"], base["boris"]]})
    assert "2 customers assigned." in response.get_data(as_text=True)
    assert reload(app, Customer, base["anna"]).manager_id == manager.id
    assert reload(app, Customer, base["clara"]).manager_id is None
    html = owner_client.get(f"/customers?manager={manager.id}").get_data(as_text=True)
    assert _names(html) == ["Anna Ivanova", "Boris Petrov"]


def test_export_is_owner_only_utf8_bom_and_formula_safe(app, owner_client, manager_client, base):
    with app.app_context():
        db.session.get(Customer, base["boris"]).city = "=HYPERLINK(\"http://x\")"
        db.session.commit()
    assert manager_client.get("/customers/export.csv").status_code == 403
    response = owner_client.get("/customers/export.csv?sort=name&dir=asc")
    body = response.get_data()
    assert response.mimetype == "text/csv" and body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:2] == ["id", "name"] and len(rows) == 4
    boris = next(r for r in rows if r[1] == "Boris Petrov")
    assert boris[6] == "'=HYPERLINK(\"http://x\")"
    anna = next(r for r in rows if r[1] == "Anna Ivanova")
    assert anna[3] == "'+79161234567"  # a leading + would be read as a formula too
    filtered = list(csv.reader(io.StringIO(owner_client.get("/customers/export.csv?city=Moscow").get_data()
                                           .decode("utf-8-sig"))))
    assert [r[1] for r in filtered[1:]] == ["Anna Ivanova"]


def test_fragment_urls_render_a_whole_page_when_opened_directly(owner_client, base):
    cid = base["anna"]
    for path in (f"/customers/{cid}/timeline", f"/customers/{cid}/header", f"/customers/{cid}/orders",
                 f"/customers/{cid}/fields/city"):
        response = owner_client.get(path, follow_redirects=True)
        assert response.status_code == 200 and "<html" in response.get_data(as_text=True), path
    response = owner_client.get("/customers/count?city=Kazan")
    assert response.status_code == 302 and response.location == "/customers?city=Kazan"


def test_a_frequent_filter_walks_the_sort_index_and_finds_the_same_rows(app, monkeypatch):
    with app.app_context():
        for i in range(12):
            c = customer(f"Walker {i:02d}", city="Boston" if i % 4 else "Salem")
            order(c, utc(2026, 1, 1 + i), str(10 + (i * 7) % 5))
        db.session.commit()
        filters = customer_list.Filters(city="Boston", sort="ltv")
        by_filter_index = customer_list.page(filters, size=4)
        monkeypatch.setattr(customer_list, "WALK_THRESHOLD", 3)
        assert customer_list._frequent_filter(filters)
        walked = customer_list.page(filters, size=4)
        assert walked.ids == by_filter_index.ids
        second = customer_list.page(filters, walked.next_cursor, size=4)
        assert set(second.ids).isdisjoint(walked.ids) and len(second.ids) == 4
        assert not customer_list._frequent_filter(customer_list.Filters(city="Salem", sort="ltv"))

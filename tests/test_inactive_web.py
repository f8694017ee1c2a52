"""The inactive list page: listing, filters, keyset paging, restoring with a note, the owner's CSV
export (formulas neutralised) and erasing personal data behind a confirmation."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from crm import inactive
from crm.extensions import db
from crm.models import Contact, Customer, Interaction, Kind, Order, Role, Status
from tests.conftest import make_user, page_token, sign_in
from tests.factories import customer, order, utc

HX = {"HX-Request": "true"}
START = utc(2024, 3, 1, 12)


def _inactive(app, name: str, how: str = "manager", reason: str = "Asked to stop", days: int = 0,
              orders: tuple[str, ...] = (), **fields) -> int:
    """A customer (with paid orders of these amounts) moved to the inactive list `days` after START; their id."""
    with app.app_context():
        person = customer(name, **fields)
        for number, amount in enumerate(orders):
            order(person, utc(2023, 12, 1 + number), amount)
        inactive.move(person, how, reason, None, now=START + timedelta(days=days))
        db.session.commit()
        return person.id


def _active(app, name: str, **fields) -> int:
    with app.app_context():
        person = customer(name, **fields)
        db.session.commit()
        return person.id


def _get(app, ident: int) -> Customer:
    with app.app_context():
        found = db.session.get(Customer, ident)
        db.session.expunge_all()
        return found


def _count(app, model, ident: int) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(model.customer_id == ident))


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="/customers/\d+">([^<]+)</a></td>', html)


def test_both_roles_see_the_list_with_reason_how_and_since(app, owner_client, manager_client):
    _inactive(app, "Anna Ivanova", how="no_response", reason="No answer to “Win back”", days=3)
    _inactive(app, "Boris Petrov", how="bounces", reason="Every contact bounced", days=5)
    _active(app, "Still Active")
    for client in (owner_client, manager_client):
        response = client.get("/inactive")
        assert response.status_code == 200
        html = response.text
        assert _names(html) == ["Boris Petrov", "Anna Ivanova"]  # most recently moved first
        assert "No answer to “Win back”" in html and "No response to a sequence" in html
        assert "Unreachable on every channel" in html and "Mar 6, 2024" in html
        assert "2 customers on the inactive list" in html
        assert "Still Active" not in html
    assert 'href="/inactive"' in owner_client.get("/dashboard").text


def test_empty_list_says_who_lands_here(app, manager_client):
    html = manager_client.get("/inactive").text
    assert "Nobody is on the inactive list" in html and "<table" not in html


def test_filters_by_how_and_name_prefix(app, manager_client):
    _inactive(app, "Anna Ivanova", how="no_response")
    _inactive(app, "Anton Smirnov", how="manager", days=1)
    _inactive(app, "Boris Petrov", how="manager", days=2)
    assert _names(manager_client.get("/inactive?how=manager").text) == ["Boris Petrov", "Anton Smirnov"]
    assert _names(manager_client.get("/inactive?q=an").text) == ["Anton Smirnov", "Anna Ivanova"]
    html = manager_client.get("/inactive?q=an&how=manager", headers=HX).text
    assert _names(html) == ["Anton Smirnov"] and "<html" not in html  # htmx gets the results alone
    assert "1 customer on the inactive list" in html
    html = manager_client.get("/inactive?q=zz").text
    assert "Nobody on the inactive list matches these filters." in html
    # An unknown "how" is ignored rather than refused.
    assert manager_client.get("/inactive?how=<script>").status_code == 200


@pytest.fixture
def west_coast(make_app):
    """A team in Los Angeles (UTC-8, UTC-7 from 10 March 2024) with customers moved to the list
    either side of its midnights at the ends of February (a leap year) and March; signed in as owner."""
    app = make_app(TEAM_TIMEZONE="America/Los_Angeles")
    with app.app_context():
        db.create_all()
        for name, moved_at in (("Leap Day", utc(2024, 3, 1, 7, 30)),  # 29 February 23:30 there
                               ("March First", utc(2024, 3, 1, 8)),  # 1 March 00:00
                               ("March Last", utc(2024, 4, 1, 6, 59)),  # 31 March 23:59 (summer time)
                               ("April First", utc(2024, 4, 1, 7))):  # 1 April 00:00
            inactive.move(customer(name), "manager", "Asked to stop", None, now=moved_at)
        db.session.commit()
    owner = make_user(app, "owner@example.com", Role.OWNER, "Olga Owner")
    client = app.test_client()
    assert sign_in(client, owner.email).status_code == 302
    yield client
    with app.app_context():
        db.engine.dispose()


def test_filters_by_the_team_days_a_customer_was_moved_to_the_list(west_coast, monkeypatch):
    html = west_coast.get("/inactive?since_from=2024-03-01&since_to=2024-03-31").text
    assert _names(html) == ["March Last", "March First"]
    assert "2 customers on the inactive list" in html
    assert 'name="since_from" value="2024-03-01"' in html and 'name="since_to" value="2024-03-31"' in html
    assert "Moved to the list from" in html and "Clear filters" in html
    assert _names(west_coast.get("/inactive?since_to=2024-02-29").text) == ["Leap Day"]
    assert _names(west_coast.get("/inactive?since_from=2024-04-01").text) == ["April First"]
    html = west_coast.get("/inactive?since_from=2024-02-29&since_to=2024-02-29&how=manager", headers=HX).text
    assert _names(html) == ["Leap Day"] and "1 customer on the inactive list" in html
    # Paging, the restore form and the export keep the days.
    monkeypatch.setattr(inactive, "PAGE_SIZE", 1)
    html = west_coast.get("/inactive?since_from=2024-03-01&since_to=2024-03-31").text
    link = re.search(r'hx-get="(/inactive\?after=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "since_from=2024-03-01" in link and "since_to=2024-03-31" in link
    assert _names(west_coast.get(link, headers=HX).text) == ["March First"]
    restore = re.search(r'hx-get="(/inactive/\d+/restore[^"]*)"', html).group(1).replace("&amp;", "&")
    form = west_coast.get(restore, headers=HX).text
    assert '<input type="hidden" name="since_from" value="2024-03-01">' in form
    rows = _csv_rows(west_coast.get("/inactive/export.csv?since_from=2024-03-01&since_to=2024-03-31"))
    assert [row[1] for row in rows[1:]] == ["March Last", "March First"]


@pytest.mark.parametrize("query", ["since_from=2024-02-30", "since_to=x", "since_from=9999-12-31",
                                   "since_to=0001-01-01", "since_from=" + "1" * 300])
def test_nonsense_days_on_the_inactive_list_are_ignored_not_500(west_coast, query):
    response = west_coast.get(f"/inactive?{query}")
    assert response.status_code == 200 and len(_names(response.text)) == 4
    assert west_coast.get(f"/inactive/export.csv?{query}").status_code == 200


def test_keyset_paging_walks_every_row_once_even_with_equal_dates(app, manager_client, monkeypatch):
    monkeypatch.setattr(inactive, "PAGE_SIZE", 2)
    for number, days in enumerate((0, 1, 1, 1, 2)):
        _inactive(app, f"Customer {number}", days=days)
    html = manager_client.get("/inactive").text
    seen = _names(html)
    assert "5 customers on the inactive list" in html
    while True:
        more = re.search(r'hx-get="(/inactive\?after=[^"]+)"', html)
        if not more:
            break
        html = manager_client.get(more.group(1).replace("&amp;", "&"), headers=HX).text
        assert "<table" not in html  # only the next rows
        seen += _names(html)
    assert seen == ["Customer 4", "Customer 3", "Customer 2", "Customer 1", "Customer 0"]
    # A mangled cursor starts over instead of failing.
    for cursor in ("x", "99999999999999999999999.1", "1.-5", "1.99999999999999999999"):
        assert manager_client.get(f"/inactive?after={cursor}").status_code == 200


def test_paging_keeps_the_filters(app, manager_client, monkeypatch):
    monkeypatch.setattr(inactive, "PAGE_SIZE", 1)
    _inactive(app, "Anna Ivanova", how="manager")
    _inactive(app, "Boris Petrov", how="bounces", days=1)
    _inactive(app, "Anton Smirnov", how="manager", days=2)
    html = manager_client.get("/inactive?how=manager").text
    link = re.search(r'hx-get="(/inactive\?after=[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "how=manager" in link
    assert _names(manager_client.get(link, headers=HX).text) == ["Anna Ivanova"]


def test_restore_needs_a_note_shown_on_the_field(app, manager_client):
    ident = _inactive(app, "Anna Ivanova")
    token = page_token(manager_client, "/inactive")
    form = manager_client.get(f"/inactive/{ident}/restore", headers=HX).text
    assert 'name="note"' in form and "<html" not in form
    response = manager_client.post(f"/inactive/{ident}/restore", data={"note": "   "},
                                   headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 422
    assert f'id="restore-{ident}-error"' in response.text and "Say why the customer comes back" in response.text
    assert _get(app, ident).status is Status.INACTIVE
    # Without JavaScript the form has a page of its own, and keeps what was typed on an error.
    page = manager_client.get(f"/inactive/{ident}/restore")
    assert page.status_code == 200 and "<html" in page.text
    refused = manager_client.post(f"/inactive/{ident}/restore", data={"note": "", "csrf_token": token})
    assert refused.status_code == 422 and 'id="note-error"' in refused.text


def test_restore_takes_the_row_away_with_a_confirmation(app, manager_client, manager):
    ident = _inactive(app, "Anna Ivanova")
    _inactive(app, "Boris Petrov", days=1)
    token = page_token(manager_client, "/inactive")
    response = manager_client.post(f"/inactive/{ident}/restore", data={"note": "Called us <back>"},
                                   headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 200
    html = response.text
    assert f'id="inactive-{ident}"' in html and "Anna Ivanova is back on the active list." in html
    assert 'hx-swap-oob="true"' in html and "1 customer on the inactive list" in html
    restored = _get(app, ident)
    assert restored.status is not Status.INACTIVE and restored.inactive_since is None
    with app.app_context():
        note = db.session.scalar(select(Interaction).where(Interaction.customer_id == ident,
                                                           Interaction.kind == Kind.STATUS)
                                 .order_by(Interaction.id.desc()).limit(1))
        assert note.body == "Called us <back>" and note.user_id == manager.id
    assert _names(manager_client.get("/inactive").text) == ["Boris Petrov"]


def test_restore_without_javascript_redirects_with_a_flash(app, manager_client):
    ident = _inactive(app, "Anna Ivanova", how="bounces")
    token = page_token(manager_client, "/inactive")
    response = manager_client.post(f"/inactive/{ident}/restore",
                                   data={"note": "New email", "how": "bounces", "csrf_token": token})
    assert response.status_code == 302 and response.location == "/inactive?how=bounces"
    assert "Anna Ivanova is back on the active list." in manager_client.get(response.location).text


def test_restoring_someone_not_inactive_is_refused_on_the_field(app, manager_client):
    ident = _active(app, "Anna Ivanova")
    token = page_token(manager_client, "/inactive")
    response = manager_client.post(f"/inactive/{ident}/restore", data={"note": "x"},
                                   headers={**HX, "X-CSRFToken": token})
    assert response.status_code == 422 and "not on the inactive list" in response.text
    for missing in ("999999", "99999999999999999999999"):
        assert manager_client.post(f"/inactive/{missing}/restore", data={"note": "x"},
                                   headers={**HX, "X-CSRFToken": token}).status_code == 404
        assert manager_client.get(f"/inactive/{missing}/restore").status_code == 404


def _csv_rows(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_owner_exports_the_filtered_list_with_formulas_neutralised(app, owner_client):
    evil = _inactive(app, "=HYPERLINK(\"http://x\")", how="manager", reason="+1 said no", emails=["evil@example.com"],
                     orders=("1234.50",))
    _inactive(app, "Boris Petrov", how="bounces", days=1)
    response = owner_client.get("/inactive/export.csv?how=manager")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _csv_rows(response)
    assert rows[0] == ["id", "name", "contacts", "inactive_since", "how", "reason", "orders", "ltv"]
    assert len(rows) == 2
    row = rows[1]
    assert row[0] == str(evil) and row[1] == "'=HYPERLINK(\"http://x\")" and row[2] == "evil@example.com"
    assert row[4] == "A manager's decision" and row[5] == "'+1 said no"
    assert row[6] == "1" and row[7] == "1234.50"
    assert "Export CSV" in owner_client.get("/inactive").text


def test_managers_cannot_export_or_erase(app, manager_client):
    ident = _inactive(app, "Anna Ivanova")
    token = page_token(manager_client, "/inactive")
    assert manager_client.get("/inactive/export.csv").status_code == 403
    assert manager_client.get(f"/inactive/{ident}/erase").status_code == 403
    assert manager_client.post(f"/inactive/{ident}/erase", data={"confirm_id": str(ident), "csrf_token": token}
                               ).status_code == 403
    html = manager_client.get("/inactive").text
    assert "Export CSV" not in html and "/erase" not in html
    assert _get(app, ident).name == "Anna Ivanova"


def test_erase_asks_for_the_customers_number_first(app, owner_client):
    ident = _inactive(app, "Anna Ivanova", emails=["anna@example.com"])
    page = owner_client.get(f"/inactive/{ident}/erase")
    assert page.status_code == 200 and "cannot be undone" in page.text and 'name="confirm_id"' in page.text
    token = page_token(owner_client, "/inactive")
    for typed in ("", "12345678", "yes"):
        refused = owner_client.post(f"/inactive/{ident}/erase", data={"confirm_id": typed, "csrf_token": token})
        assert refused.status_code == 422 and 'id="confirm_id-error"' in refused.text
    assert 'value="yes"' in refused.text  # what was typed stays
    assert _get(app, ident).name == "Anna Ivanova"


def test_erase_removes_contacts_and_name_but_keeps_orders(app, owner_client, owner):
    ident = _inactive(app, "Anna Ivanova", emails=["anna@example.com"], phones=["+7 912 345-67-89"], city="Kazan",
                      orders=("500.00", "700.00"))
    token = page_token(owner_client, "/inactive")
    response = owner_client.post(f"/inactive/{ident}/erase", data={"confirm_id": f" #{ident} ", "csrf_token": token})
    assert response.status_code == 302 and response.location == "/inactive"
    assert f"The personal data of customer #{ident} is erased" in owner_client.get("/inactive").text
    erased = _get(app, ident)
    assert erased.name == f"Erased customer #{ident}" and erased.city is None and erased.do_not_contact
    assert _count(app, Contact, ident) == 0 and _count(app, Order, ident) == 2
    assert erased.order_count == 2 and erased.total_spent == 120000
    with app.app_context():
        assert db.session.scalar(select(Interaction).where(Interaction.customer_id == ident,
                                                           Interaction.kind == Kind.ERASED)).user_id == owner.id


def test_erasing_someone_not_inactive_is_refused(app, owner_client):
    path = "/inactive/{id}/erase"
    ident = _active(app, "Anna Ivanova", emails=["anna@example.com"])
    page = owner_client.get(path.format(id=ident))
    assert "not on the inactive list" in page.text and 'name="confirm_id"' not in page.text
    token = page_token(owner_client, "/inactive")
    refused = owner_client.post(path.format(id=ident), data={"confirm_id": str(ident), "csrf_token": token})
    assert refused.status_code == 422
    assert _get(app, ident).name == "Anna Ivanova"


@pytest.mark.browser
def test_in_a_browser_restore_happens_in_the_row_and_the_total_follows(app, site, page, manager):
    from playwright.sync_api import expect

    from tests.conftest import browser_sign_in

    anna = _inactive(app, "Anna Ivanova")
    _inactive(app, "Boris Petrov", days=1)
    browser_sign_in(page, site, manager.email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Inactive").click()
    page.wait_for_url(f"{site}/inactive")
    page.evaluate("window.__same_document = true")  # lost if the page reloads
    total = page.locator("#inactive-total")
    expect(total).to_have_text("2 customers on the inactive list")
    row = page.locator(f"#inactive-{anna}")
    row.get_by_role("button", name="Restore…").click()
    row.get_by_role("button", name="Restore").click()  # no note: refused on the field
    expect(row.locator(".field-error")).to_contain_text("Say why the customer comes back")
    row.get_by_label("Why they come back").fill("Phoned to order again")
    row.get_by_role("button", name="Restore").click()
    expect(row).to_contain_text("Anna Ivanova is back on the active list.")
    expect(total).to_have_text("1 customer on the inactive list")
    page.get_by_role("searchbox").fill("bo")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    assert page.evaluate("window.__same_document") is True
    assert [p for p in page.problems if "422" not in p] == []  # the refused note answers 422, by design
    assert _get(app, anna).status is not Status.INACTIVE


def test_the_workers_reason_is_shown_in_the_readers_language(app, owner_client):
    """The worker writes "no response to ..." in one fixed form; each reader sees it in their
    language, and the CSV export too."""
    from crm.models import User

    reason = inactive.no_response_reason("Win back", 5, date(2024, 3, 1))
    _inactive(app, "Anna Ivanova", how="no_response", reason=reason, days=3)
    assert "No response to “Win back”: 5 messages, the last on Mar 1, 2024" in owner_client.get("/inactive").text
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.role == Role.OWNER))
        owner.locale = "ru"
        db.session.commit()
    page = owner_client.get("/inactive").text
    assert "Нет ответа на «Win back»: 5 сообщений, последнее 1 мар. 2024" in page
    assert "Нет ответа на «Win back»" in owner_client.get("/inactive/export.csv").text

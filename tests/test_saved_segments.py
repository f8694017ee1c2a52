"""Saved segments (save a list filter under a name, live count, open, rename, delete, who may), the RFM
grid page and the behaviour classes page."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm import saved_segments
from crm.extensions import db
from crm.models import Behaviour, Customer, RfmCell, Role, Segment, TeamSetting
from tests.conftest import browser_sign_in, make_user, page_token, reload, sign_in
from tests.factories import customer, order, utc

HX = {"HX-Request": "true"}


@pytest.fixture
def base(app):
    with app.app_context():
        anna = customer("Anna Ivanova", city="Moscow")
        order(anna, utc(2026, 1, 10), "100.00", items=[{"name": "Wine", "category": "Drinks"}])
        boris = customer("Boris Petrov", city="Moscow")
        order(boris, utc(2025, 6, 1), "50.00")
        clara = customer("Clara Smirnova", city="Kazan")
        db.session.flush()
        anna.rfm, anna.behaviour = 333, Behaviour.FREQUENT
        boris.rfm, boris.behaviour = 111, Behaviour.STOPPED
        db.session.commit()
        return {"anna": anna.id, "boris": boris.id, "clara": clara.id}


def _save(client, name, args, token=None, htmx=True):
    headers = dict(HX) if htmx else {}
    return client.post("/segments/", data={"name": name, "csrf_token": token or page_token(client, "/customers"),
                                           **args}, headers=headers)


def _segment(app, name) -> Segment | None:
    with app.app_context():
        found = db.session.scalar(select(Segment).where(Segment.name == name))
        if found is not None:
            db.session.expunge(found)
        return found


@pytest.fixture
def other_manager(app):
    return make_user(app, "other@example.com", Role.MANAGER, "Other Manager")


def _client_for(app, user):
    client = app.test_client()
    assert sign_in(client, user.email).status_code == 302
    return client


# --- saving ---------------------------------------------------------------------------------------

def test_the_save_form_appears_on_the_list_only_when_a_filter_is_in_use(owner_client, base):
    assert "Save as segment" not in owner_client.get("/customers").get_data(as_text=True)
    html = owner_client.get("/customers?city=Moscow&behaviour=frequent").get_data(as_text=True)
    assert "Save as segment" in html
    assert '<input type="hidden" name="city" value="Moscow">' in html
    assert '<input type="hidden" name="behaviour" value="frequent">' in html
    # The results swapped in by a filter change carry the form with that filter.
    fragment = owner_client.get("/customers?city=Kazan", headers=HX).get_data(as_text=True)
    assert '<input type="hidden" name="city" value="Kazan">' in fragment


def test_a_manager_saves_the_list_filter_under_a_name(app, manager_client, manager, base):
    response = _save(manager_client, "  Moscow   regulars ", {"city": "Moscow", "rfm_group": "champions",
                                                              "spend_from": "1 000,50", "sort": "ltv"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert "Saved as “Moscow regulars”." in html
    segment = _segment(app, "Moscow regulars")
    assert segment.created_by_id == manager.id
    assert segment.filters == {"city": "Moscow", "rfm_group": "champions", "spend_from": "1000.5", "sort": "ltv"}


def test_without_htmx_saving_redirects_to_the_segments_page(app, owner_client, base):
    response = _save(owner_client, "Kazan", {"city": "Kazan"}, htmx=False)
    assert response.status_code == 302 and response.location == "/segments/"
    assert "Segment “Kazan” saved." in owner_client.get("/segments/").get_data(as_text=True)


@pytest.mark.parametrize("name, message", [
    ("", "Name the segment"),
    ("   ", "Name the segment"),
    ("x" * 121, "at most 120 characters"),
    ("moscow", "already exists"),
])
def test_a_bad_name_is_refused_on_the_field(app, owner_client, base, name, message):
    assert _save(owner_client, "Moscow", {"city": "Moscow"}).status_code == 200
    response = _save(owner_client, name, {"city": "Kazan"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html and 'aria-invalid="true"' in html and 'class="field-error"' in html
    assert '<input type="hidden" name="city" value="Kazan">' in html  # nothing typed or chosen is lost
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Segment)) == 1
    page = _save(owner_client, name, {"city": "Kazan"}, htmx=False)
    assert page.status_code == 422 and "<html" in page.get_data(as_text=True) and message in page.get_data(as_text=True)


def test_a_filter_is_needed_to_save_a_segment(app, owner_client, base):
    response = _save(owner_client, "Everyone", {"sort": "name"})
    assert response.status_code == 422
    assert "Choose at least one filter" in response.get_data(as_text=True)
    assert _segment(app, "Everyone") is None
    assert "Choose at least one filter" in owner_client.get("/segments/new").get_data(as_text=True)


def test_saving_needs_the_csrf_token(app, owner_client, base):
    response = owner_client.post("/segments/", data={"name": "No token", "city": "Moscow"}, headers=HX)
    assert response.status_code == 400
    assert _segment(app, "No token") is None


def test_the_new_segment_page_describes_the_filter_and_saves_without_javascript(owner_client, base):
    html = owner_client.get("/segments/new?city=Moscow&rfm=333&age_from=30&orders_to=5").get_data(as_text=True)
    for expected in ("City: Moscow", "RFM cell R3 F3 M3", "Age 30 or more", "Up to 5 orders", 'name="name"'):
        assert expected in html, expected


# --- listing, counting, opening ------------------------------------------------------------------

def test_the_segments_page_lists_them_with_a_lazy_live_count_and_an_open_link(app, owner_client, base):
    _save(owner_client, "Moscow", {"city": "Moscow"})
    _save(owner_client, "Stopped", {"behaviour": "stopped"})
    html = owner_client.get("/segments/").get_data(as_text=True)
    assert html.index("Moscow") < html.index("Stopped")
    assert 'href="/customers?city=Moscow"' in html
    assert 'hx-get="/customers/count?behaviour=stopped" hx-trigger="load"' in html
    assert "City: Moscow" in html and "Class: Were frequent and stopped" in html
    # The count is live: a customer who moves to Moscow counts at once.
    count = owner_client.get("/customers/count?city=Moscow", headers=HX).get_data(as_text=True)
    assert "2 customers" in count
    with app.app_context():
        db.session.get(Customer, base["clara"]).city = "Moscow"
        db.session.commit()
    assert "3 customers" in owner_client.get("/customers/count?city=Moscow", headers=HX).get_data(as_text=True)


def test_an_empty_segments_page_says_how_to_make_one(owner_client):
    html = owner_client.get("/segments/").get_data(as_text=True)
    assert "No saved segments yet" in html and 'href="/customers"' in html


def test_html_in_a_segment_name_is_shown_as_text(app, owner_client, base):
    name = "<svg onload=alert(1)>"
    saved = _save(owner_client, name, {"city": "Moscow"}).get_data(as_text=True)
    html = owner_client.get("/segments/").get_data(as_text=True)
    for page in (saved, html):
        assert "<svg" not in page
    assert "&lt;svg onload=alert(1)&gt;" in html


def test_customer_ids_query_selects_the_segment_customers_now(app, owner, base):
    with app.app_context():
        acting = db.session.get(type(owner), owner.id)
        segment = saved_segments.create("Moscow", saved_segments.filters_of(Segment(filters={"city": "Moscow"})),
                                        acting)
        db.session.commit()
        ids = set(db.session.scalars(saved_segments.customer_ids_query(segment)))
        assert ids == {base["anna"], base["boris"]}
        # Usable as a subquery by queues and sequences.
        names = db.session.scalars(select(Customer.name).where(Customer.id.in_(saved_segments.customer_ids_query(
            segment))).order_by(Customer.name)).all()
        assert names == ["Anna Ivanova", "Boris Petrov"]
        # A key no longer known (or a value no longer valid) is ignored rather than failing.
        segment.filters = {"city": "Moscow", "gone": "1", "rfm": "999"}
        assert set(db.session.scalars(saved_segments.customer_ids_query(segment))) == ids


# --- renaming and deleting -----------------------------------------------------------------------

def test_the_creator_renames_in_place_and_a_clash_is_told_on_the_field(app, manager_client, base):
    _save(manager_client, "Moscow", {"city": "Moscow"})
    _save(manager_client, "Kazan", {"city": "Kazan"})
    segment = _segment(app, "Moscow")
    form = manager_client.get(f"/segments/{segment.id}/edit", headers=HX).get_data(as_text=True)
    assert 'name="name" value="Moscow"' in form and "<html" not in form
    token = page_token(manager_client, "/segments/")
    refused = manager_client.post(f"/segments/{segment.id}", data={"name": "KAZAN"},
                                  headers={**HX, "X-CSRFToken": token})
    assert refused.status_code == 422 and "already exists" in refused.get_data(as_text=True)
    done = manager_client.post(f"/segments/{segment.id}", data={"name": "Moscow buyers"},
                               headers={**HX, "X-CSRFToken": token})
    assert done.status_code == 200 and "Moscow buyers" in done.get_data(as_text=True)
    assert reload(app, Segment, segment.id).name == "Moscow buyers"
    # Cancel returns the row; opened directly, the edit URL is the whole page with the row open.
    assert f'id="segment-{segment.id}"' in manager_client.get(f"/segments/{segment.id}", headers=HX).get_data(
        as_text=True)
    whole = manager_client.get(f"/segments/{segment.id}/edit").get_data(as_text=True)
    assert "<html" in whole and 'name="name" value="Moscow buyers"' in whole


def test_only_the_creator_or_an_owner_may_rename_or_delete(app, manager_client, owner_client, other_manager, base):
    _save(manager_client, "Mine", {"city": "Moscow"})
    segment = _segment(app, "Mine")
    other = _client_for(app, other_manager)
    token = page_token(other, "/segments/")
    page = other.get("/segments/").get_data(as_text=True)
    assert "Mine" in page and "Rename" not in page and "Delete" not in page
    assert other.get(f"/segments/{segment.id}/edit", headers=HX).status_code == 403
    assert other.post(f"/segments/{segment.id}", data={"name": "Theirs"},
                      headers={**HX, "X-CSRFToken": token}).status_code == 403
    assert other.post(f"/segments/{segment.id}/delete", headers={**HX, "X-CSRFToken": token}).status_code == 403
    assert reload(app, Segment, segment.id).name == "Mine"
    # The owner may do both.
    owner_token = page_token(owner_client, "/segments/")
    assert "Rename" in owner_client.get("/segments/").get_data(as_text=True)
    assert owner_client.post(f"/segments/{segment.id}", data={"name": "Owner's"},
                             headers={**HX, "X-CSRFToken": owner_token}).status_code == 200
    deleted = owner_client.post(f"/segments/{segment.id}/delete", headers={**HX, "X-CSRFToken": owner_token})
    assert deleted.status_code == 200 and deleted.get_data(as_text=True) == ""
    assert reload(app, Segment, segment.id) is None
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Customer)) == 3  # the customers stay


def test_delete_asks_first_and_works_without_javascript(app, manager_client, base):
    _save(manager_client, "Temp <b>", {"city": "Moscow"})
    segment = _segment(app, "Temp <b>")
    html = manager_client.get("/segments/").get_data(as_text=True)
    assert 'hx-confirm="Delete the segment “Temp &lt;b&gt;”?' in html
    token = page_token(manager_client, "/segments/")
    response = manager_client.post(f"/segments/{segment.id}/delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/segments/"
    assert reload(app, Segment, segment.id) is None


def test_unknown_segments_are_404(owner_client):
    token = page_token(owner_client, "/segments/")
    assert owner_client.get("/segments/999/edit").status_code == 404
    assert owner_client.post("/segments/999", data={"name": "x", "csrf_token": token}).status_code == 404
    assert owner_client.post("/segments/999/delete", data={"csrf_token": token}).status_code == 404


# --- the RFM grid and the behaviour classes -------------------------------------------------------

def test_the_rfm_grid_says_when_the_rebuild_has_not_run(owner_client):
    html = owner_client.get("/segments/rfm").get_data(as_text=True)
    assert "the segments rebuild has not run yet" in html
    assert "rfm-cell" not in html


def test_the_rfm_grid_shows_27_linked_cells_shaded_by_count_and_the_groups(app, owner_client):
    with app.app_context():
        db.session.add(TeamSetting(key="rebuild", value={
            "finished_at": datetime(2026, 3, 1, 2, 30, tzinfo=UTC).isoformat(),
            "bounds": {"r3_days": 30, "r2_days": 90, "f2": 2, "f3": 5, "m2": 500_00, "m3": 2000_00}}))
        db.session.add_all([RfmCell(rfm=333, customers=1000, revenue=5_000_000),
                            RfmCell(rfm=332, customers=500, revenue=1_000_000),
                            RfmCell(rfm=111, customers=1, revenue=1_000)])
        db.session.commit()
    response = owner_client.get("/segments/rfm")
    html = response.get_data(as_text=True)
    cells = re.findall(r'<td class="rfm-cell rfm-shade-(\d)">\s*<a href="/customers\?rfm=(\d+)"', html)
    assert len(cells) == 27 and len({c for _, c in cells}) == 27
    shades = {cell: int(shade) for shade, cell in cells}
    assert shades["333"] == 5 and shades["332"] == 3 and shades["111"] == 1 and shades["222"] == 0
    assert "$50,000.00" in html and "As of the last rebuild, 3/1/26, 2:30" in html
    assert "1,501 customers with orders." in html
    assert "within 30 days" in html and "5 orders or more" in html and "$2,000.00 or more" in html
    # Champions = 333 + 332 + 331.
    champions = html.split('href="/customers?rfm_group=champions"')[1].split("</tr>")[0]
    assert "Champions" in champions and "1,500" in champions and "$60,000.00" in champions
    assert "Bought recently and often." in champions
    assert 'style="' not in html and "<script>" not in html
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_renamed_groups_show_their_team_name(app, owner_client):
    from crm import settings

    with app.app_context():
        settings.save(settings.Segmentation(group_names={"champions": "Our stars"}))
        db.session.add(TeamSetting(key="rebuild", value={"finished_at": datetime.now(UTC).isoformat()}))
        db.session.commit()
    assert "Our stars" in owner_client.get("/segments/rfm").get_data(as_text=True)
    assert "R3 F3 M3 · Our stars" in owner_client.get("/customers").get_data(as_text=True)


def test_the_classes_page_explains_each_class_with_a_lazy_count_and_a_link(owner_client, base):
    html = owner_client.get("/segments/classes").get_data(as_text=True)
    for key, explanation in (("frequent", "under a month apart"), ("periodic", "one to four months"),
                             ("stopped", "worth calling"), ("rare", "more than four months apart"),
                             ("one_off", "A single order.")):
        assert f'href="/customers?behaviour={key}"' in html, key
        assert f'hx-get="/customers/count?behaviour={key}" hx-trigger="load"' in html, key
        assert explanation in html, key
    assert "the segments rebuild has not run" in html
    count = owner_client.get("/customers/count?behaviour=stopped", headers=HX).get_data(as_text=True)
    assert "1 customer" in count


def test_segments_are_in_the_navigation(owner_client, manager_client):
    for client in (owner_client, manager_client):
        html = client.get("/segments/").get_data(as_text=True)
        assert '<a href="/segments/" aria-current="page">Segments</a>' in html
        assert ">Customers</a>" in html


@pytest.mark.browser
def test_in_the_browser_a_filter_is_saved_counted_renamed_and_deleted_without_page_loads(app, site, page, manager,
                                                                                         base):
    browser_sign_in(page, site, manager.email)
    page.goto(f"{site}/customers")
    page.locator("summary", has_text="More filters").click()
    page.get_by_label("Behaviour class").select_option("stopped")
    page.wait_for_url("**behaviour=stopped*")
    page.evaluate("window.__same_document = true")
    page.locator("#save-segment summary").click()
    page.get_by_label("Segment name").fill("Call them")
    page.locator("#save-segment").get_by_role("button", name="Save").click()
    page.get_by_text("Saved as “Call them”.").wait_for()

    page.get_by_role("link", name="See all segments").click()
    page.wait_for_url(f"{site}/segments/")
    row = page.locator("table.segments tbody tr").first
    row.get_by_text("1 customer").wait_for()  # the lazy count arrived
    page.evaluate("window.__same_document = true")

    row.get_by_role("button", name="Rename").click()
    name = page.get_by_label("Segment name")
    # htmx focuses the autofocus field once it has wired the swapped-in editor: typing earlier would
    # let Enter submit the plain form (a page load, which this test is here to catch).
    expect(name).to_be_focused()
    name.fill("Worth a call")
    name.press("Enter")
    page.locator("table.segments").get_by_role("link", name="Worth a call").wait_for()
    row.get_by_role("button", name="Rename").click()
    expect(page.get_by_label("Segment name")).to_be_focused()
    page.get_by_label("Segment name").press("Escape")  # leaves the editor unchanged
    page.locator("table.segments").get_by_role("link", name="Worth a call").wait_for()

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("table.segments").get_by_role("button", name="Delete").click()
    page.locator("table.segments tbody tr").wait_for(state="detached")
    assert page.evaluate("window.__same_document") is True
    assert _segment(app, "Worth a call") is None
    assert not page.problems

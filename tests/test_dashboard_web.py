"""The dashboard pages: the period form, each panel as its own htmx fragment (and as a whole page
without script), links to the customers behind the figures, empty states, HTML shown as text, both
roles, and a real browser loading every panel with no console error."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from playwright.sync_api import expect

from crm import clock, settings, summaries
from crm.extensions import db
from crm.models import RfmCell, TeamSetting
from crm.web.dashboard import PANELS
from tests.conftest import browser_sign_in
from tests.factories import customer, order, utc

TODAY = date(2026, 3, 5)
HX = {"HX-Request": "true"}
FEB = "period=custom&from=2026-02-01&to=2026-02-28"


@pytest.fixture
def today(monkeypatch):
    monkeypatch.setattr(clock, "team_today", lambda: TODAY)
    return TODAY


@pytest.fixture
def shop(app, today):
    """Three buyers in February and March 2026 (see tests/test_metrics.py for the same base worked out
    in the team's zone; here the team is on UTC)."""
    with app.app_context():
        alice, bob, carol = customer("Alice"), customer("Bob"), customer("Carol")
        order(alice, utc(2026, 2, 1, 10), "100.00")
        order(alice, utc(2026, 2, 10, 10), "300.00")
        order(bob, utc(2026, 2, 28, 10), "50.00")
        order(carol, utc(2025, 12, 15, 10), "100.00")
        order(carol, utc(2026, 2, 20, 10), "100.00")
        order(alice, utc(2026, 3, 4, 10), "200.00")
        alice.rfm, bob.rfm, carol.rfm = 333, 311, 111
        db.session.add_all([RfmCell(rfm=333, customers=1, revenue=60000), RfmCell(rfm=111, customers=1, revenue=20000)])
        db.session.add(TeamSetting(key="rebuild", value={"finished_at": "2026-03-05T00:30:00+00:00"}))
        db.session.commit()
        summaries.build(TODAY)
        db.session.commit()


def panel(client, name: str, query: str = "") -> str:
    response = client.get(f"/dashboard/panels/{name}?{query}", headers=HX)
    assert response.status_code == 200, response.status_code
    assert "<html" not in response.get_data(as_text=True)  # a fragment
    return response.get_data(as_text=True)


def test_the_page_holds_a_placeholder_per_panel_that_loads_on_its_own(owner_client, shop):
    page = owner_client.get(f"/dashboard?{FEB}").get_data(as_text=True)
    for name in PANELS:
        assert f'hx-get="/dashboard/panels/{name}?period=custom&amp;from=2026-02-01&amp;to=2026-02-28"' in page
    assert "hx-trigger=\"load\"" in page
    assert "<script>" not in page.split("</head>")[1]  # no inline script in the body


def test_sales_panel_figures_and_links_for_february(manager_client, shop):
    text = panel(manager_client, "sales", FEB)
    # 4 orders, 550 of revenue, 3 buyers (2 of them new), an average check of 137.50.
    assert re.search(r"550\.00", text) and re.search(r"137\.50", text)
    assert 'href="/customers?bought_from=2026-02-01&amp;bought_to=2026-02-28"' in text
    assert "orders_from=2" in text  # repeat purchases link to the repeat buyers of the period
    # Against 4-31 January: nothing to compare the revenue with.
    assert "no comparison" in text


def test_base_panel_links_every_count(owner_client, shop):
    text = panel(owner_client, "base", "period=month")
    for status in ("active", "lapsing", "lapsed", "in_sequence", "responded", "inactive"):
        assert f'href="/customers?status={status}&amp;orders_from=1"' in text
    assert "first_from=2026-03-01&amp;first_to=2026-03-05" in text


def test_ltv_buckets_link_to_exactly_their_customers(owner_client, shop):
    """Buyers spent 600, 50 and 200: buckets 100 wide. A bucket [200, 300) stops a kopeck short of
    the next (the list's spend filter includes both ends), and only buyers are listed."""
    text = panel(owner_client, "sales", FEB)
    links = re.findall(r'href="(/customers\?orders_from=1&amp;spend[^"]*)"', text)
    assert links == ["/customers?orders_from=1&amp;spend_from=0.00&amp;spend_to=99.99",
                     "/customers?orders_from=1&amp;spend_from=200.00&amp;spend_to=299.99",
                     "/customers?orders_from=1&amp;spend_from=600.00&amp;spend_to=699.99"]  # empty buckets: no bar


def test_cohorts_and_trends_link_to_the_buyers_of_a_month(owner_client, shop):
    cohorts = panel(owner_client, "cohorts")
    assert "first_from=2026-02-01&amp;first_to=2026-02-28" in cohorts
    # Alice (first order February) bought again in March: 1 of 2 February newcomers (Alice, Bob).
    march = "bought_from=2026-03-01&amp;bought_to=2026-03-31"
    assert f"first_from=2026-02-01&amp;first_to=2026-02-28&amp;{march}" in cohorts
    assert "50%" in cohorts
    trends = panel(owner_client, "trends")
    assert trends.count("<svg") == 4 and 'role="img"' in trends
    assert "Table view" in trends and "bought_from=2026-02-01&amp;bought_to=2026-02-28" in trends


def test_rfm_and_reactivation_panels(owner_client, shop):
    grid = panel(owner_client, "rfm")
    assert 'href="/customers?rfm=333"' in grid
    reactivation = panel(owner_client, "reactivation", FEB)
    assert "/reports/campaigns" in reactivation and "No calls logged in this period." in reactivation


def test_without_script_a_panel_opens_inside_the_whole_page(owner_client, shop):
    page = owner_client.get(f"/dashboard/panels/sales?{FEB}").get_data(as_text=True)
    assert "<html" in page and 'id="panel-sales"' in page and "550.00" in page
    assert 'hx-get="/dashboard/panels/base?' in page  # the others still load on their own


def test_unknown_panel_is_404(owner_client):
    assert owner_client.get("/dashboard/panels/nope", headers=HX).status_code == 404


def test_broken_custom_dates_get_a_message_on_the_field(owner_client, today):
    page = owner_client.get("/dashboard?period=custom&from=2026-13-01&to=2026-01-01").get_data(as_text=True)
    assert 'aria-invalid="true"' in page and "Enter a date as YYYY-MM-DD." in page
    page = owner_client.get("/dashboard?period=custom&from=2026-03-01&to=2026-02-01").get_data(as_text=True)
    assert "The end must not be before the start." in page
    for far in ("0001-01-01", "9999-12-31"):  # no overflow in the period before, or in the zone
        assert owner_client.get(f"/dashboard?period=custom&from={far}&to={far}").status_code == 200
        for name in PANELS:
            assert owner_client.get(f"/dashboard/panels/{name}?period=custom&from={far}&to={far}",
                                    headers=HX).status_code == 200
    assert owner_client.get("/dashboard/panels/sales?period=custom&from=x&to=y", headers=HX).status_code == 200


def test_an_empty_base_shows_friendly_states_everywhere(owner_client, today):
    for name in PANELS:
        text = panel(owner_client, name, "period=365")
        assert "Traceback" not in text
    assert "No figures yet" in panel(owner_client, "base")
    assert "No paid orders in this period or the one before." in panel(owner_client, "sales")
    assert "No first orders in the last twelve months." in panel(owner_client, "cohorts")
    page = owner_client.get("/dashboard").get_data(as_text=True)
    assert "The figures appear after the first rebuild" in page


def test_names_are_shown_as_text(app, owner_client, shop):
    evil = '<svg onload=alert(1)>"><script>'
    with app.app_context():
        current = settings.load()
        settings.save(settings.Segmentation(**{**current.__dict__, "group_names": {"champions": evil}}))
        db.session.commit()
    for name in ("sales", "rfm"):
        text = panel(owner_client, name, FEB)
        assert evil not in text and html.escape(evil, quote=False) in text.replace("&#34;", '"').replace("&#39;", "'")


def test_anonymous_users_are_sent_to_sign_in(client):
    for path in ("/dashboard", "/dashboard/panels/sales"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_russian_headings(app, client, today):
    from crm.models import Role
    from tests.conftest import make_user, sign_in

    user = make_user(app, "ru@example.com", Role.MANAGER, locale="ru")
    sign_in(client, user.email)
    assert "Продажи" in client.get("/dashboard/panels/sales", headers=HX).get_data(as_text=True)


@pytest.mark.browser
def test_every_panel_loads_in_a_real_browser(app, site, page, owner, shop):
    browser_sign_in(page, site, owner.email)
    page.goto(f"{site}/dashboard?{FEB}")
    for name in PANELS:
        expect(page.locator(f"#panel-{name}")).not_to_have_attribute("aria-busy", "true")
        expect(page.locator(f"#panel-{name}-title")).to_be_visible()
    expect(page.locator("#panel-sales")).to_contain_text("550.00")
    # A chart's table view opens; a bar is a link to the customers behind it.
    page.locator("#panel-trends details summary").first.click()
    expect(page.locator("#panel-trends details table").first).to_be_visible()
    page.locator("#panel-rfm a[href='/customers?rfm=333']").first.click()
    page.wait_for_url(f"{site}/customers?rfm=333")
    expect(page.get_by_text("Alice")).to_be_visible()
    assert page.problems == []


def test_reactivation_panel_for_a_team_far_from_utc(make_app, monkeypatch):
    """The campaign base of tests/test_campaigns.py, enrolled at 10:00 UTC on 2 March, is 2 March in
    Vladivostok (20:00): the panel for that one day shows its enrolments, answers, returns and lift
    from the nightly summary, and nothing for the day before. Call outcomes logged at 23:30 UTC on
    1 March count for 2 March there."""
    from datetime import timedelta

    from crm.models import CallBack, CallReason, Role
    from tests.conftest import make_user, sign_in
    from tests.test_campaigns import T0, build_base

    monkeypatch.setattr(clock, "team_today", lambda: date(2026, 3, 5))
    app = make_app(TEAM_TIMEZONE="Asia/Vladivostok")
    with app.app_context():
        db.create_all()
    user = make_user(app, "owner@example.com", Role.OWNER)
    with app.app_context():
        build_base(user)
        person = customer("Called")
        db.session.add(CallBack(customer_id=person.id, manager_id=user.id, due_at=T0 - timedelta(days=1),
                                reason=CallReason.LAPSED, outcome="no_answer", done_at=utc(2026, 3, 1, 23, 30)))
        db.session.commit()
        summaries.build(date(2026, 3, 5))
        db.session.commit()
    client = app.test_client()
    sign_in(client, user.email)
    text = panel(client, "reactivation", "period=custom&from=2026-03-02&to=2026-03-02")

    def figure(label: str) -> str:
        return re.search(rf">{label}</a></dt>\s*<dd>\s*<strong>([^<]+)</strong>", text)[1].strip()

    assert (figure("Enrolled"), figure("Responded"), figure("Returned")) == ("7", "3", "3")
    assert "350.00" in figure("Revenue from returned customers")
    assert "+9.5 pp" in text  # 3 of 7 against 1 of 3 held out: 42.9 % − 33.3 %
    assert re.search(r"No answer</a></th>\s*<td class=\"num\">1 ", text)
    earlier = panel(client, "reactivation", "period=custom&from=2026-03-01&to=2026-03-01")
    assert re.search(r">Enrolled</a></dt>\s*<dd>\s*<strong>0</strong>", earlier)

"""Hostile markup in every name, in a real browser (Playwright driving the machine's Chromium): the
pages and htmx partials that show it run no script of it, and nothing breaks under the CSP."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests import hostile
from tests.conftest import ARTIFACTS, browser_sign_in
from tests.sinks import HttpSink, SmtpSink

pytestmark = pytest.mark.browser


@pytest.fixture
def sent(app, owner):
    smtp, http = SmtpSink().start(), HttpSink().start()
    try:
        yield hostile.seed(app, owner.id, channel_urls={"email": smtp.url(), "sms": http.url("sms/{phone}")})
    finally:
        smtp.stop()
        http.stop()


def test_hostile_names_fire_no_dialog_on_any_page_or_partial(app, sent, site, page, owner):
    """Customer list and card (a field opened for editing too), funnel, lapsed, call-backs, sequences
    with the editor's live previews, inactive, dashboard panels, segments, users, reports, settings:
    no alert or any other dialog opens, and the console stays clean."""
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    browser_sign_in(page, site, owner.email)
    customer, sequence = sent["customer"], sent["sequence"]
    shown = {}
    for path in ("/customers", f"/customers?q={quote(hostile.XSS)}", f"/customers/{customer}", "/funnel",
                 "/lapsed", "/callbacks?view=team", "/callbacks/history?view=team", "/sequences",
                 f"/sequences/{sequence}", f"/sequences/{sequence}/edit", "/inactive", "/dashboard", "/segments/",
                 "/segments/rfm", "/settings/users/", "/reports/campaigns", "/settings", "/settings/stages",
                 "/settings/tokens/", f"/settings/imports/{sent['run']}"):
        page.goto(site + path)
        page.wait_for_load_state("networkidle")
        names = page.locator("input[name=name]").all()  # the stages page shows names in rename fields
        text = page.inner_text("body") + " ".join(field.input_value() for field in names)
        shown[path] = hostile.SVG in text or hostile.SCRIPT in text
        if path == f"/customers/{customer}":
            page.locator("#field-city a.editable").click()
            page.locator("#field-city input[name=value]").first.wait_for()
            assert page.locator("#field-city input[name=value]").first.input_value() == hostile.XSS
        if path.endswith("/edit"):
            page.locator("#preview-1").get_by_text(hostile.XSS).first.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "security-hostile-names.png"), full_page=True)
    assert dialogs == []
    assert page.problems == []
    # The markup was there to run, shown as the text it is.
    missing = [path for path in ("/customers", f"/customers/{customer}", "/funnel", "/sequences",
                                 f"/sequences/{sequence}/edit", "/inactive", "/segments/", "/settings/users/",
                                 "/reports/campaigns", "/settings/stages", "/dashboard") if not shown[path]]
    assert missing == []

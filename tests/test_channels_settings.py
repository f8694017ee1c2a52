"""Settings for sequences: channel URLs shown masked only (never the secrets in them), refused on
their field, read-only when the environment sets them; a test send through a real SMTP server; the
inbound hook addresses; and the automatic enrolment rules."""

from __future__ import annotations

import re

import pytest

from crm import sequences, settings
from crm.extensions import db
from crm.hook_secrets import secret_for
from crm.models import EnrolmentRule, Role, Trigger
from crm.settings import Messaging
from tests.conftest import csrf_from, make_user, page_token, sign_in
from tests.servers import free_port
from tests.sinks import SmtpSink

HX = {"HX-Request": "true"}
SMTP_PASSWORD = "s3cret-Smtp-pass"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
EMAIL_URL = f"mailtos://shop:{SMTP_PASSWORD}@smtp.example.com?from=shop@example.com&to={{email}}"
TELEGRAM_URL = f"tgram://{BOT_TOKEN}/{{telegram}}"
CHANNELS_FORM = {"fallback": ["email", "sms", "telegram", "whatsapp"], "weekly_cap": "3"}


def _save(client, **fields):
    token = csrf_from(client.get("/settings").text)
    return client.post("/settings/channels", data={**CHANNELS_FORM, **fields, "csrf_token": token})


def _messaging(app) -> Messaging:
    with app.app_context():
        return settings.load(Messaging)


def test_saved_urls_are_shown_masked_and_the_secrets_never(app, owner_client):
    response = _save(owner_client, urls_email=EMAIL_URL, urls_telegram=TELEGRAM_URL, weekly_cap="5",
                     fallback=["telegram", "email", "whatsapp", "sms"])
    assert response.status_code == 200 and "Saved." in response.text
    assert response.headers["Cache-Control"] == "no-store"
    stored = _messaging(app)
    assert stored.urls == {"email": EMAIL_URL, "telegram": TELEGRAM_URL}
    assert (stored.weekly_cap, stored.fallback) == (5, ("telegram", "email", "whatsapp", "sms"))
    for html in (response.text, owner_client.get("/settings").text):
        assert SMTP_PASSWORD not in html and BOT_TOKEN not in html and BOT_TOKEN.split(":")[1] not in html
        assert "mailtos://shop:****@smtp.example.com" in html and "tgram://" in html
        assert "leave empty to keep the current URLs" in html
        assert "<textarea" in html and EMAIL_URL not in html


def test_an_empty_field_keeps_the_urls_and_remove_takes_them_away(app, owner_client):
    _save(owner_client, urls_email=EMAIL_URL, urls_telegram=TELEGRAM_URL)
    assert _save(owner_client).status_code == 200
    assert set(_messaging(app).urls) == {"email", "telegram"}
    assert _save(owner_client, remove_telegram="1").status_code == 200
    assert _messaging(app).urls == {"email": EMAIL_URL}
    # New URLs replace the old ones.
    _save(owner_client, urls_email="json://gateway.example.com/mail/{email}")
    assert _messaging(app).urls == {"email": "json://gateway.example.com/mail/{email}"}


def test_a_url_apprise_cannot_read_is_refused_on_its_field_and_nothing_is_saved(app, owner_client):
    response = _save(owner_client, urls_email=EMAIL_URL, urls_sms="json://gw.example.com/{phone}\nnot-a-url")
    assert response.status_code == 422
    assert 'id="urls_sms-error"' in response.text and "Line 2 is not an Apprise URL" in response.text
    assert 'aria-describedby="urls_sms-error"' in response.text
    assert "not-a-url</textarea>" in response.text  # what was typed stays to be corrected
    assert 'id="urls_email-error"' not in response.text
    assert _messaging(app) == Messaging()


@pytest.mark.parametrize(("fields", "error"), [
    ({"fallback": ["email", "email", "sms", "telegram"]}, "fallback"),
    ({"fallback": ["email"]}, "fallback"),
    ({"weekly_cap": "0"}, "weekly_cap"),
    ({"weekly_cap": "51"}, "weekly_cap"),
    ({"weekly_cap": "many"}, "weekly_cap"),
    ({"urls_sms": "json://gw.example.com/{phone} " * 300}, "urls_sms"),
])
def test_unworkable_channel_settings_are_refused_on_the_field(app, owner_client, fields, error):
    response = _save(owner_client, **fields)
    assert response.status_code == 422 and f'id="{error}-error"' in response.text
    assert _messaging(app) == Messaging()


def test_a_channel_set_in_the_environment_is_shown_masked_and_read_only(make_app):
    app = make_app(CHANNEL_URLS={"telegram": TELEGRAM_URL})
    with app.app_context():
        db.create_all()
    owner = make_user(app, "owner@example.com", Role.OWNER)
    client = app.test_client()
    assert sign_in(client, owner.email).status_code == 302
    html = client.get("/settings").text
    assert BOT_TOKEN not in html and "tgram://" in html
    assert "Set in the environment (CHANNEL_TELEGRAM_URLS)" in html
    assert 'name="urls_telegram"' not in html and 'name="remove_telegram"' not in html
    assert 'name="urls_email"' in html
    # Posting the field anyway changes nothing.
    response = _save(client, urls_telegram="tgram://987654321:BBBdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/{telegram}")
    assert response.status_code == 200
    assert "telegram" not in _messaging(app).urls


def _test_send(client, channel: str, address: str, htmx: bool = True):
    token = page_token(client, "/settings")
    headers = {**HX, "X-CSRFToken": token} if htmx else {}
    data = {"test_channel": channel, "test_address": address, **({} if htmx else {"csrf_token": token})}
    return client.post("/settings/channels/test", data=data, headers=headers)


def test_a_test_send_reaches_a_real_smtp_server_and_says_ok(app, owner_client):
    sink = SmtpSink().start()
    try:
        assert _save(owner_client, urls_email=sink.url()).status_code == 200
        response = _test_send(owner_client, "email", "someone@example.com")
        assert response.status_code == 200 and "<html" not in response.text
        assert "OK, handed over" in response.text and "failed" not in response.text
        assert f"mailto://127.0.0.1:{sink.port}" in response.text
        mails = sink.to("someone@example.com")
        assert len(mails) == 1 and "This is a test from your CRM" in mails[0].text
        assert mails[0].message["Subject"] == "Test message"
    finally:
        sink.stop()


def test_a_test_send_to_a_closed_port_says_failed_with_the_error_escaped(app, owner_client):
    closed = f"mailto://127.0.0.1:{free_port()}?from=shop@example.com&to={{email}}&mode=insecure"
    _save(owner_client, urls_email=closed)
    response = _test_send(owner_client, "email", "someone@example.com")
    assert response.status_code == 200
    assert "failed" in response.text and "OK, handed over" not in response.text
    assert re.search(r'class="test-error">[^<]+</small>', response.text)  # Apprise's reason, as text


def test_a_test_send_without_javascript_renders_the_whole_page(app, owner_client):
    response = _test_send(owner_client, "sms", "+79161234567", htmx=False)
    assert response.status_code == 200 and "<html" in response.text
    assert "No URLs are set for SMS" in response.text


def test_test_send_explains_when_nothing_is_set_up_and_checks_its_fields(app, owner_client):
    assert "No channel is set up yet" in owner_client.get("/settings").text
    response = _test_send(owner_client, "email", "someone@example.com")
    assert response.status_code == 200 and "No URLs are set for Email" in response.text
    refused = _test_send(owner_client, "email", "   ")
    assert refused.status_code == 422 and 'id="test_address-error"' in refused.text
    refused = _test_send(owner_client, "fax", "123")
    assert refused.status_code == 422 and 'id="test_channel-error"' in refused.text


def test_the_page_documents_placeholders_and_shows_the_inbound_hooks(app, owner_client):
    html = owner_client.get("/settings").text
    for example in ("mailtos://user:pass@smtp.example.com?from=shop@example.com&amp;to={email}",
                    "tgram://BOT_TOKEN/{telegram}", "json://sms-gateway.example.com/send/{phone}"):
        assert example in html
    with app.app_context():
        for channel in ("email", "sms", "telegram", "whatsapp"):
            assert f"http://127.0.0.1:5000/hooks/inbound/{channel}?secret={secret_for(channel)}" in html
    assert "&#34;bounce&#34;: true" in html or '"bounce": true' in html


def test_managers_cannot_reach_channel_settings_or_rules(manager_client):
    token = page_token(manager_client, "/dashboard")
    for path in ("/settings/channels", "/settings/channels/test", "/settings/rules", "/settings/rules/1/delete",
                 "/settings/rules/1/toggle"):
        assert manager_client.post(path, data={"csrf_token": token}).status_code == 403, path


# --- automatic enrolment rules -------------------------------------------------------------------

@pytest.fixture
def sequence_id(app, owner):
    with app.app_context():
        made = sequences.create(3, "Win back", owner)
        db.session.commit()
        return made.id


def _rules(app) -> list[tuple]:
    with app.app_context():
        return [(r.sequence_id, r.trigger, r.days, r.groups, r.active)
                for r in db.session.query(EnrolmentRule).order_by(EnrolmentRule.id)]


def _add_rule(client, htmx: bool = True, **fields):
    token = page_token(client, "/settings")
    headers = {**HX, "X-CSRFToken": token} if htmx else {}
    return client.post("/settings/rules", data={**fields, **({} if htmx else {"csrf_token": token})}, headers=headers)


def test_no_sequence_yet_means_no_rule_form(app, owner_client):
    html = owner_client.get("/settings").text
    assert "Create a sequence first" in html and 'action="/settings/rules' not in html


def test_owner_adds_a_rule_and_sees_it_listed(app, owner_client, sequence_id):
    response = _add_rule(owner_client, sequence_id=str(sequence_id), trigger="birthday", days="7",
                         groups=["loyal", "champions"])
    assert response.status_code == 200 and "<html" not in response.text
    assert "Rule added: Win back, 7 days before the birthday." in response.text
    assert "Champions, Loyal" in response.text
    assert _rules(app) == [(sequence_id, Trigger.BIRTHDAY, 7, ["champions", "loyal"], True)]
    # A lapse trigger needs no days; without JavaScript the whole page comes back.
    page = _add_rule(owner_client, htmx=False, sequence_id=str(sequence_id), trigger="lapsed", days="")
    assert page.status_code == 200 and "<html" in page.text and "becomes lapsed" in page.text
    assert _rules(app)[1] == (sequence_id, Trigger.LAPSED, 0, [], True)


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"trigger": "after_order", "days": ""}, "days", "Enter the number of days"),
    ({"trigger": "before_expected", "days": "366"}, "days", "from 0 to 365"),
    ({"trigger": "before_expected", "days": "-1"}, "days", "from 0 to 365"),
    ({"trigger": "whenever", "days": "1"}, "trigger", "Choose one of the listed triggers"),
    ({"trigger": "lapsing", "groups": ["vips"]}, "groups", "Choose among the listed RFM groups"),
    ({"trigger": "lapsing", "sequence_id": "999999"}, "sequence_id", "Choose a sequence"),
    ({"trigger": "lapsing", "sequence_id": "abc"}, "sequence_id", "Choose a sequence"),
])
def test_a_wrong_rule_is_refused_on_its_field(app, owner_client, sequence_id, fields, field, message):
    response = _add_rule(owner_client, **{"sequence_id": str(sequence_id), **fields})
    assert response.status_code == 422
    assert f'id="rule-{field}-error"' in response.text and message in response.text
    assert _rules(app) == []


def test_the_same_rule_twice_is_refused(app, owner_client, sequence_id):
    _add_rule(owner_client, sequence_id=str(sequence_id), trigger="after_order", days="30")
    response = _add_rule(owner_client, sequence_id=str(sequence_id), trigger="after_order", days="30")
    assert response.status_code == 422 and "has a rule with this trigger already" in response.text
    assert len(_rules(app)) == 1


def test_owner_pauses_resumes_and_removes_a_rule(app, owner_client, sequence_id):
    _add_rule(owner_client, sequence_id=str(sequence_id), trigger="lapsing")
    with app.app_context():
        rule_id = db.session.query(EnrolmentRule.id).scalar()
    headers = {**HX, "X-CSRFToken": page_token(owner_client, "/settings")}
    paused = owner_client.post(f"/settings/rules/{rule_id}/toggle", headers=headers)
    assert paused.status_code == 200 and "Rule paused." in paused.text and "Resume" in paused.text
    assert _rules(app)[0][4] is False
    owner_client.post(f"/settings/rules/{rule_id}/toggle", headers=headers)
    assert _rules(app)[0][4] is True
    removed = owner_client.post(f"/settings/rules/{rule_id}/delete", headers=headers)
    assert removed.status_code == 200 and "Rule removed." in removed.text and "No rules yet" in removed.text
    assert _rules(app) == []
    assert owner_client.post(f"/settings/rules/{rule_id}/delete", headers=headers).status_code == 404
    assert owner_client.post(f"/settings/rules/{rule_id}/toggle", headers=headers).status_code == 404


@pytest.mark.browser
def test_in_a_browser_the_owner_sets_up_email_and_sends_a_test_without_a_reload(app, site, page, owner):
    from playwright.sync_api import expect

    from tests.conftest import browser_sign_in

    sink = SmtpSink().start()
    try:
        browser_sign_in(page, site, owner.email)
        page.goto(f"{site}/settings")
        channels = page.locator("#channels")
        channels.get_by_label("New URLs, one per line").first.fill(sink.url())
        channels.get_by_role("button", name="Save").click()
        expect(page.locator("#channels .flash-info")).to_have_text("Saved.")
        page.evaluate("window.__same_document = true")  # lost if the page reloads
        test = page.locator("#test-send")
        test.get_by_label("Send to").fill("owner-test@example.com")
        test.get_by_role("button", name="Send a test").click()
        expect(page.locator("#test-send .test-results")).to_contain_text("OK, handed over")
        assert page.evaluate("window.__same_document") is True
        assert len(sink.to("owner-test@example.com")) == 1
        assert page.problems == []
    finally:
        sink.stop()

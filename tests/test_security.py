"""The security sweep of issue 8, over `app.url_map` so a new route is covered the day it is added:
roles on every route, ids that do not exist or belong elsewhere, hostile markup in every name,
CSRF on every write, formulas in CSV exports, the password rule everywhere a password is set, and
the public endpoints (signed links, inbound hooks) against tampering and oversized bodies.

Every refusal is also checked to leave the database byte for byte as it was."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import urlencode

import pytest
from itsdangerous import URLSafeSerializer

from crm import links
from crm.exports import FORMULA_START
from crm.extensions import db
from crm.hook_secrets import secret_for
from crm.ids import MAX_ID
from crm.models import Role, User
from tests import hostile
from tests.conftest import PASSWORD, csrf_from, db_digest, make_user, page_token, sign_in
from tests.sinks import HttpSink, SmtpSink
from tests.test_access import OWNER_ONLY_ENDPOINTS, OWNER_ONLY_PREFIXES, PUBLIC_ENDPOINTS

HX = {"HX-Request": "true"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Writes that carry their own credentials instead of a session, so CSRF does not apply to them.
CSRF_EXEMPT = {"api.post_orders": "a team API token (Authorization: Bearer)",
               "public.inbound": "the channel's HMAC-derived secret",
               "public.unsubscribe": "the message's signed token in the URL"}
MISSING_INTS = ("999999", str(2**64), "abc")  # could exist; beyond BIGINT; not a number at all
MISSING_NAME = "no-such-thing"
ARG = re.compile(r"<(?:(\w+):)?(\w+)>")
LEAKS = ("Traceback", "sqlalchemy", "SELECT ", "test-secret-key", "hostile.customer@example.com")


def _rules(app, methods=None):
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if methods is None or method in methods:
                yield rule, method


def _owner_only(rule) -> bool:
    return rule.rule.startswith(OWNER_ONLY_PREFIXES) or rule.endpoint in OWNER_ONLY_ENDPOINTS


def _fill(rule, values: dict[str, str]) -> str:
    return ARG.sub(lambda m: str(values[m.group(2)]), rule.rule)


def _real_values(app, ids: dict, endpoint: str) -> dict[str, list[str]]:
    """For each URL argument, the values naming real objects of the seeded base."""
    from crm.web.callbacks import FORMS
    from crm.web.customer_forms import field_spec
    from crm.web.dashboard import PANELS

    with app.test_request_context():
        fields = list(field_spec())
        unsubscribe = links.token(links.UNSUBSCRIBE, ids["message"]) if "message" in ids else MISSING_NAME
    customer = ids["inactive"] if endpoint.startswith("inactive.") else ids["customer"]
    return {
        "customer_id": [customer], "callback_id": [ids["callback"]], "sequence_id": [ids["sequence"]],
        "message_id": [ids.get("message", 999999)], "segment_id": [ids["segment"]], "stage_id": [ids["stage"]],
        "run_id": [ids["run"]], "token_id": [ids["token"]], "rule_id": [ids["rule"]], "user_id": [ids["member"]],
        "name": PANELS if endpoint == "dashboard.panel" else fields, "kind": list(FORMS), "channel": ["email"],
        "token": [unsubscribe],
    }


def _signed_in(app, email: str):
    client = app.test_client()
    assert sign_in(client, email).status_code == 302
    return client, page_token(client, "/account/")


def _digest(app) -> dict:
    with app.app_context():
        found = db_digest()
        db.session.remove()
    return found


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(name for name in before if before[name] != after[name])


def _no_leak(response) -> None:
    body = response.get_data(as_text=True)
    for leak in LEAKS:
        assert leak not in body, (response.request.path, leak)


@pytest.fixture
def sinks():
    smtp, http = SmtpSink().start(), HttpSink().start()
    yield smtp, http
    smtp.stop()
    http.stop()


@pytest.fixture
def base(app, owner, manager):
    """The hostile base, without messages."""
    return hostile.seed(app, owner.id)


@pytest.fixture
def sent(app, owner, manager, sinks):
    """The hostile base with two steps of its sequence delivered to the sinks (email and webhook)."""
    smtp, http = sinks
    return hostile.seed(app, owner.id, channel_urls={"email": smtp.url(), "sms": http.url("sms/{phone}")})


# --- 1. every route, both roles ---------------------------------------------------------------------

def test_owner_is_refused_no_route_and_no_route_fails(make_app):
    """As an owner, every route and method (whole page and htmx) on a seeded base answers without
    403 and without a server error (CSRF is off here: access is what is checked)."""
    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        db.create_all()
    owner = make_user(app, "boss@example.com", Role.OWNER)
    ids = hostile.seed(app, owner.id)
    client, _token = _signed_in(app, owner.email)
    checked = 0
    for rule, method in _rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint == "auth.logout":
            continue
        values = {arg: choices[0] for arg, choices in _real_values(app, ids, rule.endpoint).items()}
        url = _fill(rule, values)
        for headers in ({}, HX):
            response = client.open(url, method=method, headers=headers)
            response.get_data()
            assert response.status_code not in (401, 403) and response.status_code < 500, (
                method, url, headers, response.status_code)
            checked += 1
    assert checked > 150


def test_anonymous_htmx_requests_on_every_private_route_go_to_login(make_app):
    """An htmx request without a session is sent to the login page on every private route and method."""
    app = make_app(WTF_CSRF_ENABLED=False)
    with app.app_context():
        db.create_all()
    client = app.test_client()
    for rule, method in _rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = _fill(rule, {arg: "1" for arg in rule.arguments})
        response = client.open(url, method=method, headers=HX)
        assert response.status_code == 302 and response.location.startswith("/login"), (method, url)


# --- 2. objects: ids that do not exist or belong elsewhere --------------------------------------------

def _missing_variants(app, ids: dict, rule):
    """URLs of this rule with one argument at a time naming nothing (the others real), and whether
    routing itself refuses it (a number past 64 bits, or not a number)."""
    real = {arg: choices[0] for arg, choices in _real_values(app, ids, rule.endpoint).items()}
    for arg in sorted(rule.arguments):
        is_int = f"<int:{arg}>" in rule.rule
        for bogus in MISSING_INTS if is_int else (MISSING_NAME,):
            routed = not is_int or (bogus.isdigit() and int(bogus) <= MAX_ID)
            yield arg, _fill(rule, {**real, arg: bogus}), routed


def test_ids_that_do_not_exist_are_404_for_both_roles_and_change_nothing(app, owner, manager, base):
    """Every route with an id or name in its URL, every method, as owner and manager, whole page and
    htmx, with a valid CSRF token: a missing id is 404 (a manager gets 403 on owner-only routes, and
    on the call-backs of another manager); nothing is ever written."""
    checked, wrong = 0, []
    for person in (owner, manager):
        client, token = _signed_in(app, person.email)
        before = _digest(app)
        for rule, method in _rules(app):
            if not rule.arguments:
                continue
            for arg, url, routed in _missing_variants(app, base, rule):
                others_call = rule.endpoint.startswith("callbacks.") and arg != "callback_id"
                expected = 404
                if person.role is Role.MANAGER and routed and (_owner_only(rule) or others_call):
                    expected = 403
                for headers in ({}, HX):
                    data = {"csrf_token": token} if method in WRITES else None
                    response = client.open(url, method=method, data=data, headers={**headers, "X-CSRFToken": token})
                    if response.status_code != expected:
                        wrong.append((person.role.value, method, url, bool(headers), response.status_code))
                    _no_leak(response)
                    checked += 1
        assert _changed(before, _digest(app)) == [], person.role
    assert wrong == []
    assert checked > 200


def test_ids_in_forms_that_do_not_exist_are_refused_and_change_nothing(app, owner, base):
    """Ids posted in a form (a card on the board, a customer to merge or call, a sequence, a segment,
    a manager, a stage to move customers to) that name nothing are refused and nothing is written."""
    client, token = _signed_in(app, owner.email)
    customer, stage, sequence = base["customer"], base["stage"], base["sequence"]
    cases = [
        ("/funnel/move", {"customer_id": "999999", "stage_id": stage}, {404}),
        ("/funnel/move", {"customer_id": customer, "stage_id": str(2**64)}, {404}),
        ("/funnel/unpin", {"customer_id": "abc"}, {404}),
        ("/callbacks/schedule", {"customer_id": "999999", "day": "2030-01-07"}, {404}),
        (f"/customers/{customer}/merge", {"other": "999999"}, {404}),
        (f"/customers/{customer}/fields/manager", {"value": "999999"}, {404, 422}),
        ("/sequences/enrol", {"sequence_id": "999999", "customer_ids": customer}, {302}),
        (f"/sequences/{sequence}/enrol", {"target": "segment", "segment": "999999"}, {302}),
        ("/settings/rules", {"sequence_id": "999999", "trigger": "lapsed"}, {422}),
        (f"/settings/stages/{stage}/delete", {"move_to": "999999"}, {422}),
        # Bulk actions answer htmx with their message beside the bulk bar, here the refusal.
        ("/customers/bulk/manager", {"ids": customer, "manager_id": "999999"}, {302, 200}),
        ("/customers/bulk/callbacks", {"ids": customer, "manager_id": "999999", "day": "2030-01-07"}, {302, 200}),
        ("/callbacks/reassign", {"ids": base["callback"], "manager_id": "999999"}, {302}),
        ("/lapsed/callbacks", {"ids": customer, "manager_id": "999999", "day": "2030-01-07"}, {302, 200}),
    ]
    before = _digest(app)
    for url, data, statuses in cases:
        for headers in ({}, HX):
            response = client.post(url, data={**data, "csrf_token": token}, headers=headers)
            assert response.status_code in statuses | ({422} if headers else set()), (url, data, headers,
                                                                                       response.status_code)
    assert client.get(f"/customers/{customer}/merge?other=999999").status_code == 404
    assert _changed(before, _digest(app)) == []


def test_objects_that_belong_elsewhere_are_refused_and_change_nothing(app, owner, manager, sent):
    """Another manager's call-backs and saved segments, a message of one sequence addressed under
    another, a customer merged into themselves, an active customer erased or restored from the
    inactive list: refused with 403/404 (or the refusal on the field), the database unchanged."""
    from crm import sequences

    with app.app_context():
        other = sequences.create(3, "Other", db.session.get(User, owner.id)).id
        db.session.commit()
        db.session.remove()
    theirs, segment = sent["callback"], sent["segment"]
    managers, token = _signed_in(app, manager.email)
    owners, owner_token = _signed_in(app, owner.email)
    before = _digest(app)
    for method, url, data in [
        ("GET", f"/callbacks/{theirs}", None), ("GET", f"/callbacks/{theirs}/form/note", None),
        ("POST", f"/callbacks/{theirs}/outcome", {"outcome": "reached"}),
        ("POST", f"/callbacks/{theirs}/undo", {}), ("POST", f"/callbacks/{theirs}/note", {"note": "mine now"}),
        ("GET", f"/segments/{segment}/edit", None), ("POST", f"/segments/{segment}", {"name": "Mine now"}),
        ("POST", f"/segments/{segment}/delete", {}),
    ]:
        for headers in ({}, HX):
            response = managers.open(url, method=method, data={**(data or {}), "csrf_token": token},
                                     headers=headers)
            assert response.status_code == 403, (method, url, headers, response.status_code)
    # An owner's choice of queue is not a manager's: asking for another's queue shows one's own.
    for path in (f"/callbacks?view={sent['member']}", f"/callbacks/history?view={sent['member']}"):
        response = managers.get(path)
        assert response.status_code == 200 and hostile.ESCAPED not in response.get_data(as_text=True), path
    for method, url, data, status in [
        ("POST", f"/sequences/{other}/uncertain/{sent['message']}", {"decision": "sent"}, 404),
        ("GET", f"/customers/{sent['customer']}/merge?other={sent['customer']}", None, 404),
        ("POST", f"/customers/{sent['customer']}/merge", {"other": sent["customer"]}, 400),
        ("POST", f"/inactive/{sent['customer']}/erase", {"confirm_id": sent["customer"]}, 422),
        ("POST", f"/inactive/{sent['customer']}/restore", {"note": "back"}, 422),
    ]:
        response = owners.open(url, method=method, data={**(data or {}), "csrf_token": owner_token})
        assert response.status_code == status, (method, url, response.status_code)
    assert _changed(before, _digest(app)) == []


# --- 3. XSS -----------------------------------------------------------------------------------------

def _assert_text_only(response, where) -> None:
    body = response.get_data(as_text=True)
    if response.mimetype == "text/csv":
        cells = [cell for row in csv.reader(io.StringIO(body.lstrip("\ufeff"), newline="")) for cell in row]
        assert cells, where
    elif response.mimetype == "application/json":
        json.loads(body)
    else:
        assert response.mimetype == "text/html", where
        for marker in hostile.MARKERS:
            assert marker not in body, (where, marker)


def test_hostile_names_are_text_on_every_page_and_every_partial(app, owner, sent):
    """A customer, note, call, tag, product, stage, sequence (name, subject, body, code), RFM group
    names, saved segment, call-back note, user, API token and import named with markup are shown as
    text by every GET route, whole page and htmx fragment (the pages without ids also with the markup in
    their query string); the CSV exports carry it as cells."""
    client, _token = _signed_in(app, owner.email)
    query = urlencode({"q": hostile.XSS, "city": hostile.XSS, "tag": hostile.XSS, "product": hostile.XSS,
                       "category": hostile.XSS, "view": "team"})
    shown = set()
    for rule, _method in _rules(app, {"GET"}):
        if rule.endpoint in {"public.click", "auth.logout"}:
            continue
        choices = _real_values(app, sent, rule.endpoint)
        urls = [_fill(rule, {other: value if other == arg else choices[other][0] for other in rule.arguments})
                for arg in sorted(rule.arguments) for value in choices[arg]] or [rule.rule]
        for url in urls:
            # The query string carries the markup to the list pages, whose filters echo it.
            for suffix in ("",) if rule.arguments else ("", "?" + query):
                for headers in ({}, HX):
                    response = client.get(url + suffix, headers=headers)
                    assert response.status_code < 500, (url, suffix, headers, response.status_code)
                    _assert_text_only(response, (url + suffix, headers))
                    body = response.get_data(as_text=True)
                    if hostile.ESCAPED in body or hostile.ESCAPED_SCRIPT in body:
                        shown.add(rule.endpoint)
    # The payload really was on the pages that show these objects (so the sweep checked something).
    assert {"customers.index", "customers.card", "funnel.board", "callbacks.index", "sequences.index",
            "sequences.show", "sequences.edit", "inactive.index", "segments.index", "users.index",
            "reports.campaigns", "tokens.index", "imports.show", "funnel.stage_list",
            "settings.index"} <= shown, sorted(shown)


def test_message_preview_shows_hostile_text_as_text(app, owner, sent):
    """The editor's live preview (htmx) of a step whose subject and body are markup, for a customer
    whose name is markup, escapes both."""
    client, token = _signed_in(app, owner.email)
    response = client.post(f"/sequences/{sent['sequence']}/preview", headers={**HX, "X-CSRFToken": token},
                           data={"step": "1", "preview_customer": sent["customer"],
                                 "step-1-subject": hostile.XSS, "step-1-body": hostile.XSS + " {{ name }}"})
    assert response.status_code == 200
    _assert_text_only(response, "preview")
    assert response.get_data(as_text=True).count(hostile.ESCAPED) >= 3


def test_forms_echo_what_was_typed_as_text(app, owner, base):
    """What a form sends back (a refusal keeping the typed value, or the saved result), whole page and
    htmx, shows typed markup as text."""
    client, token = _signed_in(app, owner.email)
    customer, sequence, segment = base["customer"], base["sequence"], base["segment"]
    xss = hostile.XSS
    posts = [
        ("/customers/new", {"name": xss, "emails": "not an email", "city": xss}),
        (f"/customers/{customer}/fields/city", {"value": xss, "version": "0"}),
        (f"/customers/{customer}/fields/email", {"value": xss}),
        (f"/customers/{customer}/notes", {"body": xss}),
        (f"/customers/{customer}/calls", {"outcome": xss, "note": xss}),
        ("/segments/", {"name": xss}),
        ("/segments/", {"name": xss * 3, "q": xss}),
        (f"/segments/{segment}", {"name": xss * 3}),
        ("/sequences", {"name": xss, "length": "4"}),
        (f"/sequences/{sequence}/edit", {"name": xss, "window_start": xss, "link_url": xss}),
        ("/settings/stages", {"name": xss * 3}),
        ("/settings/users/", {"name": xss, "email": xss, "password": "x", "role": "manager", "locale": "en"}),
        ("/settings/tokens/", {"name": xss * 3}),
        ("/settings/channels/test", {"test_channel": "email", "test_address": xss}),
        ("/settings/rules", {"sequence_id": sequence, "trigger": xss, "days": xss}),
        (f"/inactive/{base['inactive']}/restore", {"note": ""}),
        (f"/inactive/{base['inactive']}/erase", {"confirm_id": xss}),
        ("/callbacks/schedule", {"customer_id": customer, "day": xss, "note": xss}),
        (f"/callbacks/{base['callback']}/outcome", {"outcome": "call_back", "when": xss, "note": xss}),
    ]
    for url, data in posts:
        for headers in ({}, HX):
            response = client.post(url, data={**data, "csrf_token": token}, headers=headers, follow_redirects=True)
            assert response.status_code < 500, (url, headers, response.status_code)
            _assert_text_only(response, (url, headers))


def test_sent_email_and_webhook_carry_hostile_text_as_text(sinks, sent):
    """The email sent to the customer is plain text only (no HTML part a mail program would render)
    with the markup in it as written, in the subject too; the SMS webhook's JSON body carries it as
    JSON strings."""
    smtp, http = sinks
    mails = smtp.to("hostile.customer@example.com")
    assert len(mails) == 1
    assert [part.get_content_type() for part in mails[0].message.walk()] == ["text/plain"]
    assert hostile.XSS in mails[0].text and hostile.XSS in mails[0].message["Subject"]
    assert len(http.received) == 1
    _path, body = http.received[0]
    assert any(isinstance(value, str) and hostile.XSS in value for value in body.values()), body


# --- 4. CSRF ----------------------------------------------------------------------------------------

def test_every_write_without_a_csrf_token_is_refused_and_changes_nothing(app, owner, manager, base):
    """Every state-changing route, as a signed-in owner, form post and htmx post, without a token or
    with another session's token: 400, nothing written. Only the endpoints authenticated otherwise
    (API token, hook secret, signed link) take posts without one, and they are public views."""
    client, _token = _signed_in(app, owner.email)
    _elsewhere, foreign = _signed_in(app, manager.email)
    before = _digest(app)
    accepted = set()
    for rule, method in _rules(app, WRITES):
        values = {arg: choices[0] for arg, choices in _real_values(app, base, rule.endpoint).items()}
        url = _fill(rule, values)
        for headers, data in (({}, {}), (HX, {}), ({}, {"csrf_token": foreign}),
                              ({**HX, "X-CSRFToken": foreign}, {})):
            response = client.open(url, method=method, headers=headers, data={**data, "active": "0", "name": "x"})
            if response.status_code != 400:
                # Taken past the CSRF check, then refused for lacking its own credential.
                assert response.status_code in (401, 404), (method, url, response.status_code)
                accepted.add(rule.endpoint)
                continue
            assert "did not come from this site" in response.get_data(as_text=True), (method, url, headers)
    assert accepted == set(CSRF_EXEMPT)
    assert all(getattr(app.view_functions[endpoint], "crm_public", False) for endpoint in CSRF_EXEMPT)
    assert _changed(before, _digest(app)) == []
    assert client.get("/customers").status_code == 200  # the logout without a token did not sign out


# --- 5. CSV exports ---------------------------------------------------------------------------------

FORMULAS = ("=1+1", "+7 city", "-2+3", "@SUM(A1)", "\tTabbed", "\rReturned")
NUMBER = re.compile(r"-?\d+(\.\d+)?")


def test_every_csv_export_neutralises_formula_cells(app, owner, owner_client):
    """Names, cities, tags, reasons and sequence names starting with =, +, -, @, tab or CR come out of
    every export prefixed with an apostrophe; numbers (a negative one too) stay numbers."""
    from crm import inactive, sequences
    from crm.exports import safe_cell
    from tests import factories

    exports = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules() if rule.rule.endswith(".csv")}
    assert set(exports) == {"customers.export", "inactive.export", "reports.campaigns_csv"}
    with app.app_context():
        acting = db.session.get(User, owner.id)
        for value in FORMULAS:
            person = factories.customer(value, city=value, tags=[value[:40]])
            gone = factories.customer("Gone " + value)
            inactive.move(gone, "manager", value, acting)
            sequences.create(3, value.strip() or "x", acting)
            factories.order(person, factories.utc(2025, 3, 1), "10.00")
        db.session.commit()
    for endpoint, path in exports.items():
        response = owner_client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/csv", endpoint
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"), newline="")))
        cells = [cell for row in rows[1:] for cell in row]
        for cell in cells:
            assert not cell.startswith(FORMULA_START) or NUMBER.fullmatch(cell), (endpoint, cell)
        assert "'=1+1" in cells, endpoint
    assert safe_cell(-16.7) == "-16.7" and safe_cell(-3) == "-3" and safe_cell("-3") == "'-3"


# --- 6. accounts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weak", ["short1", "password123"])
def test_the_password_rule_holds_when_users_change_their_own(app, owner, owner_client, weak):
    token = page_token(owner_client)
    response = owner_client.post("/account/password", data={"pw-csrf_token": token, "pw-current": PASSWORD,
                                                            "pw-password": weak})
    assert response.status_code == 422
    assert ("at least 8 characters" if len(weak) < 8 else "too common") in response.get_data(as_text=True)
    assert sign_in(app.test_client(), owner.email).status_code == 302


def test_the_password_rule_holds_on_the_owners_add_user_form(app, owner_client):
    token = page_token(owner_client, "/settings/users/")
    response = owner_client.post("/settings/users/", data={"csrf_token": token, "name": "Weak", "role": "manager",
                                                           "email": "weak@example.com", "password": "qwerty123",
                                                           "locale": "en"})
    assert response.status_code == 422 and "too common" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(User).where(User.email == "weak@example.com")) is None


@pytest.mark.parametrize("weak, message", [("short1", "at least 8 characters"), ("password1", "too common")])
def test_the_password_rule_holds_on_the_create_owner_command(app, weak, message):
    result = app.test_cli_runner().invoke(args=["users", "create-owner", "cli@example.com", "--name", "Cli",
                                                "--password", weak])
    assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert db.session.scalar(db.select(User).where(User.email == "cli@example.com")) is None


def test_nothing_from_the_session_before_sign_in_carries_into_the_signed_in_one(app, client, owner):
    """Session fixation: sign-in starts a fresh session, so what the session held before (here the
    CSRF token the login page handed out, which anyone who planted the cookie would know) is not
    good in the signed-in one; the signed-in session's own token is."""
    before = csrf_from(client.get("/login").get_data(as_text=True))
    assert sign_in(client, owner.email).status_code == 302
    refused = client.post("/logout", headers={"X-CSRFToken": before})
    assert refused.status_code == 400 and client.get("/customers").status_code == 200  # still signed in
    assert client.post("/logout", headers={"X-CSRFToken": page_token(client)}).status_code == 302


# --- 7. public endpoints ----------------------------------------------------------------------------

def test_tampered_swapped_and_foreign_link_tokens_are_404_and_change_nothing(app, sent):
    """Tracked and unsubscribe links: a token altered, made for the other purpose, signed with
    another key, naming a message that does not exist or something that is not a message id is a
    plain 404 that names nothing; the real ones work (and a GET never unsubscribes)."""
    with app.app_context():
        click, unsub = (links.token(purpose, sent["message"]) for purpose in (links.CLICK, links.UNSUBSCRIBE))
        bad = {
            "altered": click[:-2] + ("AA" if not click.endswith("AA") else "BB"),
            "other key": URLSafeSerializer("another-secret", salt=links.CLICK).dumps(sent["message"]),
            "missing message": links.token(links.CLICK, 999999),
            "huge id": URLSafeSerializer(app.config["SECRET_KEY"], salt=links.CLICK).dumps(2**70),
            "not an id": URLSafeSerializer(app.config["SECRET_KEY"], salt=links.CLICK).dumps("1"),
            "garbage": "x" * 3000,
        }
    client = app.test_client()
    before = _digest(app)
    for name, token in bad.items():
        for response in (client.get(f"/l/{token}"), client.get(f"/u/{token}"), client.post(f"/u/{token}")):
            assert response.status_code == 404, (name, response.request.path)
            _no_leak(response)
    for response in (client.get(f"/l/{unsub}"), client.get(f"/u/{click}"), client.post(f"/u/{click}")):
        assert response.status_code == 404, response.request.path
    assert client.get(f"/u/{unsub}").status_code == 200
    assert _changed(before, _digest(app)) == []
    assert client.get(f"/l/{click}").status_code == 302


def test_an_oversized_unsubscribe_post_is_413_and_unsubscribes_nobody(app, sent):
    with app.app_context():
        unsub = links.token(links.UNSUBSCRIBE, sent["message"])
    client = app.test_client()
    before = _digest(app)
    assert client.post(f"/u/{unsub}", data={"List-Unsubscribe": "One-Click", "pad": "x" * 200_000}).status_code == 413
    assert client.post(f"/u/{unsub}", data={"List-Unsubscribe": "One-Click",
                                            "pad": (io.BytesIO(b"x" * 200_000), "pad.txt")}).status_code == 413
    assert _changed(before, _digest(app)) == []
    assert client.post(f"/u/{unsub}", data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_inbound_hooks_refuse_other_channels_secrets_bad_fields_and_oversized_bodies(app, sent):
    """A channel's secret does not open another channel's hook; field errors name the field and
    say nothing else; a body over 64 KiB is 413 also when sent chunked, without a length."""
    with app.app_context():
        email_url = f"/hooks/inbound/email?secret={secret_for('email')}"
        sms_secret = secret_for("sms")
    client = app.test_client()
    before = _digest(app)
    refused = client.post(f"/hooks/inbound/email?secret={sms_secret}", json={"from": "hostile.customer@example.com"})
    assert refused.status_code == 401 and refused.json == {"errors": [{"message": "A valid secret is required."}]}
    wrong = client.post(email_url, json={"from": "hostile.customer@example.com", "text": ["not", "text"]})
    assert wrong.status_code == 422 and [e["field"] for e in wrong.json["errors"]] == ["text"]
    assert client.post(email_url, data="[1, 2]", content_type="application/json").status_code == 400
    big = b'{"from": "hostile.customer@example.com", "text": "' + b"x" * 100_000 + b'"}'
    chunked = client.post(email_url, input_stream=io.BytesIO(big), content_type="application/json",
                          headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert chunked.status_code == 413 and chunked.is_json
    for response in (refused, wrong, chunked):
        _no_leak(response)
    assert _changed(before, _digest(app)) == []

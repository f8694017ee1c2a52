"""The orders API (bearer tokens, idempotent orders, all-or-nothing batches, JSON errors) and the
owner's API tokens page, through real requests against a real SQLite database."""

from __future__ import annotations

import hashlib
import io
import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from crm import api_tokens
from crm.extensions import db
from crm.figures import aware
from crm.models import ApiToken, Customer, Order
from crm.models.user import utcnow
from tests import factories
from tests.conftest import page_token, reload

URL = "/api/v1/orders"


# --- helpers and fixtures ---------------------------------------------------------------------

def new_token(app, name: str = "Online shop", acting=None) -> str:
    """Create a token through the domain and return the plain token."""
    with app.app_context():
        _, plain = api_tokens.create_token(name, acting)
        db.session.commit()
    return plain


@pytest.fixture
def token(app) -> str:
    return new_token(app)


@pytest.fixture
def api(app):
    return app.test_client()


def post(client, body, token: str | None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return client.post(URL, json=body, headers=headers, **kwargs)


def order_json(external_id: str = "A-1", amount="100.00", customer: dict | None = None, **fields) -> dict:
    return {"external_id": external_id, "placed_at": "2024-05-01T12:00:00Z", "amount": amount, "currency": "RUB",
            "customer": customer or {"name": "Anna Ivanova", "email": "anna@example.com"}, **fields}


def make_customer(app, name: str = "Boris Petrov", **fields) -> int:
    with app.app_context():
        made = factories.customer(name, **fields)
        db.session.commit()
        return made.id


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def only_order(app) -> Order:
    with app.app_context():
        found = db.session.scalars(select(Order)).one()
        db.session.expunge_all()
        return found


# --- authentication ---------------------------------------------------------------------------

def test_missing_token_is_refused_with_401_json_and_www_authenticate(app, api):
    response = post(api, order_json(), None)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.is_json and response.json["errors"][0]["message"]
    assert count(app, Order) == 0


@pytest.mark.parametrize("header", ["Bearer crm_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer",
                                    "crm_no-scheme", "Bearer " + "x" * 5000])
def test_wrong_or_malformed_authorization_is_refused(app, api, token, header):
    response = api.post(URL, json=order_json(), headers={"Authorization": header})
    assert response.status_code == 401
    assert response.is_json
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert count(app, Order) == 0


def test_a_signed_in_session_does_not_replace_the_token(app, owner_client):
    response = post(owner_client, order_json(), None)
    assert response.status_code == 401
    assert count(app, Order) == 0


def test_revoked_token_stops_working_at_once(app, api, token):
    assert post(api, order_json("A-1"), token).status_code == 201
    with app.app_context():
        api_tokens.revoke(db.session.scalars(select(ApiToken)).one())
        db.session.commit()
    response = post(api, order_json("A-2"), token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert count(app, Order) == 1


def test_valid_token_saves_the_order_as_source_api_without_a_csrf_token(app, api, token):
    response = post(api, order_json("A-1", "1234.50"), token)
    assert response.status_code == 201
    [result] = response.json["results"]
    assert result["external_id"] == "A-1" and result["result"] == "created"
    order = only_order(app)
    assert (order.id, order.customer_id) == (result["order_id"], result["customer_id"])
    assert (order.source, order.amount, order.currency) == ("api", 123450, "RUB")


# --- idempotency ------------------------------------------------------------------------------

def test_posting_the_same_order_twice_is_a_no_op_that_says_so(app, api, token):
    assert post(api, order_json(), token).json["results"][0]["result"] == "created"
    again = post(api, order_json(), token)
    assert again.status_code == 200
    assert again.json["results"][0]["result"] == "unchanged"
    assert count(app, Order) == 1
    assert count(app, Customer) == 1


def test_a_changed_order_is_updated_in_place(app, api, token):
    first = post(api, order_json(amount="100.00"), token).json["results"][0]
    response = post(api, order_json(amount="150.00", status="refunded"), token)
    assert response.status_code == 200
    [result] = response.json["results"]
    assert result["result"] == "updated" and result["order_id"] == first["order_id"]
    order = only_order(app)
    assert (order.amount, order.status.value) == (15000, "refunded")


# --- batches ----------------------------------------------------------------------------------

def test_batch_answers_one_result_per_order_in_request_order(app, api, token):
    post(api, order_json("B-2"), token)
    response = post(api, {"orders": [order_json("B-1"), order_json("B-2"), order_json("B-3", amount="5")]}, token)
    assert response.status_code == 201
    assert [(r["external_id"], r["result"]) for r in response.json["results"]] == [
        ("B-1", "created"), ("B-2", "unchanged"), ("B-3", "created")]
    assert count(app, Order) == 3


def test_batch_with_only_known_orders_answers_200(api, token):
    post(api, {"orders": [order_json("B-1"), order_json("B-2")]}, token)
    response = post(api, {"orders": [order_json("B-1"), order_json("B-2", amount="7")]}, token)
    assert response.status_code == 200
    assert [r["result"] for r in response.json["results"]] == ["unchanged", "updated"]


def test_invalid_batch_lists_every_bad_order_and_saves_nothing(app, api, token):
    batch = [order_json("C-1"), order_json("C-2", amount="-5"), order_json("C-3"),
             order_json("C-4", placed_at="31.02.2024"), "not an order"]
    response = post(api, {"orders": batch}, token)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json["errors"]] == [
        (1, "amount"), (3, "placed_at"), (4, "order")]
    assert response.json["errors"][0]["message"] == "The amount cannot be negative."
    assert count(app, Order) == 0
    assert count(app, Customer) == 0


def test_batch_refused_when_saving_finds_an_unknown_customer_rolls_back_the_valid_orders(app, api, token):
    batch = [order_json("D-1"), order_json("D-2", customer={"id": 99999}),
             order_json("D-3", customer={"email": "nobody@example.com"})]
    response = post(api, {"orders": batch}, token)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json["errors"]] == [(1, "customer.id"), (2, "customer")]
    assert count(app, Order) == 0
    assert count(app, Customer) == 0


def test_a_batch_must_not_repeat_an_order(app, api, token):
    response = post(api, {"orders": [order_json("E-1"), order_json("E-1", amount="3")]}, token)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json["errors"]] == [(1, "external_id")]
    assert count(app, Order) == 0


@pytest.mark.parametrize("orders", [[], {"external_id": "x"}, "x", [{}] * 1001])
def test_orders_must_be_a_list_of_1_to_1000(api, token, orders):
    response = post(api, {"orders": orders}, token)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "orders"


# --- malformed requests -----------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"{", b"", b"[]", b'"order"', b"42", b"null", b'{"amount": NaN}',
                                  b"\xff\xfe{", b"[" * 100_000 + b"]" * 100_000])
def test_a_body_that_is_not_a_json_object_is_400(app, api, token, body):
    response = api.post(URL, data=body, content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.is_json and response.json["errors"][0]["message"]
    assert count(app, Order) == 0


@pytest.mark.parametrize("kwargs", [{"data": {"external_id": "A-1"}}, {"data": "{}", "content_type": "text/plain"},
                                    {"data": "{}"}])
def test_a_body_not_sent_as_json_is_415(api, token, kwargs):
    response = api.post(URL, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert response.status_code == 415
    assert response.is_json and "application/json" in response.json["errors"][0]["message"]


def test_a_body_over_one_mebibyte_is_413_json(app, api, token):
    big = {"orders": [order_json(f"F-{i}", notes="x" * 2000) for i in range(600)]}
    response = post(api, big, token)
    assert response.status_code == 413
    assert response.is_json
    assert count(app, Order) == 0


def test_a_chunked_body_without_length_is_cut_at_the_limit(app, api, token):
    body = b'{"external_id": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = api.post(URL, input_stream=io.BytesIO(body), content_type="application/json",
                        headers={"Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"},
                        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413
    assert response.is_json


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": "-1"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"placed_at": "yesterday"}, "placed_at"),
    ({"placed_at": "1900-01-01"}, "placed_at"),
    ({"currency": "RUBLES"}, "currency"),
    ({"status": "lost"}, "status"),
    ({"external_id": ""}, "external_id"),
    ({"customer": None}, "customer"),
    ({"customer": {"id": 424242}}, "customer.id"),
    ({"customer": {"email": "not-an-email", "name": "X"}}, "customer.email"),
    ({"customer": {"phone": "12", "name": "X"}}, "customer.phone"),
    ({"customer": {"email": "new@example.com"}}, "customer"),
    ({"customer": {"email": "new@example.com", "name": "N" * 201}}, "customer.name"),
    ({"items": [{"name": "Tea", "quantity": -1}]}, "items[0].quantity"),
    ({"items": [{"name": "Tea", "price": "-3"}]}, "items[0].price"),
])
def test_a_well_formed_order_that_fails_validation_is_422_naming_the_field(app, api, token, change, field):
    response = post(api, {**order_json(), **change}, token)
    assert response.status_code == 422
    [error] = response.json["errors"]
    assert (error["index"], error["field"]) == (0, field)
    assert error["message"]
    assert count(app, Order) == 0


WEIRD = [
    {"external_id": [1, [2, [3]]], "amount": {"a": [None]}, "customer": [[]]},
    order_json(amount=10**4000),
    order_json(amount="1e999999999"),
    order_json(amount=1e308),
    order_json(amount=True),
    order_json(amount=None),
    order_json(placed_at="0001-01-01T00:00:00+01:00"),
    order_json(placed_at="9999-12-31T23:59:59-23:59"),
    order_json(placed_at=12345),
    order_json(customer={"id": 10**30}),
    order_json(customer={"id": -1}),
    order_json(customer={"id": True}),
    order_json(customer={"id": "1", "email": ["a@b.c"]}),
    order_json(customer={"name": "N" * 10_000, "email": "long@example.com"}),
    order_json(customer={"name": "Z", "phone": "+" + "9" * 10_000}),
    order_json(external_id="x" * 81),
    order_json(items="a string"),
    order_json(items=[[1, 2]]),
    order_json(items=[{"name": "T", "quantity": 10**400}]),
    order_json(items=[{"name": "T"}] * 201),
    order_json(currency=123),
    order_json(status=["paid"]),
    order_json(customer={"name": "Zoë 🍷 \u202e", "email": "zoe@example.com"}, external_id="ünï-🍷"),
    order_json(customer={"name": "Nul\u0000l", "email": "nul@example.com"}),
    order_json(customer={"name": "Lone \ud800", "email": "lone@example.com"}),
]


@pytest.mark.parametrize("payload", WEIRD, ids=range(len(WEIRD)))
def test_weird_payloads_get_a_json_answer_never_a_500(api, token, payload):
    response = post(api, payload, token)
    assert response.status_code in (200, 201, 400, 422), response.get_data(as_text=True)
    assert response.is_json
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "sqlalchemy", "SELECT", "sqlite", "Error:"):
        assert leak not in text


@pytest.mark.postgres
def test_orders_and_weird_payloads_on_postgresql(pg_app):
    token, client = new_token(pg_app), pg_app.test_client()
    order = order_json(customer={"name": "Zoë 🍷", "email": "zoe@example.com"})
    assert post(client, order, token).status_code == 201
    assert post(client, order, token).json["results"][0]["result"] == "unchanged"
    assert post(client, {**order, "amount": "7"}, token).json["results"][0]["result"] == "updated"
    for payload in WEIRD:
        response = post(client, payload, token)
        assert response.status_code in (200, 201, 400, 422) and response.is_json, payload
    assert count(pg_app, Order) == 2


def test_html_in_a_name_is_stored_as_written(app, api, token):
    name = '<img src=x onerror="alert(1)"> Anna'
    response = post(api, order_json(customer={"name": name, "email": "xss@example.com"}), token)
    assert response.status_code == 201
    assert reload(app, Customer, response.json["results"][0]["customer_id"]).name == name


def test_an_unexpected_failure_answers_json_without_details_and_saves_nothing(make_app, monkeypatch):
    app = make_app(PROPAGATE_EXCEPTIONS=False)
    with app.app_context():
        db.create_all()

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals: SELECT * FROM orders")

    monkeypatch.setattr("crm.orders.save_order", broken)
    response = post(app.test_client(), order_json(), new_token(app))
    assert response.status_code == 500
    assert response.is_json and "secret internals" not in response.get_data(as_text=True)
    assert count(app, Order) == 0


def test_a_concurrent_write_answers_409_to_retry_and_saves_nothing(app, api, token, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    def racing(*args, **kwargs):
        raise IntegrityError("INSERT INTO orders ...", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr("crm.orders.save_order", racing)
    response = post(api, order_json(), token)
    assert response.status_code == 409
    assert response.is_json and "UNIQUE" not in response.get_data(as_text=True)
    assert count(app, Order) == 0


def test_the_rate_limit_counts_per_token_and_answers_json(make_app):
    app = make_app(API_RATE_LIMIT="2 per minute")
    with app.app_context():
        db.create_all()
    first, second, client = new_token(app, "Shop"), new_token(app, "Till"), app.test_client()
    for _ in range(2):
        assert post(client, order_json(), first).status_code in (200, 201)
    refused = post(client, order_json(), first)
    assert refused.status_code == 429
    assert refused.is_json and refused.json["errors"][0]["message"]
    assert post(client, order_json(), second).status_code == 200


# --- customers and figures --------------------------------------------------------------------

def test_a_paid_order_updates_the_customers_figures_at_once(app, api, token):
    customer_id = make_customer(app, emails=["boris@example.com"])
    with app.app_context():
        factories.order(db.session.get(Customer, customer_id), factories.utc(2024, 1, 10), "50.00")
        db.session.commit()
    response = post(api, order_json("G-1", "150.00", customer={"id": customer_id},
                                    placed_at="2024-03-10T00:00:00Z"), token)
    assert response.status_code == 201
    customer = reload(app, Customer, customer_id)
    assert (customer.order_count, customer.total_spent) == (2, 20000)
    assert customer.last_order_at.replace(tzinfo=None) == factories.utc(2024, 3, 10).replace(tzinfo=None)
    assert customer.usual_interval_days == 60


def test_an_unknown_customer_with_a_name_and_email_is_created(app, api, token):
    response = post(api, order_json(customer={"name": "  Vera  Smirnova ", "email": "Vera@Example.com",
                                              "external_ref": "SHOP-7"}), token)
    assert response.status_code == 201
    customer = reload(app, Customer, response.json["results"][0]["customer_id"])
    assert (customer.name, customer.source, customer.external_ref) == ("Vera Smirnova", "api", "SHOP-7")
    assert customer.order_count == 1
    with app.app_context():
        assert [c.value for c in db.session.get(Customer, customer.id).contacts] == ["vera@example.com"]


@pytest.mark.parametrize("ref", [{"external_ref": "SHOP-1"}, {"email": "BORIS@example.com"},
                                 {"phone": "+7 916 123-45-67"}, {"phone": "+79161234567", "name": "Someone Else"}])
def test_an_order_finds_its_customer_by_external_ref_email_or_phone(app, api, token, ref):
    customer_id = make_customer(app, external_ref="SHOP-1", emails=["boris@example.com"], phones=["+79161234567"])
    response = post(api, order_json(customer=ref), token)
    assert response.status_code == 201
    assert response.json["results"][0]["customer_id"] == customer_id
    assert count(app, Customer) == 1


# --- the OpenAPI description ------------------------------------------------------------------

def test_the_openapi_document_is_public_and_describes_the_orders_endpoint(client):
    from openapi_spec_validator import validate

    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    spec = response.json
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    scheme = spec["components"]["securitySchemes"]["bearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerToken": []}]
    operation = spec["paths"]["/orders"]["post"]
    assert set(operation["responses"]) >= {"200", "201", "400", "401", "413", "415", "422"}
    for code in ("400", "401", "413", "415", "422"):
        schema = operation["responses"][code]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Errors"}
    bodies = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert {"#/components/schemas/Order", "#/components/schemas/OrderBatch"} == {b["$ref"] for b in bodies}
    assert spec["components"]["schemas"]["OrderBatch"]["properties"]["orders"]["maxItems"] == 1000
    assert "nothing is saved" in operation["description"]


# --- the tokens domain ------------------------------------------------------------------------

def test_only_a_hash_and_a_prefix_of_the_token_are_stored(app, owner):
    plain = new_token(app, "Shop", owner)
    with app.app_context():
        stored = db.session.scalars(select(ApiToken)).one()
        assert stored.token_hash == hashlib.sha256(plain.encode()).hexdigest()
        assert plain.startswith(stored.prefix) and len(stored.prefix) == 12 and len(plain) > 40
        assert stored.created_by_id == owner.id
        assert plain not in repr([getattr(stored, c.key) for c in ApiToken.__table__.columns])


def test_last_used_is_written_at_most_once_a_minute(app, token):
    with app.app_context():
        first = api_tokens.authenticate(token).last_used_at
        db.session.commit()
        assert aware(api_tokens.authenticate(token).last_used_at) == first
        stale = utcnow() - timedelta(minutes=2)
        db.session.scalars(select(ApiToken)).one().last_used_at = stale
        db.session.commit()
        assert aware(api_tokens.authenticate(token).last_used_at) > stale


def test_a_token_needs_a_name(app):
    from crm.errors import FieldError

    with app.app_context(), pytest.raises(FieldError) as refused:
        api_tokens.create_token("   ", None)
    assert refused.value.field == "name"


# --- the tokens page --------------------------------------------------------------------------

PAGE = "/settings/tokens/"


def create_on_page(client, name: str = "Online shop"):
    return client.post(PAGE, data={"name": name, "csrf_token": page_token(client, PAGE)})


def test_settings_links_to_the_tokens_page(owner_client):
    assert 'href="/settings/tokens/"' in owner_client.get("/settings").get_data(as_text=True)


def test_creating_a_token_shows_it_in_full_once(app, owner_client, caplog):
    caplog.set_level(logging.DEBUG)
    response = create_on_page(owner_client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "Copy the token now" in html
    with app.app_context():
        stored = db.session.scalars(select(ApiToken)).one()
    start = html.index('id="new-token"')
    plain = html[start:].split('value="', 1)[1].split('"', 1)[0]
    assert plain.startswith(stored.prefix) and api_tokens.hash_token(plain) == stored.token_hash
    assert plain not in caplog.text
    assert 'value="Online shop"' not in html  # the form starts blank for the next token
    # The token works, and the page never shows it again.
    assert post(app.test_client(), order_json(), plain).status_code == 201
    later = owner_client.get(PAGE).get_data(as_text=True)
    assert plain not in later and "Copy the token now" not in later
    assert f"<code>{stored.prefix}…</code>" in later
    assert "Online shop" in later and "Olga Owner" in later


def test_a_token_needs_a_name_on_the_page(app, owner_client):
    response = create_on_page(owner_client, "")
    assert response.status_code == 422
    assert count(app, ApiToken) == 0


def test_revoking_with_htmx_swaps_the_row_and_the_token_stops_working(app, owner_client, token):
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    html = owner_client.get(PAGE).get_data(as_text=True)
    assert f'hx-post="/settings/tokens/{token_id}/revoke"' in html and "hx-confirm=" in html
    response = owner_client.post(f"/settings/tokens/{token_id}/revoke",
                                 headers={"HX-Request": "true", "X-CSRFToken": page_token(owner_client, PAGE)})
    assert response.status_code == 200
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="token-{token_id}"')
    assert "Revoked" in row and "<html" not in row and "hx-post" not in row
    assert reload(app, ApiToken, token_id).revoked_at is not None
    assert post(app.test_client(), order_json(), token).status_code == 401


def test_revoking_without_htmx_renders_the_whole_page(app, owner_client, token):
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    response = owner_client.post(f"/settings/tokens/{token_id}/revoke",
                                 data={"csrf_token": page_token(owner_client, PAGE)})
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
    assert reload(app, ApiToken, token_id).revoked_at is not None


def test_the_page_shows_names_as_text(owner_client):
    create_on_page(owner_client, "<script>alert(1)</script>")
    html = owner_client.get(PAGE).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_managers_get_403_on_every_tokens_view(app, manager_client, token):
    token_html = page_token(manager_client)
    assert manager_client.get(PAGE).status_code == 403
    assert manager_client.post(PAGE, data={"name": "Mine", "csrf_token": token_html}).status_code == 403
    assert manager_client.post("/settings/tokens/1/revoke", data={"csrf_token": token_html}).status_code == 403
    assert count(app, ApiToken) == 1
    assert reload(app, ApiToken, 1).revoked_at is None


def test_tokens_page_posts_need_the_csrf_token(app, owner_client, token):
    assert owner_client.post(PAGE, data={"name": "No token"}).status_code == 400
    assert owner_client.post("/settings/tokens/1/revoke", headers={"HX-Request": "true"}).status_code == 400
    assert count(app, ApiToken) == 1
    assert reload(app, ApiToken, 1).revoked_at is None

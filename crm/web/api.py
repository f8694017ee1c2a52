"""The orders API: shops and tills post orders with a team API token; answers are always JSON.

The contract (limits, status codes, error shape) is described in `crm.openapi`.
"""

from __future__ import annotations

import hashlib
import json

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from crm import api_tokens, openapi, orders
from crm.errors import FieldError
from crm.extensions import csrf, db, limiter
from crm.ids import MAX_ID
from crm.orders import OrderInput
from crm.web.access import public

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# A bearer token is not sent by browsers on their own, so a cross-site form cannot forge a call.
csrf.exempt(bp)

SOURCE = "api"
MAX_BODY = 1024 * 1024
MAX_BATCH = 1000


class ApiError(Exception):
    """A refusal answered as {"errors": [...]} with this status."""

    def __init__(self, status: int, errors: list[dict], headers: dict | None = None):
        super().__init__(status)
        self.status, self.errors, self.headers = status, errors, headers or {}


def _message(status: int, message: str, headers: dict | None = None) -> ApiError:
    return ApiError(status, [{"message": message}], headers)


def _field_error(index: int, error: FieldError) -> dict:
    return {"index": index, "field": error.field, "message": error.message}


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return jsonify(errors=error.errors), error.status, error.headers


def _http_error(error):
    # The app's handlers answer with HTML pages; an API client gets the same refusal as JSON.
    messages = {
        413: _("The body is too large."),
        429: _("Too many requests for this token; wait a minute and retry."),
        500: _("Something went wrong on our side; nothing was saved. Retry in a moment."),
    }
    code = getattr(error, "code", None) or 500
    return jsonify(errors=[{"message": messages.get(code, _("The request could not be understood."))}]), code


# 404 and 405 are raised by routing, before any blueprint is known, so the app's pages answer those.
for _code in (400, 413, 429, 500):
    bp.register_error_handler(_code, _http_error)


def _api_limit() -> str:
    return current_app.config.get("API_RATE_LIMIT", "600 per minute")


def _token_key() -> str:
    # Counted per token; the header's hash is the key so the token itself never reaches Redis.
    header = request.headers.get("Authorization", "")
    return "api-token:" + hashlib.sha256(header.encode()).hexdigest() if header else get_remote_address()


def _authenticate() -> None:
    scheme, _sep, plain = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        raise _message(401, _("Send a team API token as “Authorization: Bearer <token>”."),
                       {"WWW-Authenticate": 'Bearer realm="api"'})
    if api_tokens.authenticate(plain.strip()) is None:
        raise _message(401, _("The API token is wrong or has been revoked."),
                       {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})
    # Kept even when the request is refused below, so the owner sees the token is in use.
    db.session.commit()


def _storable(value) -> bool:
    # NUL and lone surrogates are valid JSON but no database stores them; walked without
    # recursion, since the JSON may nest as deep as the parser allows.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
    return True


def _reject_constant(name: str):
    raise ValueError(name)  # NaN and Infinity are not JSON, whatever Python's parser accepts


def _read_json() -> dict:
    if not request.is_json:
        raise _message(415, _("Send the body as JSON with “Content-Type: application/json”."))
    too_large = _message(413, _("The body is larger than %(n)d bytes; send fewer orders per request.", n=MAX_BODY))
    if (request.content_length or 0) > MAX_BODY:
        raise too_large
    # A chunked body has no length to check up front; read no more than the limit allows.
    raw = request.stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise too_large
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _message(400, _("The body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise _message(400, _("Send a JSON object: one order, or {\"orders\": [...]}."))
    if not _storable(body):
        raise _message(400, _("The body contains characters that cannot be stored (NUL or broken Unicode)."))
    return body


def _parse(payload) -> OrderInput:
    config = current_app.config
    try:
        order_in = orders.parse_order(payload, config["TEAM_CURRENCY"], config["TEAM_TIMEZONE"])
    except ArithmeticError:
        # A date or number so extreme that Python's own arithmetic overflows on it.
        raise FieldError("order", _("A date or an amount is out of range.")) from None
    ref_id = order_in.customer.id
    # Checked here because the database cannot even look up an id wider than 64 bits.
    if ref_id is not None and (isinstance(ref_id, bool) or not 0 < ref_id <= MAX_ID):
        raise FieldError("customer.id", _("No customer has this id."))
    return order_in


def _validate(payloads: list) -> list[OrderInput]:
    parsed, errors, seen = [], [], set()
    for index, payload in enumerate(payloads):
        try:
            order_in = _parse(payload)
        except FieldError as error:
            errors.append(_field_error(index, error))
            continue
        if order_in.external_id in seen:
            errors.append({"index": index, "field": "external_id",
                           "message": _("This order is already in the request; send each order once.")})
        seen.add(order_in.external_id)
        parsed.append(order_in)
    if errors:
        raise ApiError(422, errors)
    return parsed


def _save(parsed: list[OrderInput]) -> list[dict]:
    results, errors = [], []
    region = current_app.config["TEAM_COUNTRY"]
    try:
        for index, order_in in enumerate(parsed):
            try:
                order, outcome = orders.save_order(order_in, SOURCE, region)
            except FieldError as error:
                # Only the customer is looked up now, so its field is named under "customer" ("name"
                # comes from creating one); carry on so the answer lists every bad order.
                if not error.field.startswith("customer"):
                    error = FieldError(f"customer.{error.field}", error.message)
                errors.append(_field_error(index, error))
                continue
            results.append({"external_id": order.external_id, "result": outcome, "order_id": order.id,
                            "customer_id": order.customer_id})
        if errors:
            raise ApiError(422, errors)
        db.session.commit()
    except (IntegrityError, StaleDataError):
        db.session.rollback()
        raise _message(409, _("Another request changed the same orders or customers just now; "
                              "nothing was saved. Retry.")) from None
    except ApiError:
        db.session.rollback()
        raise
    return results


@bp.post("/orders")
@public
@limiter.limit(_api_limit, key_func=_token_key)
def post_orders():
    """Create or update one order or a batch, all or nothing; answer each order's outcome."""
    _authenticate()
    body = _read_json()
    payloads = body["orders"] if "orders" in body else [body]
    if not isinstance(payloads, list) or not 0 < len(payloads) <= MAX_BATCH:
        raise ApiError(422, [{"field": "orders",
                              "message": _("Send a list of 1 to %(n)d orders.", n=MAX_BATCH)}])
    results = _save(_validate(payloads))
    created = any(r["result"] == "created" for r in results)
    return jsonify(results=results), 201 if created else 200


@bp.get("/openapi.json")
@public
def openapi_json():
    """Serve the OpenAPI 3.1 description of this API."""
    return jsonify(openapi.document(MAX_BODY, MAX_BATCH, SOURCE))

"""The OpenAPI 3.1 description of the orders API, served at /api/v1/openapi.json.

Plain data, so a shop's developer and the tests read the same contract that `crm.web.api` keeps;
the limits come in as arguments so the document cannot drift from the view's.
"""

from __future__ import annotations


def _error_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}


def document(max_body: int, max_batch: int, source: str) -> dict:
    """Return the OpenAPI document for the orders endpoint with its limits filled in."""
    order = {
        "type": "object",
        "required": ["external_id", "placed_at", "amount", "customer"],
        "properties": {
            "external_id": {"type": "string", "maxLength": 80,
                            "description": "The order's id in your system. Posting it again updates the order "
                                           "(or changes nothing if it is the same)."},
            "placed_at": {"type": "string",
                          "description": "ISO 8601 (2024-05-01T14:30:00+03:00) or DD.MM.YYYY [HH:MM]; a time "
                                         "without a zone is read in the team's time zone."},
            "amount": {"type": ["string", "number"], "examples": ["1234.50", 1234.5],
                       "description": "The order total in major units (1234.50), not negative."},
            "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$",
                         "description": "ISO 4217 code; the team's currency when left out."},
            "status": {"type": "string", "enum": ["paid", "cancelled", "refunded"], "default": "paid",
                       "description": "Only paid orders count in the customer's figures."},
            "customer": {"$ref": "#/components/schemas/CustomerRef"},
            "items": {"type": "array", "maxItems": 200, "items": {"$ref": "#/components/schemas/Item"}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Retention CRM orders API",
            "version": "1.0.0",
            "description": (
                "Post your shop's or till's orders. Authenticate with a team API token "
                "(`Authorization: Bearer <token>`) that an owner creates under Settings → API tokens. "
                f"Orders are stored with source `{source}` and are idempotent by `external_id`."),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerToken": []}],
        "paths": {
            "/orders": {
                "post": {
                    "operationId": "postOrders",
                    "summary": "Create or update orders",
                    "description": (
                        f"Send one order, or `{{\"orders\": [...]}}` with up to {max_batch} orders; the body may "
                        f"be at most {max_body} bytes. A request is all-or-nothing: every order is checked "
                        "first, and if any is invalid the answer is 422 listing every bad order (by its index "
                        "in the request) and field, and nothing is saved, so the sender can fix the data and "
                        "retry the whole request safely. Retrying a request that succeeded is harmless too: "
                        "orders already stored as sent come back as `unchanged`."),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/Order"},
                            {"$ref": "#/components/schemas/OrderBatch"},
                        ]}}},
                    },
                    "responses": {
                        "200": {"description": "Every order was stored already or updated; none was new.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
                        "201": {"description": "Saved; at least one order was new.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
                        "400": _error_response("The body is not JSON, or not a JSON object."),
                        "401": {**_error_response("The bearer token is missing, wrong or revoked."),
                                "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                                                 "description": "`Bearer`"}}},
                        "409": _error_response("Another request changed the same data at the same moment; "
                                               "nothing was saved. Retry."),
                        "413": _error_response(f"The body is larger than {max_body} bytes; split the batch."),
                        "415": _error_response("The body is not sent as `application/json`."),
                        "422": _error_response("One or more orders are invalid; nothing was saved. Each error "
                                               "names the order's `index` and the `field`."),
                        "429": _error_response("Too many requests for this token; wait and retry."),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer",
                                                "description": "A team API token from Settings → API tokens."}},
            "schemas": {
                "Order": order,
                "OrderBatch": {"type": "object", "required": ["orders"], "properties": {
                    "orders": {"type": "array", "minItems": 1, "maxItems": max_batch,
                               "items": {"$ref": "#/components/schemas/Order"}}}},
                "CustomerRef": {
                    "type": "object",
                    "description": "Who bought: found by `id`, then `external_ref`, then `email` or `phone`. "
                                   "An unknown customer is created when `name` and a contact or "
                                   "`external_ref` are given.",
                    "properties": {
                        "id": {"type": "integer", "description": "The customer's id in this CRM."},
                        "external_ref": {"type": "string", "maxLength": 80,
                                         "description": "The customer's id in your system."},
                        "email": {"type": "string", "format": "email"},
                        "phone": {"type": "string", "description": "International format preferred."},
                        "name": {"type": "string", "maxLength": 200},
                    },
                },
                "Item": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "category": {"type": "string"},
                    "quantity": {"type": "number", "exclusiveMinimum": 0, "default": 1},
                    "price": {"type": ["string", "number"], "description": "Unit price in major units."},
                }},
                "Result": {"type": "object", "required": ["external_id", "result", "order_id", "customer_id"],
                           "properties": {
                               "external_id": {"type": "string"},
                               "result": {"type": "string", "enum": ["created", "updated", "unchanged"]},
                               "order_id": {"type": "integer"},
                               "customer_id": {"type": "integer"},
                           }},
                "Results": {"type": "object", "required": ["results"], "properties": {
                    "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"},
                                "description": "One entry per order, in the order sent."}}},
                "Error": {"type": "object", "required": ["message"], "properties": {
                    "message": {"type": "string"},
                    "index": {"type": "integer", "description": "The order's position in the request (0 first)."},
                    "field": {"type": "string", "examples": ["amount", "customer.email", "items[2].price"]},
                }},
                "Errors": {"type": "object", "required": ["errors"], "properties": {
                    "errors": {"type": "array", "items": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    }

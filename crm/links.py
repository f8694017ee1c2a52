"""Signed public links in messages: the tracked link and the unsubscribe link.

A token names one message and what the link does; it is signed with the app's secret (and a salt
per purpose, so a click token cannot unsubscribe), so nobody can forge or alter one. They do not
expire: an old email's unsubscribe link must keep working.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from crm.ids import as_id

CLICK = "crm.click"
UNSUBSCRIBE = "crm.unsubscribe"
PATHS = {CLICK: "/l/", UNSUBSCRIBE: "/u/"}


def _serializer(purpose: str) -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=purpose)


def token(purpose: str, message_id: int) -> str:
    return _serializer(purpose).dumps(message_id)


def url(purpose: str, message_id: int) -> str:
    """The absolute link for a message (built in the worker too, hence PUBLIC_URL, not the request)."""
    return current_app.config["PUBLIC_URL"] + PATHS[purpose] + token(purpose, message_id)


def message_id(purpose: str, raw: str) -> int | None:
    """The message a token names, or None when it is tampered with or made for another purpose."""
    try:
        value = _serializer(purpose).loads(raw)
    except BadSignature:
        return None
    # Bounded like any id from outside: the database driver cannot even look up a wider one.
    return as_id(value) if isinstance(value, int) and not isinstance(value, bool) else None

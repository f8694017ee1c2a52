"""Whether a request wants a fragment (htmx) or the whole page."""

from __future__ import annotations

from crm.extensions import htmx


def wanted() -> bool:
    """htmx asks for a fragment; a history restore asks for the whole page even though htmx sends it."""
    return bool(htmx) and not htmx.history_restore_request

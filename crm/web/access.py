"""Who may see what: every view needs a signed-in user unless marked public; some need an owner.

The check runs before every request (see `crm.web.register_web`), so a new view is private
by default and forgetting a decorator cannot open it up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import abort, current_app, request
from flask_login import current_user

View = TypeVar("View", bound=Callable)


def public(view: View) -> View:
    """Mark a view as reachable without signing in (login page, health check, signed links)."""
    view.crm_public = True  # type: ignore[attr-defined]
    return view


def owner_only(view: View) -> View:
    """Mark a view as reserved for owners; managers get 403."""
    view.crm_owner_only = True  # type: ignore[attr-defined]
    return view


def _view_function():
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


def enforce():
    """Send anonymous users to the login page and refuse owner-only views to managers."""
    view = _view_function()
    if view is None or getattr(view, "crm_public", False) or request.endpoint == "static":
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if getattr(view, "crm_owner_only", False) and not current_user.is_owner:
        abort(403)
    return None
